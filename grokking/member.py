"""A trainer's per-seed state (one run being trained: a single run, or one seed of a pack) and the loss windows
of all its members."""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig

from grokking.batches import BatchOrder
from grokking.errors import WriteError
from grokking.loggers import MetricsLogger, stable_run_id
from grokking.rundir import RunDir, config_hash

log = logging.getLogger(__name__)


class LossWindow:
    """Every member's summed (training loss, pre-clipping gradient norm) over the steps since the window was last
    reset (a log line, an evaluation): [K, 2] on the device, so adding a step's [K, 2] stats is one kernel and no
    host sync, whatever K. A member resumed from a checkpoint carries its open window's sums across the resume."""

    def __init__(self, sums: list[list[float]], steps: list[int], device: torch.device):
        self.sums, self.steps = torch.tensor(sums, device=device), steps

    @classmethod
    def resumed(cls, members: list[Member], which: int, every: int, step: int, device: torch.device) -> LossWindow:
        """The window (`which`: 0 the log window, 1 the evaluation window, closing every `every` steps) at `step`."""
        return cls([m.resumed_sums[which] if m.resumed_sums else [0.0, 0.0] for m in members],
                   [step % every if m.resumed_sums else 0 for m in members], device)

    def add(self, stats: torch.Tensor) -> None:
        self.sums += stats
        self.steps = [n + 1 for n in self.steps]

    def means(self) -> list[tuple[float, float]]:
        """Each member's mean (loss, grad norm): the one host sync of a window."""
        return [(loss / max(1, n), norm / max(1, n)) for (loss, norm), n in zip(self.sums.tolist(), self.steps,
                                                                               strict=True)]

    def member_sums(self, k: int) -> list[float]:
        return self.sums[k].tolist()

    def reset(self) -> None:
        self.sums.zero_()
        self.steps = [0] * len(self.steps)

    def drop(self, k: int) -> None:
        """Member k leaves the pack."""
        self.sums = torch.cat([self.sums[:k], self.sums[k + 1:]])
        del self.steps[k]


class Member:
    """One run being trained (a single run, or one seed of a pack): its directory, data order, logger, probes,
    and the bookkeeping its checkpoint carries (its loss windows are rows of the trainer's LossWindows)."""

    def __init__(self, cfg: DictConfig, run_dir: RunDir, status: dict[str, Any] | None):
        self.cfg, self.run_dir, self.seed = cfg, run_dir, int(cfg.seed)
        # the step of the checkpoint on disk, which every status.json reports (the last known until restored)
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
