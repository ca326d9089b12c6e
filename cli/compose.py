"""Config composition outside `@hydra.main`: validate overrides up front and expand sweeps into jobs.

`grok train` composes every job of a sweep *before* anything runs or is submitted, so a typo or an
impossible value in one cell of a 150-job grid fails in a second, on one line, instead of on a compute node.
"""

from __future__ import annotations

import itertools

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from cli.errors import fail, one_line
from grokking.config import compose, validate
from grokking.errors import ConfigError

HYDRA_FLAGS_WITH_VALUE = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd",
                          "--experimental-rerun", "--package", "-p", "--info", "-i", "--cfg", "-c"}


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Separate Hydra's own flags (-m, --cfg job, ...) from config overrides."""
    flags, overrides = [], []
    args = iter(argv)
    for arg in args:
        if arg.startswith("-"):
            flags.append(arg)
            if arg in HYDRA_FLAGS_WITH_VALUE and "=" not in arg:
                value = next(args, None)
                if value is None:
                    fail(f"{arg} needs a value (e.g. {arg} job)")
                flags.append(value)
        else:
            overrides.append(arg)
    return flags, overrides


def compose_config(overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """Compose (`grokking.config.compose`) and check the config for one job; raises ConfigError with a one-line
    message."""
    try:
        cfg = compose(overrides, with_hydra=with_hydra)
    except Exception as exc:  # Hydra and OmegaConf raise many types; all are the user's config
        raise ConfigError(one_line(exc)) from exc
    validate(cfg)
    return cfg


def override_key(override: str) -> str:
    """The config key a command-line override sets (`+seed=3` -> `seed`)."""
    return override.lstrip("+").split("=", 1)[0]


FIRST_MEMBER = "seed=${seeds.0}"  # a swept seeds=: each job's first member, resolved per job


def first_member_seed(seeds_override: str) -> str | None:
    """The `seed=` that makes a seed pack's own directory its first member's: that seed itself, or for a swept
    `seeds=[1,2],[3,4]` an interpolation resolved per job; None for no pack (`seeds=null`) and for a value that
    composition rejects anyway (an empty list, a malformed override)."""
    try:
        override = OverridesParser.create().parse_overrides([seeds_override])[0]
    except Exception:
        return None
    if override.is_sweep_override():
        return FIRST_MEMBER
    value = override.value()
    return f"seed={value[0]}" if isinstance(value, list) and value else None


def sweeper_params(overrides: list[str]) -> dict:
    """The hydra.sweeper.params (a preset's grid) that the non-sweep overrides compose to."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:
        raise ConfigError(one_line(exc)) from exc
    base = compose_config([o.input_line for o in parsed if not (o.is_sweep_override() or o.input_line == FIRST_MEMBER)],
                          with_hydra=True)
    params = base.hydra.sweeper.get("params")
    return OmegaConf.to_container(params, resolve=False) if params else {}  # values may interpolate the job's


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The override list of every job a multirun would launch (command-line sweeps x hydra.sweeper.params)."""
    parser = OverridesParser.create()
    preset = [f"{key}={value}" for key, value in sweeper_params(overrides).items()]
    try:
        combined = parser.parse_overrides(preset + overrides)
    except Exception as exc:
        raise ConfigError(one_line(exc)) from exc
    batches = BasicSweeper.split_arguments(combined, max_batch_size=None)
    jobs = [list(job) for job in itertools.chain.from_iterable(batches)]
    if not jobs:
        raise ConfigError(f"the sweep has no jobs (an empty range or list in: {' '.join(overrides)})")
    return jobs


def validate_jobs(jobs: list[list[str]]) -> list[DictConfig]:
    configs = []
    for job in jobs:
        try:
            configs.append(compose_config(job))
        except ConfigError as exc:
            raise ConfigError(f"{exc} (job: {' '.join(job)})") from exc
    return configs


PACK_SEEDS = "pack=seeds"


def job_seed(job: list[str]) -> int:
    """A job's seed: read from its overrides when one sets it to an integer, else composed (the config's)."""
    values = [o.split("=", 1)[1] for o in job if override_key(o) == "seed"]
    if values and values[-1].lstrip("-").isdigit():
        return int(values[-1])
    return int(validate_jobs([job])[0].seed)


def pack_seed_sweep(overrides: list[str]) -> list[str]:
    """`pack=seeds`: the overrides of the same grid with the seeds of each cell trained as one seed pack.

    The seed sweep (on the command line or in a preset's hydra.sweeper.params) is replaced by `seeds=[...]`, the
    grid's seeds in order, and `seed=` the first of them (the job's own directory is then its first member's);
    every other swept key is kept, so a 5-depth x 10-seed grid becomes 5 jobs of 10 members.
    """
    rest = [o for o in overrides if o != PACK_SEEDS]
    seeds = list(dict.fromkeys(job_seed(job) for job in expand_sweep(rest)))
    packed = [o for o in rest if override_key(o) not in ("seed", "seeds")]
    if "seed" in sweeper_params(packed):
        packed.append(f"hydra.sweeper.params.seed={seeds[0]}")
    return [*packed, f"seed={seeds[0]}", f"seeds=[{','.join(map(str, seeds))}]"]
