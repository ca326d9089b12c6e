"""`grok sweep emit`: the jobs of a sweep as override lines, one run per line, for scripts/array.sbatch.

    grok sweep emit paper_qf --out jobs.txt             # conf/sweep/paper_qf.yaml: 50 lines
    grok sweep emit paper_qf task.steps=30000           # extra overrides go into every line (stdout)
    grok sweep emit smoke depth=2,4,6 --out jobs.txt    # command-line sweeps replace the preset's
    grok sweep emit task=ti depth=2,4 seed='range(3)'   # no preset: a grid from overrides alone
    grok sweep emit paper_qf pack=seeds --out jobs.txt  # one seed pack per depth: 5 lines of 10 seeds
    sbatch --array=0-$(( $(wc -l < jobs.txt) - 1 ))%32 scripts/array.sbatch jobs.txt

Every line is composed and validated before anything is written, and a line reproduces its run on its own:
`grok train $(line)` lands in the same run directory as `grok train -m +sweep=<name>` would.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cli.compose import PACK_SEEDS, compose_config, expand_sweep, pack_seed_sweep, validate_jobs
from cli.errors import OneLineParser, fail, reported_errors
from grokking.config import CONFIG_DIR
from grokking.errors import ConfigError

# Overrides that only steer the multirun itself; a single `grok train` line does not need them.
MULTIRUN_ONLY = ("hydra/launcher", "hydra.launcher.", "hydra.sweeper.", "hydra.sweep.", "hydra.mode")


def preset_overrides(sweep: str | None, overrides: list[str]) -> list[str]:
    """`+sweep=<name>` plus the overrides; the name must be a file in conf/sweep/."""
    if sweep is None:
        return list(overrides)
    if not (Path(CONFIG_DIR) / "sweep" / f"{sweep}.yaml").is_file():
        presets = sorted(p.stem for p in (Path(CONFIG_DIR) / "sweep").glob("*.yaml"))
        raise ConfigError(f"no sweep preset {sweep!r} (conf/sweep/{sweep}.yaml); choose one of {', '.join(presets)}")
    return [f"+sweep={sweep}", *overrides]


def is_multirun_only(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return key in ("sweep", "hydra/launcher", "hydra.mode") or key.startswith(MULTIRUN_ONLY)


def sweep_jobs(sweep: str | None, overrides: list[str]) -> list[list[str]]:
    """The stand-alone override list of every job of the sweep (no `+sweep=`, no launcher settings); with
    `pack=seeds`, one job per cell with all of its seeds as one seed pack."""
    full = preset_overrides(sweep, overrides)
    jobs = expand_sweep(pack_seed_sweep(full) if PACK_SEEDS in full else full)
    return [[o for o in job if not is_multirun_only(o)] for job in jobs]


def validated_configs(sweep: str | None, jobs: list[list[str]]) -> list[DictConfig]:
    """Compose every job; a preset that sets keys outside hydra.sweeper.params is refused, because its
    emitted lines would train something else than `grok train -m +sweep=<name>`."""
    configs = validate_jobs(jobs)
    if sweep is not None and jobs:
        with_preset = compose_config([f"+sweep={sweep}", *jobs[0]])
        if OmegaConf.to_container(with_preset, resolve=True) != OmegaConf.to_container(configs[0], resolve=True):
            raise ConfigError(f"conf/sweep/{sweep}.yaml sets config keys outside hydra.sweeper.params; move them "
                              "into hydra.sweeper.params so each emitted line reproduces its run")
    return configs


def format_line(job: list[str]) -> str:
    return " ".join(shlex.quote(override) for override in job)


def emit(sweep: str | None, overrides: list[str], out: str | None) -> int:
    if sweep is None and not overrides:
        raise ConfigError("nothing to emit: give a sweep preset (e.g. paper_qf) and/or overrides (depth=2,4 seed=0,1)")
    jobs = sweep_jobs(sweep, overrides)
    validated_configs(sweep, jobs)
    text = "".join(format_line(job) + "\n" for job in jobs)
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(out).write_text(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"grok: wrote {len(jobs)} jobs to {out}; submit with:\n"
          f"  sbatch --array=0-{len(jobs) - 1}%32 scripts/array.sbatch {shlex.quote(out)}", file=sys.stderr)
    return 0


def split_sweep_name(items: list[str]) -> tuple[str | None, list[str]]:
    """`paper_qf depth=2,4` -> ("paper_qf", ["depth=2,4"]); a first item with `=` means no preset."""
    if items and "=" not in items[0] and not items[0].startswith(("+", "~")):
        return items[0], items[1:]
    return None, items


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="grok sweep emit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("items", nargs="*", metavar="[SWEEP] OVERRIDE",
                   help="a preset in conf/sweep/ (paper_qf, paper_ti, paper_dyck, smoke), then Hydra overrides")
    p.add_argument("--out", help="write the lines to this file instead of stdout")
    return p


def run(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        parser().print_help()
        return 0
    if not argv:
        fail("missing action: grok sweep emit [SWEEP] [OVERRIDE ...] [--out FILE] (grok sweep emit --help)")
    if argv[0] != "emit":
        fail(f"unknown action {argv[0]!r}: grok sweep emit [SWEEP] [OVERRIDE ...] [--out FILE] (grok sweep emit --help)")
    args = parser().parse_intermixed_args(argv[1:])
    with reported_errors():
        sweep, overrides = split_sweep_name(args.items)
        return emit(sweep, overrides, args.out)
