"""What `grok train` tells the person at the terminal: one start-up block and one closing summary.

    grok train experiment=cpu      # start-up block (device, parameters, run dir, resume point, steps), then
                                   # the summary: best val/acc and gen/acc with their steps, wall time, next command
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from grokking.paperconfig import paper_differences
from grokking.rundir import training_config


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def startup_block(cfg: DictConfig, device: str, parameters: int, resumed_from: str | None, step: int) -> str:
    """Device (with a warning for a paper-config run on CPU), parameter count, run dir, resume point, steps."""
    on_cpu = device == "cpu" and not paper_differences(training_config(cfg))
    note = " (the paper's config on CPU: expect about a day per 300k steps; device=cuda on a GPU machine)" if on_cpu else ""
    start = f"step {step:,} (resumed from {resumed_from})" if resumed_from else "step 0 (fresh run)"
    return "\n".join([
        f"grok: training {cfg.task.name}{cfg.tag} depth {cfg.depth} seed {cfg.seed}",
        f"  device      {device}{note}",
        f"  parameters  {parameters:,}",
        f"  run dir     {cfg.run_dir}",
        f"  start       {start}",
        f"  planned     {cfg.train.steps:,} steps, evaluation every {cfg.train.eval_every:,}",
    ])


def best(records: list[dict[str, Any]], key: str) -> tuple[float, int] | None:
    """The largest finite value of `key` and the first step that reached it."""
    found = [(r[key], r["step"]) for r in records if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    if not found:
        return None
    top = max(v for v, _ in found)
    return top, min(s for v, s in found if v == top)


def report_target(run_dir: str | Path) -> Path:
    """The directory holding all seeds and depths of this run's experiment, when the path has that shape."""
    path = Path(run_dir)
    if re.fullmatch(r"seed=\d+", path.name) and re.fullmatch(r"depth=\d+", path.parent.name):
        return path.parent.parent
    return path


def summary(records: list[dict[str, Any]], run_dir: str | Path, step: int) -> str:
    """Best in-domain and OOD accuracy with their steps, wall time, run dir, and the next command to try."""
    elapsed = next((r["elapsed_s"] for r in reversed(records) if isinstance(r.get("elapsed_s"), int | float)), None)
    parts = []
    for label, key in (("in-domain val/acc", "val/acc"), ("OOD gen/acc", "gen/acc")):
        top = best(records, key)
        parts.append(f"best {label} {top[0]:.3f} at step {top[1]:,}" if top else f"no {key} logged")
    wall = f", {duration(elapsed)} of training wall time" if elapsed is not None else ""
    return "\n".join([f"grok: summary of {run_dir} ({step:,} steps{wall})",
                      f"  {'; '.join(parts)}",
                      f"  next: grok report {report_target(run_dir)}"])
