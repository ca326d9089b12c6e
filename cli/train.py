"""`grok train`: train one LM run, or a grid of runs with -m. The run directory derives from the config,
so re-running a command resumes it, and a finished run is skipped.

    grok train task=qf depth=6 seed=3                 # the paper's QF setting at one seed
    grok train experiment=cpu                         # the README's CPU-sized main job
    grok train experiment=smoke task=dyck             # seconds on a laptop
    grok train -m task=qf depth=2,4,6,8,10 seed='range(42,142,10)'   # a local sweep
    grok train -m hydra/launcher=slurm +sweep=paper_qf  # the same grid as one SLURM job array
    grok train task=qf depth=6 seeds=[42,52,62]       # a seed pack: three seeds in one process
    grok train -m +sweep=paper_qf pack=seeds          # the paper grid as one pack per depth (5 jobs)
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cli.compose import (
    PACK_SEEDS,
    expand_sweep,
    first_member_seed,
    override_key,
    pack_seed_sweep,
    split_argv,
    validate_jobs,
)
from cli.errors import reported_errors
from cli.main import version
from grokking.config import CONFIG_DIR, CONFIG_NAME, member_configs, register_schema
from grokking.errors import ConfigError, GrokError
from grokking.rundir import RunDir
from grokking.signals import TrainingSignals
from grokking.status import run_status, summary

FAILED_JOBS: list[str] = []  # one-line reasons of jobs of this process's multirun that failed


@hydra.main(config_path=CONFIG_DIR, config_name=CONFIG_NAME, version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    from grokking.train import Preempted, train

    try:
        train(cfg)
    except GrokError as exc:
        # Preempted exits instead (SystemExit is no job failure to Hydra or submitit): a local sweep stops, and a
        # requeued SLURM task leaves no failed result behind, so the launcher waits for its next attempt.
        if HydraConfig.get().mode == RunMode.MULTIRUN and not isinstance(exc, Preempted):
            # A failed job must not stop the sweep: report it on one line, and the summary at the end counts it.
            FAILED_JOBS.append(f"{cfg.run_dir}: {exc}")
            print(f"grok: error: {cfg.run_dir}: {exc}", file=sys.stderr)
            return
        print(f"grok: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


def pack_overrides(overrides: list[str], multirun: bool) -> list[str]:
    """Seed packs: `pack=seeds` turns a sweep's seeds into one pack per cell; `seeds=[...]` gets `seed=` its first
    member, so the job's own directory is that member's (never a stray seed=42)."""
    if PACK_SEEDS in overrides:
        if not multirun:
            raise ConfigError(f"{PACK_SEEDS} groups the seeds of a sweep: use it with -m or +sweep=..., "
                              "or train one pack with seeds=[...]")
        return pack_seed_sweep(overrides)
    given = {override_key(o): o for o in overrides}
    first = first_member_seed(given["seeds"]) if "seeds" in given and "seed" not in given else None
    return [*overrides, first] if first else overrides


def run(argv: list[str]) -> int:
    flags, overrides = split_argv(argv)
    if "--version" in flags:  # Hydra's own --version would compose the config and create the run directory
        print(version())
        return 0
    multirun = bool({"-m", "--multirun"} & set(flags)) or any(o.startswith("+sweep=") for o in overrides)
    # A single run's directory is created below, before train() installs its own handlers: from here on a signal
    # ends it with one line and a truthful status (or nothing created). Not for a sweep: a launcher waiting on
    # SLURM must stay interruptible (Ctrl-C, and its own check that stops a task that can never start).
    with contextlib.nullcontext() if multirun else TrainingSignals() as signals:
        return launch(flags, overrides, multirun, signals)


def launch(flags: list[str], overrides: list[str], multirun: bool, signals: TrainingSignals | None) -> int:
    configs = []
    shown = [f for f in flags if f in ("--cfg", "-c", "--info", "-i")]
    if multirun and shown:
        with reported_errors():
            raise ConfigError(f"{shown[0]} shows one job's config: drop -m/+sweep= and give that job's overrides "
                              "(grok sweep emit NAME lists them)")
    if not any(f in ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c") for f in flags):
        with reported_errors():
            overrides = pack_overrides(overrides, multirun)
            configs = validate_jobs(expand_sweep(overrides) if multirun else [overrides])
            from grokking.preflight import needs_training, preflight
            from grokking.train import pick_device  # torch: only once the config is known to be good

            for device in {c.device for c in configs}:
                pick_device(device)  # device=cuda without CUDA: one line, and no run directory
            if not multirun:  # its data and memory, before the run directory exists (a sweep's jobs: in train())
                members = member_configs(configs[0])
                if any(needs_training(m) for m in members):
                    preflight(configs[0], pick_device(configs[0].device), len(members))
            if signals is not None:
                signals.check_start_up()  # nothing created yet
            if not multirun:
                RunDir(configs[0].run_dir).create()  # Hydra would create it next, with a traceback on failure
    register_schema()
    sys.argv = ["grok-train", *flags, *overrides]
    with reported_errors():  # a Ctrl-C that gets here (a sweep's, or a second one): one line, exit 130
        hydra_main()
    if not (multirun and configs):
        return 0
    statuses = [run_status(Path(m.run_dir), m.train.steps) for c in configs for m in member_configs(c)]
    unfinished = [s for s in statuses if s.state != "done"]
    print(f"grok: sweep: {summary(statuses)}")
    for failure in FAILED_JOBS:
        print(f"grok: failed: {failure}", file=sys.stderr)
    return 1 if FAILED_JOBS or unfinished else 0
