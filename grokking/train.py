"""One training run: a decoder-only LM on QF, TI or Dyck, evaluated in-domain vs OOD every `eval_every` steps.

    grok train task=qf depth=6 seed=3       # CLI entry (cli/train.py); resumes if the run dir exists
    python -c "from cli.compose import compose_config; from grokking.train import train; \
               train(compose_config(['experiment=smoke']))"

The data order derives from (seed, epoch) and the RNG state is checkpointed, so a resumed run sees exactly
the batches and dropout masks an uninterrupted one would. `train()` always leaves a `status.json`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from grokking.checkpoint import load_resume_state, save_latest, save_snapshot, snapshot_path
from grokking.config import validate
from grokking.console import startup_block, summary
from grokking.errors import ConfigError, DataError, GrokError, RunDirError, TrainingFailed, WriteError
from grokking.evaluate import evaluate
from grokking.loggers import MetricsLogger, stable_run_id
from grokking.model import build_model
from grokking.rundir import RunDir, changed_training_keys, config_hash
from grokking.runfiles import os_error_in, read_metrics
from grokking.signals import Preempted, TrainingSignals

log = logging.getLogger("grokking.train")


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


def attach_file_log(run_dir: RunDir) -> logging.Handler:
    try:
        handler = RunLogHandler(run_dir.path / "train.log")
    except OSError as exc:
        raise WriteError(f"cannot write {run_dir.path / 'train.log'}: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("grokking").addHandler(handler)
    logging.getLogger("grokking").setLevel(logging.INFO)
    return handler


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train (or resume, or skip if finished) the run described by `cfg`; returns its last metrics."""
    validate(cfg)
    pick_device(cfg.device)  # an unusable device fails before anything is written
    with TrainingSignals() as signals:  # from here on a signal ends the run with a truthful status
        run_dir = RunDir(cfg.run_dir)
        run_dir.create()
        run_dir.lock()
        try:
            return start(cfg, run_dir, signals)
        finally:
            run_dir.release()


def start(cfg: DictConfig, run_dir: RunDir, signals: TrainingSignals) -> dict[str, Any]:
    """Skip a finished run (refusing a changed training config), or archive the old run (force=true,
    resume=never), then train."""
    status = run_dir.status()
    archived = run_dir.archive() if cfg.force or cfg.resume == "never" else None
    handler = attach_file_log(run_dir)
    try:
        if archived:
            log.info("%s: previous run files moved to %s", "force=true" if cfg.force else "resume=never", archived)
        elif status and status["status"] == "done" and status["step"] >= cfg.train.steps:
            if cfg.resume != "force":
                refuse_changed_config(run_dir, cfg)
            log.info("grok: %s is already done at step %d (force=true retrains it)\n%s", run_dir.path,
                     status["step"], summary(read_metrics(run_dir.metrics_file)[0], cfg.run_dir, status["step"]))
            return {"step": status["step"], "status": "done"}
        last = Trainer(cfg, run_dir, status).run(signals)
        log.info(summary(read_metrics(run_dir.metrics_file)[0], cfg.run_dir, last["step"]))
        return last
    finally:
        logging.getLogger("grokking").removeHandler(handler)
        handler.close()


