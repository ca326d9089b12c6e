"""Metric logging: `metrics.jsonl` in the run dir is the source of truth; wandb (optional) mirrors it. Log lines
are copied into the run's `train.log` (`attach_file_log`).

wandb is imported only when `logger=wandb`. Its run id is stable per run directory and kept in the
checkpoint, so a resumed or requeued run continues the same wandb run (online mode; offline wandb cannot
resume, — metrics.jsonl stays complete either way).
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from grokking.errors import WriteError
from grokking.rundir import RunDir

log = logging.getLogger(__name__)


def stable_run_id(run_dir: RunDir) -> str:
    return hashlib.sha1(str(run_dir.path.resolve()).encode()).hexdigest()[:12]


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


class MetricsLogger:
    def __init__(self, cfg: DictConfig, run_dir: RunDir, run_id: str):
        self.run_dir = run_dir
        self.wandb_run = None
        if cfg.logger.name == "wandb":
            self.wandb_run = self._start_wandb(cfg, run_id)

    def _start_wandb(self, cfg: DictConfig, run_id: str):
        import wandb

        name = f"{cfg.task.name}{cfg.tag}-d{cfg.depth}-s{cfg.seed}"
        run = wandb.init(project=cfg.logger.project, entity=cfg.logger.entity, mode=cfg.logger.mode, id=run_id,
                         resume="allow", name=name, group=f"{cfg.task.name}{cfg.tag}-d{cfg.depth}", job_type="train",
                         dir=str(self.run_dir.path), config=OmegaConf.to_container(cfg, resolve=True),
                         reinit="create_new")  # a seed pack holds one run per member
        run.define_metric("step")
        run.define_metric("*", step_metric="step")
        return run

    def log_eval(self, record: dict[str, Any]) -> None:
        self.run_dir.append_jsonl(self.run_dir.metrics_file, record)
        self._mirror(record)

    def log_train(self, record: dict[str, Any]) -> None:
        self.run_dir.append_jsonl(self.run_dir.train_log_file, record)
        self._mirror(record)

    def _mirror(self, record: dict[str, Any]) -> None:
        if self.wandb_run is not None:
            self.wandb_run.log({k: v for k, v in record.items()
                                if isinstance(v, int | float) and math.isfinite(v)})

    def close(self, exit_code: int = 0) -> None:
        if self.wandb_run is not None:
            try:
                self.wandb_run.finish(exit_code=exit_code)
            except Exception as exc:  # never let a logging backend hide the run's own outcome
                log.warning("wandb finish failed: %s", exc)
            self.wandb_run = None
