"""Structured config schema for grok (plain dataclasses; the CLI registers them with Hydra's ConfigStore).

Every field here is typed, so OmegaConf rejects misspelt keys (`dpeth=6`) and wrong types (`depth=abc`).
Value checks that types cannot express (`depth=0`, negative steps) live in `validate()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from grokking.ema import check_decays
from grokking.errors import ConfigError
from grokking.tasks import get_task

MAX_STEPS = 10**9  # optimizer steps: the paper trains 300k-400k; beyond this a value is a typo, not a plan


@dataclass
class TaskConfig:
    name: str = MISSING  # a registered task (grokking/tasks/): qf | ti | dyck
    n_train: int = 100_000  # training sentences (paper: 100k QF/TI, 200k Dyck)
    n_val: int = 1_000  # in-domain validation sentences (paper: 1k QF/TI, 20k Dyck)
    n_gen: int = 10_000  # out-of-distribution generalisation sentences (paper: 10k QF/TI, 20k Dyck)
    dyck_k: int = 20  # Dyck bracket types
    dyck_m: int = 10  # Dyck maximum nesting depth
    dyck_min_len: int = 4  # Dyck minimum string length in tokens (END redrawn before this)
    steps: int = 300_000  # default optimizer steps (paper: 300k QF/TI, 400k Dyck)
    eval_every: int = 3_000  # default evaluation cadence in steps (3k QF/TI, 10k Dyck)
    eval_gen_sample: int = 0  # evaluate OOD on a random subset of this size (TI: 2000); 0 = all
    eval_gen_fixed: bool = False  # the subset: false = a fresh one per evaluation and seed (TI code); true = one, drawn once
    dyck_eval_prefixes: int = 5_000  # Dyck: strings in file order until this many closing positions (0 = all)
    dyck_min_dep: int = 10  # Dyck: dependency-length threshold of the filtered (paper) metric
    probe_sample_size: int = 10_000  # tree-projection sample (paper: 10k train inputs; Dyck code: 500 strings)


@dataclass
class DataConfig:
    dir: str = "data"  # where generated splits are cached (relative to the working directory)
    seed: int = 1234  # data-generation seed; fixed across training seeds
    source: str | None = None  # directory of original files to train on instead of generated ones


@dataclass
class ModelConfig:
    d_model: int = 512  # residual width (paper: 512)
    n_heads: int = 8  # attention heads (code: 8; paper text: 4)
    d_ff: int = 2048  # feed-forward width (code: 2048)
    n_layers: int = "${depth}"  # type: ignore[assignment]  # decoder blocks (interpolated from depth)
    dropout: float = 0.1  # dropout on embeddings, residual branches and FF hidden (paper: 0.1)
    attn_dropout: float = 0.1  # dropout on attention probabilities (code: 0.1)
    tied_output: bool = False  # tie output layer to the embedding (code: untied; paper text: tied)
    output_bias: bool = True  # bias on the output layer (code: yes)
    scale_embedding: bool = True  # multiply embeddings by sqrt(d_model) before adding positions (code: yes)
    max_len: int = 5000  # sinusoidal position table length in tokens (code: 5000; Dyck strings reach ~750)


@dataclass
class OptimConfig:
    lr: float = 1e-4  # peak learning rate (paper: 1e-4)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW betas (paper: 0.9, 0.999)
    eps: float = 1e-7  # AdamW epsilon (paper: 1e-7)
    weight_decay: float = 0.0  # AdamW weight decay (code: 0)
    warmup_steps: int = 10_000  # linear warm-up from 0 (paper: 10k)
    decay_horizon: int = 2_000_000  # linear decay reaches 0 here, even if training stops earlier (code: 2M)
    grad_clip: float = 1.0  # max global gradient L2 norm (code: 1; paper text: 10); 0 disables


@dataclass
class TrainLoopConfig:
    steps: int = "${task.steps}"  # type: ignore[assignment]  # optimizer steps to train
    batch_size: int = 8  # sequences per step (paper: 8)
    eval_every: int = "${task.eval_every}"  # type: ignore[assignment]  # steps between evaluations
    log_every: int = 100  # steps between train-loss / lr / grad-norm log lines
    probe_every: int = "${train.eval_every}"  # type: ignore[assignment]  # steps between model-internal probes
    save_every: int = "${train.eval_every}"  # type: ignore[assignment]  # steps between `latest` checkpoints
    snapshot_every: int = 30_000  # steps between weights-only analysis snapshots; 0 = none
    eval_batch_size: int = 64  # sequences per evaluation forward pass


@dataclass
class ProbeConfig:
    enabled: bool = True  # run the model-internal probes at probe_every
    sample_size: int = "${task.probe_sample_size}"  # type: ignore[assignment]  # fixed tree-projection sample
    sample_seed: int = 0  # seed of the fixed probe sample
    tree_projection: bool = True  # compute tscore / tparseval (the expensive probe)
    batch_size: int = 256  # sequences per probe forward pass


@dataclass
class DiagnosticsConfig:
    enabled: bool = False  # learning-dynamics diagnostics (docs/diagnostics.md)
    n_per_split: int = 2_000  # probe sentences per split (train, val, gen)
    seed: int = 1234  # probe-set seed, fixed across training seeds
    log_start: int = 100  # first log-spaced evaluation step
    log_ratio: float = 1.1  # ratio between consecutive log-spaced evaluation steps
    hist_bins: int = 201  # parameter histogram bins per tensor
    hist_range_sigma: float = 6.0  # histogram edges at +-this many init std devs
    linear_every: int = "${train.eval_every}"  # type: ignore[assignment]  # steps between linear-schedule evaluations (spec: 2000; default: train.eval_every)
    batch_size: int = 256  # probe sentences per diagnostic forward pass (memory only; results do not depend on it)


@dataclass
class EvalConfig:
    ema: list[float] = field(default_factory=list)  # weight-average decays also scored at each evaluation (paper: none)


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    project: str = "structural-grokking"  # wandb project
    entity: str | None = None  # wandb entity (team or user); null = your default
    mode: str = "offline"  # wandb mode: online | offline | disabled


@dataclass
class PathsConfig:
    runs: str = "runs"  # root of all run directories (relative to the working directory)


@dataclass
class GrokConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    depth: int = 6  # transformer layers (paper: 2, 4, 6, 8, 10)
    seed: int = 42  # training seed: init, dropout, data order (paper: 42, 52, ..., 132)
    seeds: list[int] | None = None  # a seed pack: train these seeds together in one process (null: one run on seed)
    tag: str = ""  # optional suffix for the run directory
    run_dir: str = "${paths.runs}/${task.name}${tag}/depth=${depth}/seed=${seed}"  # derived; override to relocate
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | tf32 (float32 matmuls on tensor cores) | bf16 (autocast); CUDA only
    compile: bool = False  # torch.compile the model (CUDA only)
    deterministic: bool = False  # torch deterministic algorithms (needed for bit-exact resume tests)
    force: bool = False  # retrain a finished run from scratch
    resume: str = "auto"  # auto: resume if the config matches; force: resume even if it changed; never
    # Export/import for `grok data` only
    export: str | None = None  # `grok data`: also write the original file formats into this directory


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
