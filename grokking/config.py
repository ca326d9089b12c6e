"""The config schema of grok: types and validation; every value lives in the YAML under conf/.

Each default is written once, in `conf/train.yaml` or a config group it composes (`conf/task/qf.yaml`, ...), next to
a comment with its unit and the paper's value. The dataclasses below carry only types: no field has a default, so a
key that no YAML sets is a missing value that fails loudly (`compose`) instead of quietly taking a second default.
Registered with Hydra's ConfigStore as `grok_schema` (the first entry of conf/train.yaml's defaults), they make
OmegaConf reject misspelt keys (`dpeth=6`) and wrong types (`depth=abc`); value checks that types cannot express
(`depth=0`, negative steps) live in `validate()`. Code that needs a config outside `grok train` composes one with
`compose()` (`grokking/paperconfig.py`), or with `cli.compose.compose_config` (tests, scripts), which adds one-line
errors and `validate()`, so it gets the same defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from grokking.ema import check_decays
from grokking.errors import ConfigError
from grokking.tasks import get_task

MAX_STEPS = 10**9  # optimizer steps: the paper trains 300k-400k; beyond this a value is a typo, not a plan
# grok's YAML, found beside this package (a checkout, an editable install or a wheel all put conf/ next to
# grokking/), never by importing `conf`: a user's own conf/ on the path would shadow it.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
CONFIG_NAME = "train"  # conf/train.yaml, the primary config of `grok train` and `grok data`


@dataclass
class TaskConfig:
    """conf/task/<name>.yaml; the `dyck_*` knobs, which every task carries: conf/train.yaml's `task:`."""

    name: str
    n_train: int
    n_val: int
    n_gen: int
    dyck_k: int
    dyck_m: int
    dyck_min_len: int
    steps: int
    eval_every: int
    eval_gen_sample: int
    eval_gen_fixed: bool
    dyck_eval_prefixes: int
    dyck_min_dep: int
    probe_sample_size: int


@dataclass
class DataConfig:
    """conf/train.yaml's `data:`."""

    dir: str
    seed: int
    source: str | None


@dataclass
class ModelConfig:
    """conf/model/transformer.yaml (conf/model/paper_literal.yaml changes some)."""

    d_model: int
    n_heads: int
    d_ff: int
    n_layers: int
    dropout: float
    attn_dropout: float
    tied_output: bool
    output_bias: bool
    scale_embedding: bool
    max_len: int


@dataclass
class OptimConfig:
    """conf/optim/adamw.yaml."""

    lr: float
    betas: list[float]
    eps: float
    weight_decay: float
    warmup_steps: int
    decay_horizon: int
    grad_clip: float


@dataclass
class TrainLoopConfig:
    """conf/train.yaml's `train:`."""

    steps: int
    batch_size: int
    eval_every: int
    log_every: int
    probe_every: int
    save_every: int
    snapshot_every: int
    eval_batch_size: int


@dataclass
class ProbeConfig:
    """conf/train.yaml's `probes:`."""

    enabled: bool
    sample_size: int
    sample_seed: int
    tree_projection: bool
    batch_size: int


@dataclass
class DiagnosticsConfig:
    """conf/diagnostics/on.yaml (conf/diagnostics/off.yaml: the same knobs, disabled)."""

    enabled: bool
    n_per_split: int
    seed: int
    log_start: int
    log_ratio: float
    hist_bins: int
    hist_range_sigma: float
    linear_every: int
    batch_size: int


@dataclass
class EvalConfig:
    """conf/train.yaml's `eval:`."""

    ema: list[float]


@dataclass
class LoggerConfig:
    """conf/logger/wandb.yaml (conf/logger/none.yaml: the same keys, no logger)."""

    name: str
    project: str
    entity: str | None
    mode: str


@dataclass
class PathsConfig:
    """conf/paths/default.yaml."""

    runs: str


@dataclass
class GrokConfig:
    """conf/train.yaml: the top-level knobs, and the sections above."""

    task: TaskConfig
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    train: TrainLoopConfig
    probes: ProbeConfig
    diagnostics: DiagnosticsConfig
    eval: EvalConfig
    logger: LoggerConfig
    paths: PathsConfig
    depth: int
    seed: int
    seeds: list[int] | None
    tag: str
    run_dir: str
    device: str
    precision: str
    compile: bool
    deterministic: bool
    force: bool
    resume: str
    export: str | None


def register_schema() -> None:
    ConfigStore.instance().store(name="grok_schema", node=GrokConfig)


def compose(overrides: Sequence[str] = (), with_hydra: bool = False) -> DictConfig:
    """conf/train.yaml composed with `overrides` as `grok train` composes it (unvalidated; with the `hydra` node if
    `with_hydra`). Raises what Hydra and OmegaConf raise: for a misspelt key, a wrong type, a failing
    interpolation, and a key that no YAML sets (`Missing mandatory value: train.batch_size`)."""
    register_schema()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3", job_name="grok"):
            cfg = hydra_compose(CONFIG_NAME, overrides=list(overrides), return_hydra_config=with_hydra)
        job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]) if with_hydra else cfg
        OmegaConf.to_container(job, resolve=True, throw_on_missing=True)
    finally:
        GlobalHydra.instance().clear()
    return cfg


