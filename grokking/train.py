"""One training run: a decoder-only LM on QF, TI or Dyck, evaluated in-domain vs OOD every `eval_every` steps.

    grok train task=qf depth=6 seed=3       # CLI entry (cli/train.py); resumes if the run dir exists
    python -c "from cli.compose import compose_config; from grokking.train import train; \
               train(compose_config(['experiment=smoke']))"

The data order derives from (seed, epoch) and the RNG state is checkpointed, so a resumed run sees exactly
the batches and dropout masks an uninterrupted one would. `train()` always leaves a `status.json`.

Read top to bottom: `train` locks the run directories, `train_members` trains those that need it
(grokking.resume decides which, and where each resumes), and `Trainer.loop` is the training loop; the step it
calls is grokking.step, what a checkpoint holds grokking.checkpoint.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from grokking.batches import seed_everything
from grokking.checkpoint import (
    restore_training_state,
    save_latest,
    save_snapshot,
    snapshot_path,
    training_state,
)
from grokking.config import member_configs, validate
from grokking.console import startup_block, summary
from grokking.ema import WeightAverages, ema_suffix
from grokking.errors import ConfigError, GrokError, TrainingFailed, WriteError
from grokking.evaluate import Evaluator
from grokking.loggers import MetricsLogger
from grokking.member import LossWindow, Member
from grokking.model import build_model
from grokking.pack import ScoredModels
from grokking.preflight import check_data, needs_training, preflight
from grokking.resume import ResumePoint, members_to_train, resume_points
from grokking.rundir import RunDir
from grokking.runfiles import os_error_in, read_metrics
from grokking.signals import Preempted, TrainingSignals
from grokking.step import PackStep, SingleStep

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


def arithmetic(device: torch.device) -> dict[str, Any]:
    """What decides a step's floating-point reduction order besides the code: the device and, on the CPU, the
    intra-op thread count (OMP_NUM_THREADS); recorded per segment in meta.json."""
    if device.type == "cuda":
        return {"device": "cuda", "gpu": torch.cuda.get_device_name(device)}
    return {"device": device.type, "threads": torch.get_num_threads()}


def learning_rate(step: int, optim_cfg) -> float:
    """Linear warm-up 0 -> lr over warmup_steps, then linear decay to 0 at decay_horizon (the first update has LR 0)."""
    if step < optim_cfg.warmup_steps:
        return optim_cfg.lr * step / optim_cfg.warmup_steps
    remaining = (optim_cfg.decay_horizon - step) / (optim_cfg.decay_horizon - optim_cfg.warmup_steps)
    return optim_cfg.lr * max(0.0, remaining)


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
            return train_members(member_cfgs, locked, signals)
        finally:
            for run_dir in locked:
                run_dir.release()
            for run_dir in created:  # a refusal leaves no empty directory behind
                run_dir.remove_if_unused()


def train_members(member_cfgs: list[DictConfig], run_dirs: list[RunDir], signals: TrainingSignals) -> dict[str, Any]:
    """Train the members that need it (grokking.resume.members_to_train) together, each from its resume point;
    TrainingFailed names the members of a pack that did not finish."""
    with members_to_train(member_cfgs, run_dirs) as (members, left_out):
        if not members:
            return {"step": member_cfgs[0].train.steps, "status": "done"}
        points = resume_points(members)
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
        self.step_fn = (PackStep(models, cfg, self.device, self.data.vocab.pad) if self.packed
                        else SingleStep(models[0], cfg, self.device, self.data.vocab.pad))
        self.evaluator = Evaluator(self.data, cfg.task, cfg.train.eval_batch_size, self.device)
        self.averages = (WeightAverages(self.step_fn.weights(), cfg.eval.ema, len(models) if self.packed else None)
                         if cfg.eval.ema else None)  # from the initial weights; restore() loads saved ones

    # -- state -----------------------------------------------------------------------------------------
    def restore(self, found: list[ResumePoint]) -> None:
        """Resume every member from its resume point (grokking.resume: all at one step), or start them all
        afresh."""
        if found[0][0] is None:
            for k, member in enumerate(self.members):
                member.saved_step = 0
                member.run_dir.truncate_after(-1)  # log lines of a segment that died before its first checkpoint
                model = self.step_fn.model_of(k)
                save_snapshot(model.state_dict(), 0, member.run_dir.ckpt / "init.pt")
                if member.diagnostics is not None:
                    member.diagnostics.truncate_after(-1)
                    member.diagnostics.record(model, 0, 0.0)
            return
        restore_training_state(self.members, found, self.step_fn, self.averages, self.cfg.model,
                               self.data.vocab.size, self.device)
        self.step = self.members[0].saved_step

    def save(self, k: int) -> None:
        member = self.members[k]
        window_sums = [self.log_window.member_sums(k), self.eval_window.member_sums(k)]
        save_latest(training_state(self.step_fn, k, member, self.step, self.device, self.elapsed(member),
                                   self.averages, window_sums), member.run_dir.ckpt)
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
            parameters = sum(p.numel() for p in self.step_fn.model_of(0).parameters())
            changed_arithmetic: dict[str, list[int]] = {}
            for member in self.members:
                member.run_dir.save_config(member.cfg)
                change = member.run_dir.write_meta(
                    member.cfg, str(self.device),
                    {"run_id": member.run_id, "resumed_at_step": self.step, "parameters": parameters,
                     "arithmetic": arithmetic(self.device),
                     "seed_pack": [m.seed for m in self.members] if self.packed else None})
                if change:
                    changed_arithmetic.setdefault(change, []).append(member.seed)
                log.info(startup_block(member.cfg, str(self.device), parameters, member.resumed_from, self.step),
                         extra={"seed": member.seed})
                member.run_dir.write_status("running", member.saved_step)
                member.logger = MetricsLogger(member.cfg, member.run_dir, member.run_id)
            for change, seeds in changed_arithmetic.items():
                log.warning("grok: resuming seed%s %s at step %d with other arithmetic than the last segment (%s): "
                            "training continues correctly, but not bit for bit as an uninterrupted run would",
                            "s" if len(seeds) > 1 else "", ", ".join(map(str, seeds)), self.step, change)
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
        self.log_window = LossWindow.resumed(self.members, 0, tcfg.log_every, self.step, self.device)
        self.eval_window = LossWindow.resumed(self.members, 1, tcfg.eval_every, self.step, self.device)
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
                stats = self.step_fn([m.batches.batch(self.step) for m in self.members], lr, clip, autocast,
                                     self.device)
                if self.averages is not None:
                    self.averages.update()
                self.step += 1
                self.log_window.add(stats)
                self.eval_window.add(stats)
                if self.packed:  # after this step's stats are booked: the members' rows stay aligned with them
                    self.drop_vanished()
                bar.update(1)
                for k, member in enumerate(self.members):
                    if member.diagnostics is not None and member.diagnostics.due(self.step):
                        member.diagnostics.record(self.step_fn.model_of(k), self.step, lr)

                if self.step % tcfg.log_every == 0 or self.step == tcfg.steps:
                    means = self.window_means(self.log_window)
                    for member, (mean_loss, mean_norm) in zip(self.members, means, strict=True):
                        member.logger.log_train({"step": self.step, "train/loss": mean_loss, "train/lr": lr,
                                                 "train/grad_norm": mean_norm})
                        if plain_lines:
                            log.info("step %d/%d loss %.4f lr %.2e grad_norm %.3f%s", self.step, tcfg.steps,
                                     mean_loss, lr, mean_norm, f" (seed {member.seed})" if self.packed else "",
                                     extra={"seed": member.seed})
                    self.log_window.reset()
                    bar.set_postfix(loss=f"{means[0][0]:.4f}", refresh=False)

                if self.step % tcfg.eval_every == 0 or self.step == tcfg.steps:
                    means = self.window_means(self.eval_window)
                    last = self.evaluate_all({member.seed: {"train/loss": loss, "train/lr": lr, "train/grad_norm": norm}
                                              for member, (loss, norm) in zip(self.members, means, strict=True)})
                    self.eval_window.reset()

                if tcfg.snapshot_every and self.step % tcfg.snapshot_every == 0:
                    for k, member in enumerate(self.members):
                        save_snapshot(self.step_fn.model_of(k).state_dict(), self.step,
                                      snapshot_path(member.run_dir.ckpt, self.step))
                if self.step % tcfg.save_every == 0 or self.step == tcfg.steps or preemption.signum:
                    if self.step % tcfg.log_every:  # make sure nothing non-finite goes into a checkpoint
                        self.window_means(self.log_window)
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

    def window_means(self, window: LossWindow) -> list[tuple[float, float]]:
        """The mean (loss, grad norm) of each member over `window`, in member order. A member whose loss is not
        finite fails: a single run stops; a pack member is marked failed, keeps its last good checkpoint and
        leaves the pack, and the others go on."""
        means = window.means()
        for k in reversed(range(len(self.members))):
            if not math.isfinite(means[k][0]):
                self.leave_pack(k, f"non-finite training loss ({means[k][0]}) near step {self.step}; the last good "
                                   f"checkpoint is kept in {self.members[k].run_dir.ckpt}")
                del means[k]
        return means

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
        self.step_fn.drop(k)
        self.log_window.drop(k)
        self.eval_window.drop(k)
        if self.averages is not None:
            self.averages.drop(k, self.step_fn.weights())
        del self.members[k]

    def evaluate_all(self, train_stats: dict[int, dict[str, float]]) -> dict[str, Any]:
        """Evaluate every member at the current step (together: grokking.evaluate batches over members), probe
        each on the probe cadence, log each record; return the first member's."""
        tcfg = self.cfg.train
        seeds = [m.seed for m in self.members]
        with self.step_fn.evaluating() as members:
            metrics = self.evaluator(members, seeds, self.step)
            if self.members[0].prober is not None and self.step % tcfg.probe_every == 0:
                for record, probes in zip(metrics, self.probe_all(members), strict=True):
                    record.update(probes)
        for decay in self.averages.decays if self.averages is not None else ():
            with self.averages.swapped_in(decay), self.step_fn.evaluating() as members:
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

    def probe_all(self, members: ScoredModels) -> list[dict[str, Any]]:
        """Every member's probes: batched over members when they share the probe sample (they do, unless a
        member's run directory kept a sample from an older grok), else member by member."""
        first = self.members[0].prober
        if all(first.shares_sample_with(m.prober) for m in self.members):
            return first.probe(members, self.step_fn.model_of, self.step)
        return [m.prober(self.step_fn.model_of(k), self.step) for k, m in enumerate(self.members)]