def refuse_changed_config(run_dir: RunDir, cfg: DictConfig, saved_hash: str | None = None) -> None:
    """RunDirError naming the changed training keys if the run in `run_dir` was trained with another config
    (by its checkpoint's config hash when given, else by its config.yaml)."""
    saved_cfg = run_dir.path / "config.yaml"
    diff = changed_training_keys(OmegaConf.load(saved_cfg), cfg) if saved_cfg.exists() else []
    if diff or (saved_hash is not None and saved_hash != config_hash(cfg)):
        raise RunDirError(f"{run_dir.path} holds a run with a different training config "
                          f"({', '.join(diff[:6]) or 'config hash differs'}); use resume=force to continue it "
                          f"anyway, force=true to start over, or another tag=/run_dir=")


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: RunDir, status: dict[str, Any] | None):
        self.cfg, self.run_dir = cfg, run_dir
        self.step = 0
        # the step of the checkpoint on disk, which every status.json reports (until restore(): the last known)
        self.saved_step = status["step"] if status and isinstance(status.get("step"), int) else 0
        self.preempted: str | None = None

    def prepare(self) -> None:
        """Data, model, optimizer and batch order (the slow part of start-up)."""
        from grokking.data import load_task_data

        cfg, run_dir = self.cfg, self.run_dir
        run_dir.snapshots.mkdir(parents=True, exist_ok=True)
        self.device = pick_device(cfg.device)
        self.data = load_task_data(cfg)
        check_data(cfg, self.data)
        seed_everything(cfg.seed, cfg.deterministic)
        self.model = build_model(cfg.model, self.data.vocab.size).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=0.0, betas=tuple(cfg.optim.betas),
                                           eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay,
                                           fused=True)  # one kernel for all params (CPU and CUDA)
        self.batches = BatchOrder([self.data.vocab.encode(e.tokens) for e in self.data.train], self.data.vocab,
                                  cfg.train.batch_size, cfg.seed)
        self.elapsed_before = 0.0
        self.run_id = stable_run_id(run_dir)
        self.hash = config_hash(cfg)
        self.segment_start = time.perf_counter()
        self.resumed_from: str | None = None  # the checkpoint file this segment resumed from
        self.window_sums: list[torch.Tensor] = []  # loss/grad-norm sums since the last log line and eval
        self.resumed_sums: list[list[float]] | None = None
        self.diagnostics = None
        if cfg.diagnostics.enabled:
            from grokking.diagnostics import Diagnostics

            self.diagnostics = Diagnostics(cfg, self.data, run_dir.path, self.device)

    # -- state -----------------------------------------------------------------------------------------
    def restore(self) -> None:
        state, source = (None, "") if self.cfg.resume == "never" else load_resume_state(self.run_dir.ckpt)
        if state is None:
            self.saved_step = 0
            self.run_dir.truncate_after(-1)  # log lines of a segment that died before its first checkpoint
            save_snapshot(self.model.state_dict(), 0, self.run_dir.ckpt / "init.pt")
            if self.diagnostics is not None:
                self.diagnostics.truncate_after(-1)
                self.diagnostics.record(self.model, 0, 0.0)
            return
        saved_hash = state.get("config_hash")
        if saved_hash is not None and saved_hash != self.hash and self.cfg.resume != "force":
            refuse_changed_config(self.run_dir, self.cfg, saved_hash)
        self.model.load_state_dict(state["model"])
        self.step = self.saved_step = int(state["step"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            restore_rng(state["rng"], self.device)
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
            self.run_id = state.get("run_id", self.run_id)
            self.resumed_sums = state.get("window_sums")
        self.run_dir.truncate_after(self.step)
        if self.diagnostics is not None:
            self.diagnostics.truncate_after(self.step)
        log.info("resuming %s from %s at step %d", self.run_dir.path, source, self.step)
        self.resumed_from = source

    def save(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                 "epoch": self.batches.epoch_of(self.step), "rng": rng_state(self.device),
                 "run_id": self.run_id, "config_hash": self.hash, "elapsed_s": self.elapsed(),
                 "window_sums": [w.tolist() for w in self.window_sums]}
        save_latest(state, self.run_dir.ckpt)
        self.saved_step = self.step

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.segment_start

    # -- the loop --------------------------------------------------------------------------------------
    def run(self, signals: TrainingSignals) -> dict[str, Any]:
        """Start up, train, and always leave a status.json: done, preempted (a signal) or failed (the reason)."""
        cfg, run_dir = self.cfg, self.run_dir
        outcome, reason, last, logger = "failed", "unexpected exit", {}, None
        try:
            self.prepare()
            signals.check_start_up()
            self.restore()
            run_dir.save_config(cfg)
            parameters = sum(p.numel() for p in self.model.parameters())
            run_dir.write_meta(cfg, str(self.device), {"run_id": self.run_id, "resumed_at_step": self.step,
                                                       "parameters": parameters})
            log.info(startup_block(cfg, str(self.device), parameters, self.resumed_from, self.step))
            run_dir.write_status("running", self.saved_step)
            logger = MetricsLogger(cfg, run_dir, self.run_id)
            signals.check_start_up()
            with logging_redirect_tqdm():  # log lines go above the bar
                last = self.loop(logger, signals)
            outcome, reason = "done", None
            return last
        except Preempted as exc:
            outcome, reason = "preempted", str(exc)
            raise
        except GrokError as exc:
            reason = str(exc)
            raise
        except KeyboardInterrupt:
            outcome, reason = "preempted", (f"interrupted twice (SIGINT), stopped without saving; re-run the same "
                                            f"command to resume from step {self.saved_step}")
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
            outcome, reason = ("preempted", self.preempted) if self.preempted else ("failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.finish(outcome, reason, logger, signals)

    def finish(self, outcome: str, reason: str | None, logger: MetricsLogger | None, signals: TrainingSignals) -> None:
        """Record the outcome at the step of the checkpoint on disk; then let a replaced handler act on the signal
        (submitit requeues the job). A status that cannot be written is logged, not raised over the real error."""
        try:
            self.run_dir.write_status(outcome, self.saved_step, reason)
        except WriteError as exc:
            if outcome == "done":
                raise
            log.warning("%s (the run %s: %s)", exc, outcome, reason)
        if logger is not None:
            logger.close(0 if outcome == "done" else 1)
        log.info("%s: %s at step %d%s", self.run_dir.path, outcome, self.saved_step, f" ({reason})" if reason else "")
        if outcome == "preempted" and signals.signum:
            signals.chain()

    def loop(self, logger: MetricsLogger, preemption: TrainingSignals) -> dict[str, Any]:
        cfg, tcfg = self.cfg, self.cfg.train
        model = self.model
        compute_loss = torch.compile(model.loss) if cfg.compile else model.loss
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
        prober = self.make_prober()
        # loss and grad-norm sums since the last log line / eval, carried across a resume so the averages match
        sums = self.resumed_sums or [[0.0, 0.0], [0.0, 0.0]]
        window, eval_window = self.window_sums = [torch.tensor(s, device=self.device) for s in sums]
        window_steps, eval_steps = (self.step % tcfg.log_every, self.step % tcfg.eval_every) if self.resumed_sums else (0, 0)
        last: dict[str, Any] = {"step": self.step}
        self.segment_start = time.perf_counter()
        model.train()
        bar = tqdm(total=tcfg.steps, initial=self.step, disable=None, dynamic_ncols=True, mininterval=1.0,
                   desc=f"{cfg.task.name} d{cfg.depth} s{cfg.seed}")
        plain_lines = bar.disable
        try:
            if self.step == 0:
                last = self.evaluation(logger, prober, {})
            while self.step < tcfg.steps:
                inputs, targets = (t.to(self.device, non_blocking=True) for t in self.batches.batch(self.step))
                lr = learning_rate(self.step, cfg.optim)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                with autocast:
                    loss = compute_loss(inputs, targets)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                self.optimizer.step()
                self.step += 1
                stats = torch.stack([loss.detach().float(), grad_norm.detach().float()])
                window += stats
                eval_window += stats
                window_steps += 1
                eval_steps += 1
                bar.update(1)
                if self.diagnostics is not None and self.diagnostics.due(self.step):
                    self.diagnostics.record(model, self.step, lr)

                if self.step % tcfg.log_every == 0 or self.step == tcfg.steps:
                    mean_loss, mean_norm = (window / window_steps).tolist()  # the one host sync per log window
                    self.check_finite(mean_loss)
                    record = {"step": self.step, "train/loss": mean_loss, "train/lr": lr, "train/grad_norm": mean_norm}
                    logger.log_train(record)
                    bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                    if plain_lines:
                        log.info("step %d/%d loss %.4f lr %.2e grad_norm %.3f", self.step, tcfg.steps, mean_loss,
                                 lr, mean_norm)
                    window.zero_()
                    window_steps = 0

                if self.step % tcfg.eval_every == 0 or self.step == tcfg.steps:
                    mean_loss, mean_norm = (eval_window / eval_steps).tolist()
                    self.check_finite(mean_loss)
                    last = self.evaluation(logger, prober, {"train/loss": mean_loss, "train/lr": lr,
                                                            "train/grad_norm": mean_norm})
                    eval_window.zero_()
                    eval_steps = 0

                if tcfg.snapshot_every and self.step % tcfg.snapshot_every == 0:
                    save_snapshot(model.state_dict(), self.step, snapshot_path(self.run_dir.ckpt, self.step))
                if self.step % tcfg.save_every == 0 or self.step == tcfg.steps or preemption.signum:
                    if self.step % tcfg.log_every:  # make sure nothing non-finite goes into a checkpoint
                        self.check_finite(float(loss.detach()))
                    self.save()
                if preemption.signum:
                    self.preempted = (f"{preemption.name} received; saved step {self.step} "
                                      f"to {self.run_dir.ckpt}/latest.pt; re-run the same command to resume")
                    raise Preempted(self.preempted, preemption.signum)
            if self.step == 0 or not (self.run_dir.ckpt / "latest.pt").exists():
                self.save()
            if self.diagnostics is not None:
                self.diagnostics.finalize()
        finally:
            bar.close()
        return last

    def evaluation(self, logger: MetricsLogger, prober, train_stats: dict[str, float]) -> dict[str, Any]:
        """Evaluate (and probe, on the probe cadence) at the current step; log and return the record."""
        tcfg = self.cfg.train
        record = {"step": self.step, "epoch": self.batches.epoch_of(self.step), "elapsed_s": round(self.elapsed(), 2),
                  **train_stats}
        record.update(evaluate(self.model, self.data, self.cfg.task, tcfg.eval_batch_size, self.device, self.cfg.seed,
                               self.step))
        if prober is not None and self.step % tcfg.probe_every == 0:
            record.update(prober(self.model, self.step))
        logger.log_eval(record)
        log.info("step %d: " + " ".join(f"{k}={v:.4f}" for k, v in record.items()
                                        if k.endswith("acc") and v is not None), self.step)
        return record

    def check_finite(self, value: float) -> None:
        if not math.isfinite(value):
            raise TrainingFailed(f"non-finite training loss ({value}) near step {self.step}; the last good "
                                 f"checkpoint is kept in {self.run_dir.ckpt}")

    def make_prober(self):
        if not self.cfg.probes.enabled:
            return None
        from grokking.probes import Prober

        return Prober(self.cfg, self.data, self.run_dir.path, self.device)