def _positive(cfg: Any, key: str) -> None:
    value = _finite(cfg, key)
    if value <= 0:
        raise ConfigError(f"{key} must be positive, got {value}")


def _non_negative(cfg: Any, key: str) -> None:
    value = _finite(cfg, key)
    if value < 0:
        raise ConfigError(f"{key} must be >= 0, got {value}")


def _finite(cfg: Any, key: str) -> float:
    value = _get(cfg, key)
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value}")
    return value


def _get(cfg: Any, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate(cfg: Any) -> None:
    """Reject impossible values with a one-line ConfigError. `cfg` is a resolved GrokConfig-shaped object."""
    if getattr(cfg, "seeds", None) is not None:
        seeds = list(cfg.seeds)
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ConfigError(f"seeds must be a non-empty list of distinct seeds >= 0, got {seeds}")
        if cfg.seed not in seeds:  # the job's own directory (Hydra's) would be a stray one outside the pack
            raise ConfigError(f"seed={cfg.seed} is not a member of seeds={seeds}: a seed pack's own directory is "
                              "its first member's; drop seed=")
    get_task(cfg.task.name)  # ConfigError naming the registered tasks
    for key in ("depth", "task.n_train", "task.n_val", "task.n_gen", "model.d_model", "model.n_heads",
                "model.d_ff", "model.max_len", "train.batch_size", "train.eval_every", "train.log_every",
                "train.probe_every", "train.save_every", "train.eval_batch_size", "optim.lr", "optim.eps",
                "optim.decay_horizon", "probes.sample_size", "probes.batch_size", "task.dyck_k", "task.dyck_m",
                "task.probe_sample_size", "diagnostics.n_per_split", "diagnostics.log_start", "diagnostics.hist_bins",
                "diagnostics.hist_range_sigma", "diagnostics.linear_every", "diagnostics.batch_size"):
        _positive(cfg, key)
    for key in ("seed", "data.seed", "train.steps", "train.snapshot_every", "optim.warmup_steps",
                "optim.weight_decay", "optim.grad_clip", "task.eval_gen_sample", "task.dyck_eval_prefixes",
                "task.dyck_min_len", "task.dyck_min_dep", "probes.sample_seed", "diagnostics.seed"):
        _non_negative(cfg, key)
    if cfg.train.steps > MAX_STEPS:
        raise ConfigError(f"train.steps (task.steps) must be at most 10**9 ({MAX_STEPS}), got {cfg.train.steps}")
    betas = list(cfg.optim.betas)
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {betas}")
    if not _finite(cfg, "diagnostics.log_ratio") > 1.0:
        raise ConfigError(f"diagnostics.log_ratio must be > 1, got {cfg.diagnostics.log_ratio}")
    if cfg.model.d_model % cfg.model.n_heads:
        raise ConfigError(f"model.d_model ({cfg.model.d_model}) must be divisible by model.n_heads ({cfg.model.n_heads})")
    if cfg.optim.decay_horizon <= cfg.optim.warmup_steps:
        raise ConfigError("optim.decay_horizon must exceed optim.warmup_steps")
    for name, p in (("model.dropout", cfg.model.dropout), ("model.attn_dropout", cfg.model.attn_dropout)):
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {p}")
    try:
        check_decays(cfg.eval.ema)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.precision not in ("fp32", "tf32", "bf16"):
        raise ConfigError(f"precision must be fp32, tf32 or bf16, got {cfg.precision!r}")
    if cfg.resume not in ("auto", "force", "never"):
        raise ConfigError(f"resume must be auto, force or never, got {cfg.resume!r}")
    if cfg.logger.name not in ("none", "wandb"):
        raise ConfigError(f"logger must be none or wandb, got {cfg.logger.name!r}")
    if cfg.logger.mode not in ("online", "offline", "disabled"):
        raise ConfigError(f"logger.mode must be online, offline or disabled, got {cfg.logger.mode!r}")
    if cfg.data.source is None and cfg.train.batch_size > cfg.task.n_train:
        raise ConfigError(f"train.batch_size ({cfg.train.batch_size}) is larger than the training set ({cfg.task.n_train})")


def member_configs(cfg: Any) -> list[Any]:
    """The single-run config of each member of a seed pack (`seed` set to the member's, `seeds` unset), in
    order; `[cfg]` for a single run. Each member's run directory is its own run's, so a member can be resumed,
    reported and probed alone."""
    if getattr(cfg, "seeds", None) is None:
        return [cfg]
    members = []
    for seed in cfg.seeds:
        member = cfg.copy()
        member.seed, member.seeds = int(seed), None
        members.append(member)
    if len({m.run_dir for m in members}) < len(members):
        raise ConfigError("the members of a seed pack need their own run directories: run_dir= must contain "
                          "${seed} (the default does; relocate runs with paths.runs= or tag= instead)")
    return members
