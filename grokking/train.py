"""One training run: a decoder-only LM on QF, TI or Dyck, evaluated in-domain vs OOD every `eval_every` steps.

    grok train task=qf depth=6 seed=3       # CLI entry (cli/train.py); resumes if the run dir exists
    python -c "from cli.compose import compose_config; from grokking.train import train; \
               train(compose_config(['experiment=smoke']))"

The data order derives from (seed, epoch) and the RNG state is checkpointed, so a resumed run sees exactly
the batches and dropout masks an uninterrupted one would. `train()` always leaves a `status.json`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from grokking.checkpoint import save_latest, save_snapshot, snapshot_path
from grokking.config import member_configs, validate
from grokking.console import startup_block, summary
from grokking.ema import WeightAverages, ema_suffix
from grokking.errors import ConfigError, DataError, GrokError, RunDirError, TrainingFailed, WriteError
from grokking.evaluate import Evaluator, Members
from grokking.loggers import MetricsLogger, stable_run_id
from grokking.model import build_model, lm_loss
from grokking.preflight import needs_training, preflight
from grokking.resume import ResumePoint, pack_resume_points
from grokking.rundir import RunDir, changed_training_keys, config_hash
from grokking.runfiles import os_error_in, read_metrics
from grokking.signals import Preempted, TrainingSignals

log = logging.getLogger("grokking.train")
# Test-only switch: "SEED:STEP" kills the process (SIGKILL) right after that member saved that step, the moment a
# node failure between two members' saves would hit (tests/integration/test_pack_crashes.py).
KILL_AFTER_MEMBER_SAVE = "GROK_TEST_KILL_AFTER_MEMBER_SAVE"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}") from None


def learning_rate(step: int, optim_cfg) -> float:
    """Linear warm-up 0 -> lr over warmup_steps, then linear decay to 0 at decay_horizon (the first update has LR 0)."""
    if step < optim_cfg.warmup_steps:
        return optim_cfg.lr * step / optim_cfg.warmup_steps
    remaining = (optim_cfg.decay_horizon - step) / (optim_cfg.decay_horizon - optim_cfg.warmup_steps)
    return optim_cfg.lr * max(0.0, remaining)


class BatchOrder:
    """Training batches as a pure function of (seed, step): epoch e shuffles with default_rng([seed, e])."""

    def __init__(self, encoded: list[list[int]], vocab, batch_size: int, seed: int):
        lengths = np.array([len(row) + 1 for row in encoded])
        self.inputs = np.full((len(encoded), lengths.max()), vocab.pad, dtype=np.int64)
        self.targets = np.full((len(encoded), lengths.max()), -100, dtype=np.int64)
        for i, row in enumerate(encoded):
            self.inputs[i, : len(row) + 1] = [vocab.sos, *row]
            self.targets[i, : len(row) + 1] = [*row, vocab.eos]
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = math.ceil(len(encoded) / batch_size)
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def epoch_of(self, step: int) -> int:
        return step // self.per_epoch

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.lengths))
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        width = int(self.lengths[rows].max())
        return torch.from_numpy(self.inputs[rows, :width]), torch.from_numpy(self.targets[rows, :width])


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic


def check_data(cfg: DictConfig, data) -> None:
    """Refuse data that cannot be trained on faithfully: an empty split (e.g. an empty file under data.source
    would log made-up zero metrics), a training set smaller than a batch, sequences longer than model.max_len."""
    empty = [name for name in ("train", "val", "gen") if not getattr(data, name)]
    if empty:
        where = f"data.source={cfg.data.source}" if cfg.data.source else str(data.directory)
        raise DataError(f"empty {'/'.join(empty)} split in {where}")
    if cfg.train.batch_size > len(data.train):
        raise ConfigError(f"train.batch_size ({cfg.train.batch_size}) is larger than the training set "
                          f"({len(data.train)})")
    longest = max(len(e.tokens) for split in (data.train, data.val, data.gen) for e in split) + 1  # + <sos>/<eos>
    if longest > cfg.model.max_len:
        raise ConfigError(f"model.max_len ({cfg.model.max_len}) is shorter than the longest sequence of the data "
                          f"({longest} tokens with <sos>/<eos>)")


class RunLogHandler(logging.FileHandler):
    """train.log: a convenience copy of the log. A failed write is dropped, not printed as a traceback; the
    failure surfaces on one line through the next metrics, status or checkpoint write."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def attach_file_log(run_dir: RunDir, seed: int | None = None) -> logging.Handler:
    """Copy grok's log lines into the run's train.log; in a seed pack, only the lines of member `seed` (and the
    pack's shared lines)."""
    try:
        handler = RunLogHandler(run_dir.path / "train.log")
    except OSError as exc:
        raise WriteError(f"cannot write {run_dir.path / 'train.log'}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if seed is not None:
        handler.addFilter(lambda record: getattr(record, "seed", seed) == seed)
    logging.getLogger("grokking").addHandler(handler)
    logging.getLogger("grokking").setLevel(logging.INFO)
    return handler


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train (or resume, or skip if finished) the run described by `cfg` -- with `seeds`, every member of the
    seed pack, each in its own run directory; returns the last metrics (of the first member)."""
    validate(cfg)
    member_cfgs = member_configs(cfg)
    device = pick_device(cfg.device)  # an unusable device fails before anything is written
    if any(needs_training(member_cfg) for member_cfg in member_cfgs):
        preflight(cfg, device, len(member_cfgs))  # data and memory, before any run directory is created
    with TrainingSignals() as signals:  # from here on a signal ends the run with a truthful status
        locked: list[RunDir] = []
        created: list[RunDir] = []
        try:
            for member_cfg in member_cfgs:
                run_dir = RunDir(member_cfg.run_dir)
                run_dir.create()
                if not any(run_dir.path.iterdir()):  # new (here, or by `grok train` just before Hydra ran)
                    created.append(run_dir)
                run_dir.lock()
                locked.append(run_dir)
            return start(member_cfgs, locked, signals)
        finally:
            for run_dir in locked:
                run_dir.release()
            for run_dir in created:  # a refusal leaves no empty directory behind
                run_dir.remove_if_unused()


def start(member_cfgs: list[DictConfig], run_dirs: list[RunDir], signals: TrainingSignals) -> dict[str, Any]:
    """Skip finished runs (refusing a changed training config), archive old ones (force=true, resume=never),
    leave a pack's failed members out, then train the rest together."""
    packed = len(member_cfgs) > 1
    handlers, members, left_out = [], [], []
    try:
        for cfg, run_dir in zip(member_cfgs, run_dirs, strict=True):
            status = run_dir.status()
            archived = run_dir.archive() if cfg.force or cfg.resume == "never" else None
            handlers.append(attach_file_log(run_dir, cfg.seed if packed else None))
            if archived:
                log.info("%s: previous run files moved to %s", "force=true" if cfg.force else "resume=never",
                         archived, extra={"seed": cfg.seed})
            elif status and status["status"] == "done" and status["step"] >= cfg.train.steps:
                if cfg.resume != "force":
                    refuse_changed_config(run_dir, cfg)
                log.info("grok: %s is already done at step %d (force=true retrains it)\n%s", run_dir.path,
                         status["step"], summary(read_metrics(run_dir.metrics_file)[0], cfg.run_dir, status["step"]),
                         extra={"seed": cfg.seed})
                continue
            elif status and cfg.resume != "force":  # refuse before anything is written to another config's run
                refuse_changed_config(run_dir, cfg)
            if packed and not archived and status and status["status"] == "failed":
                log.warning("grok: %s failed earlier (%s); left out of the pack: retry it alone with seed=%d",
                            run_dir.path, status.get("reason"), cfg.seed, extra={"seed": cfg.seed})
                left_out.append(f"seed {cfg.seed} failed earlier, left out (retry it alone with seed={cfg.seed})")
                continue
            members.append(Member(cfg, run_dir, status))
        if not members:
            if left_out:
                raise TrainingFailed(f"nothing trained: every member of the seed pack failed earlier "
                                     f"({', '.join(left_out)})")
            return {"step": member_cfgs[0].train.steps, "status": "done"}
        points = pack_resume_points([m.run_dir.ckpt for m in members], [m.seed for m in members],
                                    member_command()) if members[0].cfg.resume != "never" else [(None, "")] * len(members)
        trainer = Trainer(members)
        last = trainer.run(signals, points)
        for member in trainer.members:
            log.info(summary(read_metrics(member.run_dir.metrics_file)[0], member.cfg.run_dir, member.saved_step),
                     extra={"seed": member.seed})
        failed = left_out + trainer.failed
        if failed:
            raise TrainingFailed(f"{len(failed)} of {len(member_cfgs)} members of the seed pack did not finish: "
                                 f"{'; '.join(failed)}")
        return last
    finally:
        for handler in handlers:
            logging.getLogger("grokking").removeHandler(handler)
            handler.close()


def member_command() -> str:
    """This command line without its seed/seeds overrides: with `seed=S` added, it trains member S alone."""
    kept = [a for a in sys.argv[1:] if not a.startswith("-") and not a.lstrip("+~").startswith(("seed=", "seeds="))]
    return " ".join(["grok train", *kept])


def refuse_changed_config(run_dir: RunDir, cfg: DictConfig, saved_hash: str | None = None) -> None:
    """RunDirError naming the changed training keys if the run in `run_dir` was trained with another config
    (by its checkpoint's config hash when given, else by its config.yaml)."""
    saved_cfg = run_dir.saved_config()  # None if missing, or not a config (then moved aside, with one warning)
    diff = changed_training_keys(saved_cfg, cfg) if saved_cfg is not None else []
    if saved_cfg is None and saved_hash is None:
        saved_hash = run_dir.saved_config_hash()  # meta.json's record of the last segment, when there is one
    if diff or (saved_hash is not None and saved_hash != config_hash(cfg)):
        shown = 8  # every changed key up to this many, then a count
        keys = ", ".join(diff[:shown]) + (f", and {len(diff) - shown} more" if len(diff) > shown else "")
        raise RunDirError(f"{run_dir.path} holds a run with a different training config "
                          f"({keys or 'config hash differs'}); use resume=force to continue it "
                          f"anyway, force=true to start over, or another tag=/run_dir=")
    if saved_cfg is None and saved_hash is not None and not (run_dir.path / "config.yaml").exists():
        run_dir.save_config(cfg)  # moved aside or lost, and the run's hash says this config is the run's


class Member:
    """One run being trained (a single run, or one seed of a pack): its directory, data order, logger, probes,
    loss windows, and the bookkeeping its checkpoint carries."""

    def __init__(self, cfg: DictConfig, run_dir: RunDir, status: dict[str, Any] | None):
        self.cfg, self.run_dir, self.seed = cfg, run_dir, int(cfg.seed)
        # the step of the checkpoint on disk, which every status.json reports (until restore(): the last known)
        self.saved_step = status["step"] if status and isinstance(status.get("step"), int) else 0
        self.preempted: str | None = None
        self.run_id = stable_run_id(run_dir)
        self.hash = config_hash(cfg)
        self.elapsed_before = 0.0
        self.resumed_from: str | None = None  # the checkpoint file this segment resumed from
        self.resumed_sums: list[list[float]] | None = None  # loss/grad-norm window sums saved with it
        self.logger: MetricsLogger | None = None
        self.prober = None
        self.diagnostics = None

    def prepare(self, data, encoded: list[list[int]], device: torch.device) -> None:
        self.batches = BatchOrder(encoded, data.vocab, self.cfg.train.batch_size, self.seed)
        if self.cfg.diagnostics.enabled:
            from grokking.diagnostics import Diagnostics

            self.diagnostics = Diagnostics(self.cfg, data, self.run_dir.path, device)
        if self.cfg.probes.enabled:
            from grokking.probes import Prober

            self.prober = Prober(self.cfg, data, self.run_dir.path, device)

    def start_windows(self, step: int, device: torch.device) -> None:
        """Loss and grad-norm sums since the last log line / eval, carried across a resume so averages match."""
        tcfg = self.cfg.train
        sums = self.resumed_sums or [[0.0, 0.0], [0.0, 0.0]]
        self.window, self.eval_window = self.window_sums = [torch.tensor(s, device=device) for s in sums]
        self.window_steps, self.eval_steps = ((step % tcfg.log_every, step % tcfg.eval_every) if self.resumed_sums
                                              else (0, 0))

    def add(self, stats: torch.Tensor) -> None:
        self.window += stats
        self.eval_window += stats
        self.window_steps += 1
        self.eval_steps += 1

    def close(self, outcome: str, reason: str | None) -> None:
        """Record the outcome at the step of the checkpoint on disk and close the logger. A status that cannot
        be written is logged, not raised over the real error."""
        try:
            self.run_dir.write_status(outcome, self.saved_step, reason)
        except WriteError as exc:
            if outcome == "done":
                raise
            log.warning("%s (the run %s: %s)", exc, outcome, reason, extra={"seed": self.seed})
        if self.logger is not None:
            self.logger.close(0 if outcome == "done" else 1)
            self.logger = None
        log.info("%s: %s at step %d%s", self.run_dir.path, outcome, self.saved_step, f" ({reason})" if reason else "",
                 extra={"seed": self.seed})


def compile_loss(loss_fn, cfg: DictConfig, device: torch.device, static: bool = True):
    """`compile=true`: torch.compile the loss. `static` (the padded losses of SingleStep / PackStep): with static
    shapes (dynamic=False), one graph per padded shape, of which `static_width` lets only a few occur, within
    Dynamo's recompile limit (a symbolic width breaks dropout under vmap(randomness="different"):
    "Cannot call numel() on tensor with symbolic sizes"). On CUDA with CUDA graphs ("reduce-overhead": each
    shape's graph replayed without per-kernel launch cost). On the CPU, inductor's code for the vmapped pack loss
    with attention dropout gives NaN losses (a strict xfail in tests/unit/test_compile.py); the trainer never
    compiles a pack there (CPU packs run `losses_each`), and a non-finite loss fails the member anyway."""
    if not cfg.compile:
        return loss_fn
    return torch.compile(loss_fn, dynamic=False if static else None,
                         mode="reduce-overhead" if device.type == "cuda" else None)


def bucket_width(width: int) -> int:
    """The padded width of a batch whose longest row has `width` tokens: a multiple of 8 up to 64, then a power
    of two. Few buckets recur (QF, TI: 2-4; Dyck, whose batch widths take 60-77 values: about 8), each compiled
    once by compile=true (Dynamo's recompile limit is 8 per function)."""
    if width <= 64:
        return max(8, -(-width // 8) * 8)
    return 1 << (width - 1).bit_length()


def static_width(batches: list[tuple[torch.Tensor, torch.Tensor]], pad: int, max_len: int, rows: int = 0):
    """Right-pad every (inputs, targets) batch to one width, `bucket_width` of the widest (at most `max_len`), and
    to at least `rows` rows (an epoch's short last batch keeps the shape of the others), and stack them:
    [members, rows, width]. Padding never changes the loss (pad targets are ignored, attention is causal)."""
    width = min(bucket_width(max(inputs.shape[1] for inputs, _ in batches)), max_len)
    height = max(rows, *(inputs.shape[0] for inputs, _ in batches))

    def padded(t: torch.Tensor, value: int) -> torch.Tensor:
        return F.pad(t, (0, width - t.shape[1], 0, height - t.shape[0]), value=value)

    return (torch.stack([padded(i, pad) for i, _ in batches]), torch.stack([padded(t, -100) for _, t in batches]))


def matmul_precision(cfg: DictConfig, device: torch.device) -> None:
    """precision=tf32 on CUDA: float32 matmuls on the tensor cores (TF32, a 10-bit mantissa for the products:
    a numerics change against the CPU reference, as bf16 is); fp32 and bf16 keep full-precision float32 matmuls.
    Process-wide: training, evaluation and probes all run with it. No effect on the CPU."""
    if device.type == "cuda":
        tf32 = getattr(cfg, "precision", "fp32") == "tf32"
        torch.set_float32_matmul_precision("high" if tf32 else "highest")


class SingleStep:
    """The training step of one model: clip_grad_norm_ and one fused AdamW. On the CPU the loss skips the
    padding (TransformerLM.loss); on CUDA (`static_shapes`) it runs on batches padded by `static_width` with no
    host sync (the padding-free loss needs one), so a few static shapes recur and compile=true can capture them."""

    def __init__(self, model, cfg: DictConfig, device: torch.device, pad: int):
        self.model, self.pad = model, pad
        self.rows = getattr(getattr(cfg, "train", None), "batch_size", 0)  # an epoch's last batch is padded to it
        matmul_precision(cfg, device)
        self.optimizer = make_optimizer(model.parameters(), cfg)
        self.static_shapes = device.type == "cuda"
        self.padded_loss = compile_loss(lambda ids, targets: lm_loss(model(ids), targets), cfg, device)
        self.packed_loss = compile_loss(model.loss, cfg, device, static=False)

    def __call__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, clip: float, autocast,
                 device: torch.device) -> torch.Tensor:
        """One optimizer step; [1, 2] (loss, pre-clipping gradient norm), on the device (no host sync)."""
        if self.static_shapes:
            batches = [tuple(t[0] for t in static_width(batches, self.pad, self.model.shape.max_len, self.rows))]
        inputs, targets = (t.to(device, non_blocking=True) for t in batches[0])
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            loss = (self.padded_loss if self.static_shapes else self.packed_loss)(inputs, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        return torch.stack([loss.detach().float(), grad_norm.detach().float()])[None]

    def model_of(self, k: int):
        return self.model

    def weights(self) -> dict[str, torch.Tensor]:
        """The trained tensors by parameter name (what weight averages follow)."""
        return dict(self.model.named_parameters())

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[Members]:
        """The model in eval mode, as a pack of one for grokking.evaluate."""
        self.model.eval()
        try:
            yield Members.of(self.model)
        finally:
            self.model.train()

    def optimizer_state(self, k: int) -> dict:
        return self.optimizer.state_dict()

    def load(self, models: list, optimizer_states: list[dict]) -> None:
        self.model.load_state_dict(models[0].state_dict())
        self.optimizer.load_state_dict(optimizer_states[0])


class PackStep:
    """The training step of a seed pack: members stacked in one PackedLM, one batch each, per-member clipping,
    one fused AdamW over the stacked weights (K independent ones: AdamW is element-wise). On CUDA all members run
    as one vmapped forward on batches padded to one static width (`static_width`); on the CPU, where the
    arithmetic dominates, each member runs the padding-free loss on its own batch."""

    def __init__(self, models: list, cfg: DictConfig, device: torch.device, pad: int):
        self.cfg, self.device, self.pad = cfg, device, pad
        self.rows = getattr(getattr(cfg, "train", None), "batch_size", 0)  # an epoch's last batch is padded to it
        matmul_precision(cfg, device)
        self.static_shapes = device.type == "cuda"
        self.scratch = models[0]  # holds one member's weights at a time, for evaluation, probes and checkpoints
        self.build(models)

    def build(self, models: list) -> None:
        from grokking.pack import PackedLM

        self.pack = PackedLM(models).to(self.device)
        self.optimizer = make_optimizer(self.pack.parameters(), self.cfg)
        self.compute_loss = compile_loss(self.pack.loss, self.cfg, self.device)

    def __call__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, clip: float, autocast,
                 device: torch.device) -> torch.Tensor:
        """One optimizer step of every member; [K, 2] (loss, pre-clipping gradient norm), on the device."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            if self.static_shapes:
                padded = static_width(batches, self.pad, self.pack.shape.max_len, self.rows)
                losses = self.compute_loss(*(t.to(device, non_blocking=True) for t in padded))
            else:
                losses = self.pack.losses_each([(i.to(device), t.to(device)) for i, t in batches])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # members share no weights: each gets exactly its own loss's gradient
        norms = self.pack.clip_grad_norms_(clip)
        self.optimizer.step()
        return torch.stack([losses.detach().float(), norms.detach().float()], dim=1)

    def model_of(self, k: int):
        return self.pack.member_model(k, self.scratch)

    def weights(self) -> dict[str, torch.Tensor]:
        """The trained tensors by parameter name, stacked [K, ...] (what weight averages follow)."""
        return self.pack.params()

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[Members]:
        """Every member in eval mode for grokking.evaluate and the probes: one vmapped forward pass on CUDA,
        member by member on the CPU (the same per-member arithmetic as a single run there)."""
        yield Members(self.pack.size, lambda inputs: self.pack.logits(inputs, batched=self.static_shapes),
                      lambda fn, *args: self.pack.apply(fn, *args, batched=self.static_shapes))

    def optimizer_state(self, k: int) -> dict:
        return self.pack.member_optimizer_state(self.optimizer.state_dict(), k)

    def load(self, models: list, optimizer_states: list[dict]) -> None:
        for k, model in enumerate(models):
            self.pack.load_member(k, model)
        self.optimizer.load_state_dict(self.pack.stacked_optimizer_state(optimizer_states))

    def drop(self, k: int) -> None:
        """Take member k out of the pack (its weights and optimizer state); the others continue unchanged."""
        keep = [i for i in range(self.pack.size) if i != k]
        state = self.optimizer.state_dict()
        models = [copy.deepcopy(self.model_of(i)) for i in keep]
        states = [self.pack.member_optimizer_state(state, i) for i in keep]
        self.build(models)
        self.optimizer.load_state_dict(self.pack.stacked_optimizer_state(states))


def make_optimizer(parameters, cfg: DictConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameters, lr=0.0, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                             weight_decay=cfg.optim.weight_decay, fused=True)  # one kernel for all params


class Trainer:
    """The one training loop, for a single run or a seed pack: every member steps together on its own batch."""

    def __init__(self, members: list[Member]):
        self.members = members
        self.cfg = members[0].cfg  # the training config all members share (only the seed differs)
        self.packed = len(members) > 1  # a pack of one trains exactly as a single run
        self.step = 0
        self.segment_start = time.perf_counter()
        self.failed: list[str] = []  # one line per member that left the pack

    def prepare(self) -> None:
        """Data, models, optimizer and batch orders (the slow part of start-up)."""
        from grokking.data import load_task_data

        cfg = self.cfg
        self.device = pick_device(cfg.device)
        self.data = load_task_data(cfg)
        check_data(cfg, self.data)
        encoded = [self.data.vocab.encode(e.tokens) for e in self.data.train]  # once for every member
        models = []
        for member in self.members:  # each member initialised exactly as its single run
            member.run_dir.snapshots.mkdir(parents=True, exist_ok=True)
            seed_everything(member.seed, cfg.deterministic)
            models.append(build_model(cfg.model, self.data.vocab.size).to(self.device))
            member.prepare(self.data, encoded, self.device)
        self.engine = (PackStep(models, cfg, self.device, self.data.vocab.pad) if self.packed
                       else SingleStep(models[0], cfg, self.device, self.data.vocab.pad))
        self.evaluator = Evaluator(self.data, cfg.task, cfg.train.eval_batch_size, self.device)
        self.averages = (WeightAverages(self.engine.weights(), cfg.eval.ema, len(models) if self.packed else None)
                         if cfg.eval.ema else None)  # from the initial weights; restore() loads saved ones

    # -- state -----------------------------------------------------------------------------------------
    def restore(self, found: list[ResumePoint]) -> None:
        """Resume every member from its resume point (grokking.resume: all at one step), or start them all
        afresh."""
        if found[0][0] is None:
            for k, member in enumerate(self.members):
                member.saved_step = 0
                member.run_dir.truncate_after(-1)  # log lines of a segment that died before its first checkpoint
                model = self.engine.model_of(k)
                save_snapshot(model.state_dict(), 0, member.run_dir.ckpt / "init.pt")
                if member.diagnostics is not None:
                    member.diagnostics.truncate_after(-1)
                    member.diagnostics.record(model, 0, 0.0)
            return
        models, optimizer_states = [], []
        for member, (state, source) in zip(self.members, found, strict=True):
            saved_hash = state.get("config_hash")
            if saved_hash is not None and saved_hash != member.hash and member.cfg.resume != "force":
                refuse_changed_config(member.run_dir, member.cfg, saved_hash)
            model = build_model(self.cfg.model, self.data.vocab.size).to(self.device)
            model.load_state_dict(state["model"])
            models.append(model)
            optimizer_states.append(state.get("optimizer"))
            member.saved_step = int(state["step"])
            member.elapsed_before = float(state.get("elapsed_s", 0.0))
            member.run_id = state.get("run_id", member.run_id)
            member.resumed_sums = state.get("window_sums")
            member.run_dir.truncate_after(member.saved_step)
            if member.diagnostics is not None:
                member.diagnostics.truncate_after(member.saved_step)
            member.resumed_from = source
            log.info("resuming %s from %s at step %d", member.run_dir.path, source, member.saved_step,
                     extra={"seed": member.seed})
        if all(s is not None for s in optimizer_states):
            self.engine.load(models, optimizer_states)
            restore_rng(found[0][0]["rng"], self.device)
        else:  # weights-only checkpoints: fresh optimizer state
            self.engine.load(models, [self.engine.optimizer_state(k) for k in range(len(models))])
        if self.averages is not None:
            for k, (member, (state, source)) in enumerate(zip(self.members, found, strict=True)):
                self.averages.load_member(k, state.get("ema"), f"{member.run_dir.ckpt / source}")
        self.step = self.members[0].saved_step

    def save(self, k: int) -> None:
        member = self.members[k]
        state = {"model": self.engine.model_of(k).state_dict(), "optimizer": self.engine.optimizer_state(k),
                 "step": self.step, "epoch": member.batches.epoch_of(self.step), "rng": rng_state(self.device),
                 "run_id": member.run_id, "config_hash": member.hash, "elapsed_s": self.elapsed(member),
                 "window_sums": [w.tolist() for w in member.window_sums]}
        if self.averages is not None:
            state["ema"] = self.averages.member_state(k)
        save_latest(state, member.run_dir.ckpt)
        member.saved_step = self.step
        member.run_dir.write_status("running", self.step)  # status.json always names the checkpoint's step
        if os.environ.get(KILL_AFTER_MEMBER_SAVE) == f"{member.seed}:{self.step}":
            os.kill(os.getpid(), signal.SIGKILL)  # test-only: a crash between two members' saves

    def save_all(self) -> None:
        """Every member's checkpoint, in member order. A pack member whose run directory vanished while it was
        being saved leaves the pack (drop_vanished catches the rest between steps)."""
        for member in list(self.members):
            if member not in self.members:  # left with another vanished member
                continue
            try:
                self.save(self.members.index(member))
            except WriteError:
                if not self.packed or member.run_dir.ckpt.is_dir():
                    raise
                self.drop_vanished()

    def elapsed(self, member: Member) -> float:
        return member.elapsed_before + time.perf_counter() - self.segment_start

    # -- the loop --------------------------------------------------------------------------------------
    def run(self, signals: TrainingSignals, resume_points: list[ResumePoint]) -> dict[str, Any]:
        """Start up, train, and always leave a status.json per member: done, preempted (a signal) or failed
        (the reason)."""
        outcome, reason, last = "failed", "unexpected exit", {}
        try:
            self.prepare()
            signals.check_start_up()
            self.restore(resume_points)
            parameters = sum(p.numel() for p in self.engine.model_of(0).parameters())
            for member in self.members:
                member.run_dir.save_config(member.cfg)
                member.run_dir.write_meta(member.cfg, str(self.device),
                                          {"run_id": member.run_id, "resumed_at_step": self.step,
                                           "parameters": parameters,
                                           "seed_pack": [m.seed for m in self.members] if self.packed else None})
                log.info(startup_block(member.cfg, str(self.device), parameters, member.resumed_from, self.step),
                         extra={"seed": member.seed})
                member.run_dir.write_status("running", member.saved_step)
                member.logger = MetricsLogger(member.cfg, member.run_dir, member.run_id)
            if self.packed:
                log.info("grok: seed pack of %d members (seeds %s), one process", len(self.members),
                         ", ".join(str(m.seed) for m in self.members))
            signals.check_start_up()
            with logging_redirect_tqdm():  # log lines go above the bar
                last = self.loop(signals)
            outcome, reason = "done", None
            return last
        except Preempted as exc:
            outcome, reason = "preempted", str(exc)
            raise
        except GrokError as exc:
            reason = str(exc)
            raise
        except KeyboardInterrupt:
            outcome, reason = "preempted", ("interrupted twice (SIGINT), stopped without saving; re-run the same "
                                            "command to resume from the last checkpoint")
            raise
        except Exception as exc:
            cause = os_error_in(exc)
            if cause is None:
                reason = f"{type(exc).__name__}: {exc}"
                raise
            error = WriteError(f"{cause.filename or 'I/O'}: {cause.strerror or cause}")
            reason = str(error)
            raise error from None
        except BaseException as exc:  # includes submitit's SystemExit after it requeued a preempted job
            preempted = self.members[0].preempted if self.members else None
            outcome, reason = ("preempted", preempted) if preempted else ("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.finish(outcome, reason, signals)

    def finish(self, outcome: str, reason: str | None, signals: TrainingSignals) -> None:
        """Close every member still in training; then let a replaced handler act on the signal (submitit
        requeues the job)."""
        for member in self.members:
            member.close(outcome, member.preempted if outcome == "preempted" and member.preempted else reason)
        if outcome == "preempted" and signals.signum:
            signals.chain()

    def loop(self, preemption: TrainingSignals) -> dict[str, Any]:
        cfg, tcfg = self.cfg, self.cfg.train
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        for member in self.members:
            member.start_windows(self.step, self.device)
        last: dict[str, Any] = {"step": self.step}
        self.segment_start = time.perf_counter()
        seeds = ",".join(str(m.seed) for m in self.members)
        bar = tqdm(total=tcfg.steps, initial=self.step, disable=None, dynamic_ncols=True, mininterval=1.0,
                   desc=f"{cfg.task.name} d{cfg.depth} s{seeds}")
        plain_lines = bar.disable
        try:
            if self.step == 0:
                last = self.evaluate_all({})
            while self.step < tcfg.steps:
                lr = learning_rate(self.step, cfg.optim)
                stats = self.engine([m.batches.batch(self.step) for m in self.members], lr, clip, autocast,
                                    self.device)
                if self.averages is not None:
                    self.averages.update()
                self.step += 1
                for member, member_stats in zip(self.members, stats, strict=True):
                    member.add(member_stats)
                if self.packed:  # after this step's stats are booked: the members' rows stay aligned with them
                    self.drop_vanished()
                bar.update(1)
                for k, member in enumerate(self.members):
                    if member.diagnostics is not None and member.diagnostics.due(self.step):
                        member.diagnostics.record(self.engine.model_of(k), self.step, lr)

                if self.step % tcfg.log_every == 0 or self.step == tcfg.steps:
                    means = self.window_means("window")  # the one host sync per log window
                    for member, (mean_loss, mean_norm) in zip(self.members, means, strict=True):
                        member.logger.log_train({"step": self.step, "train/loss": mean_loss, "train/lr": lr,
                                                 "train/grad_norm": mean_norm})
                        if plain_lines:
                            log.info("step %d/%d loss %.4f lr %.2e grad_norm %.3f%s", self.step, tcfg.steps,
                                     mean_loss, lr, mean_norm, f" (seed {member.seed})" if self.packed else "",
                                     extra={"seed": member.seed})
                        member.window.zero_()
                        member.window_steps = 0
                    bar.set_postfix(loss=f"{means[0][0]:.4f}", refresh=False)

                if self.step % tcfg.eval_every == 0 or self.step == tcfg.steps:
                    means = self.window_means("eval_window")
                    last = self.evaluate_all({member.seed: {"train/loss": loss, "train/lr": lr, "train/grad_norm": norm}
                                              for member, (loss, norm) in zip(self.members, means, strict=True)})
                    for member in self.members:
                        member.eval_window.zero_()
                        member.eval_steps = 0

                if tcfg.snapshot_every and self.step % tcfg.snapshot_every == 0:
                    for k, member in enumerate(self.members):
                        save_snapshot(self.engine.model_of(k).state_dict(), self.step,
                                      snapshot_path(member.run_dir.ckpt, self.step))
                if self.step % tcfg.save_every == 0 or self.step == tcfg.steps or preemption.signum:
                    if self.step % tcfg.log_every:  # make sure nothing non-finite goes into a checkpoint
                        self.window_means("window")
                    self.save_all()
                if preemption.signum:
                    for member in self.members:
                        member.preempted = (f"{preemption.name} received; saved step {self.step} "
                                            f"to {member.run_dir.ckpt}/latest.pt; re-run the same command to resume")
                    raise Preempted(self.members[0].preempted, preemption.signum)
            if self.step == 0 or not all((m.run_dir.ckpt / "latest.pt").exists() for m in self.members):
                self.save_all()
            for member in self.members:
                if member.diagnostics is not None:
                    member.diagnostics.finalize()
        finally:
            bar.close()
        return last

    def window_means(self, which: str) -> list[tuple[float, float]]:
        """Every member's mean (loss, grad norm) over its `window` or `eval_window`. A member whose loss is not
        finite fails: a single run stops; a pack member is marked failed, keeps its last good checkpoint and
        leaves the pack, and the others go on."""
        sums = torch.stack([getattr(m, which) for m in self.members]).tolist()
        count = {"window": "window_steps", "eval_window": "eval_steps"}[which]
        counts = [max(1, getattr(m, count)) for m in self.members]
        means = [(loss / n, norm / n) for (loss, norm), n in zip(sums, counts, strict=True)]
        for k in reversed(range(len(self.members))):
            if not math.isfinite(means[k][0]):
                self.fail_member(k, means[k][0])
                del means[k]
        return means

    def fail_member(self, k: int, value: float) -> None:
        member = self.members[k]
        self.leave_pack(k, f"non-finite training loss ({value}) near step {self.step}; the last good checkpoint is "
                           f"kept in {member.run_dir.ckpt}")

    def drop_vanished(self) -> None:
        """A member whose run directory was deleted mid-run leaves the pack (it has nowhere to save); the others
        go on and keep saving at the same steps."""
        for k in reversed(range(len(self.members))):
            run_dir = self.members[k].run_dir
            if not run_dir.ckpt.is_dir():
                self.leave_pack(k, f"its run directory {run_dir.path} disappeared near step {self.step}")

    def leave_pack(self, k: int, reason: str) -> None:
        """Member k stops as failed (with `reason`); the others go on. The last member's failure ends the run."""
        member = self.members[k]
        if len(self.members) == 1:
            raise TrainingFailed(reason)
        log.error("grok: seed %d failed: %s; the other members go on", member.seed, reason, extra={"seed": member.seed})
        member.close("failed", reason)
        self.failed.append(f"seed {member.seed}: {reason}")
        self.engine.drop(k)
        if self.averages is not None:
            self.averages.drop(k, self.engine.weights())
        del self.members[k]

    def evaluate_all(self, train_stats: dict[int, dict[str, float]]) -> dict[str, Any]:
        """Evaluate every member at the current step (together: grokking.evaluate batches over members), probe
        each on the probe cadence, log each record; return the first member's."""
        tcfg = self.cfg.train
        seeds = [m.seed for m in self.members]
        with self.engine.evaluating() as members:
            metrics = self.evaluator(members, seeds, self.step)
            if self.members[0].prober is not None and self.step % tcfg.probe_every == 0:
                for record, probes in zip(metrics, self.probe_all(members), strict=True):
                    record.update(probes)
        for decay in self.averages.decays if self.averages is not None else ():
            with self.averages.swapped_in(decay), self.engine.evaluating() as members:
                for record, averaged in zip(metrics, self.evaluator(members, seeds, self.step, ema_suffix(decay)),
                                            strict=True):
                    record.update(averaged)
        records = []
        for k, member in enumerate(self.members):
            record = {"step": self.step, "epoch": member.batches.epoch_of(self.step),
                      "elapsed_s": round(self.elapsed(member), 2), **train_stats.get(member.seed, {}), **metrics[k]}
            member.logger.log_eval(record)
            log.info("step %d: " + " ".join(f"{key}={v:.4f}" for key, v in record.items()
                                            if (key.endswith("acc") or "/acc_ema" in key) and v is not None)
                     + (f" (seed {member.seed})" if self.packed else ""), self.step, extra={"seed": member.seed})
            records.append(record)
        return records[0]

    def probe_all(self, members: Members) -> list[dict[str, Any]]:
        """Every member's probes: batched over members when they share the probe sample (they do, unless a
        member's run directory kept a sample from an older grok), else member by member."""
        first = self.members[0].prober
        if all(first.shares_sample_with(m.prober) for m in self.members):
            return first.probe(members, self.engine.model_of, self.step)
        return [m.prober(self.engine.model_of(k), self.step) for k, m in enumerate(self.members)]
