"""Reference events of a run (docs/diagnostics.md), from metrics.jsonl and the bifurcation analysis.

- early_stop: step of the best in-domain `val/acc`, first on ties (the report's definition; used by the fitting
  analysis and the figures);
- early_stop_loss: the patience rule on `val/loss` (PATIENCE evaluations without an improvement > MIN_DELTA;
  the best step so far when it fires, or overall if it never does); early_stop_loss_argmin: the plain argmin;
- t_id: the first step with `val/acc` ≥ ID_THRESHOLD;
- grok_step: the first evaluation from which `gen/acc` ≥ 0.8 holds at every later one
  (grokking.runfiles.grokking_step, as in `grok report`);
- grok_step_rel: the first step with `gen/acc` ≥ 90% of its best at REL_HOLD consecutive evaluations;
- gen_acc_midpoint: the midpoint 10^m of a logistic fitted to `gen/acc` against log10 step;
- t_bif: per tensor and the earliest per tensor group (grokking.diagnostics.bifurcation).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from grokking.diagnostics.bifurcation import onset
from grokking.diagnostics.curves import fit_sigmoids
from grokking.runfiles import curve, first_argmax, grokking_step, read_metrics, warn_skipped

GROK_THRESHOLD = 0.8
ID_THRESHOLD = 0.99
PATIENCE, MIN_DELTA = 5, 1e-4  # spec: 5 evaluations, 1e-4
REL_FRACTION, REL_HOLD = 0.9, 3  # spec: 90% of the best OOD accuracy, held for 3 evaluations


def patience_stop(steps: np.ndarray, loss: np.ndarray) -> int | None:
    best, best_step, wait = math.inf, None, 0
    for step, value in zip(steps.tolist(), loss.tolist(), strict=True):
        if value < best - MIN_DELTA:
            best, best_step, wait = value, step, 0
        else:
            wait += 1
            if wait >= PATIENCE:
                break
    return best_step


def accuracy_midpoint(steps: np.ndarray, acc: np.ndarray) -> float | None:
    keep = steps > 0
    if keep.sum() < 4 or np.ptp(acc[keep]) == 0:
        return None
    theta, ok = fit_sigmoids(np.log10(steps[keep]), acc[keep][None])
    return float(10 ** theta[0, 2]) if ok[0] else None


def metric_events(records: list[dict[str, Any]]) -> dict[str, Any]:
    val, gen, loss = curve(records, "val/acc"), curve(records, "gen/acc"), curve(records, "val/loss")
    best = first_argmax(val.values)
    reached = np.flatnonzero(val.values >= ID_THRESHOLD)
    rel = onset(gen.steps, gen.values >= REL_FRACTION * gen.values.max(), REL_HOLD) if len(gen) else None
    return {
        "early_stop": int(val.steps[best]) if best is not None else None,
        "early_stop_loss": patience_stop(loss.steps, loss.values) if len(loss) else None,
        "early_stop_loss_argmin": int(loss.steps[np.argmin(loss.values)]) if len(loss) else None,
        "t_id": int(val.steps[reached[0]]) if len(reached) else None,
        "grok_step": grokking_step(gen.steps, gen.values, GROK_THRESHOLD),
        "grok_step_rel": rel,
        "gen_acc_midpoint": accuracy_midpoint(gen.steps, gen.values) if len(gen) else None,
    }


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    records, problems = read_metrics(path)
    warn_skipped(path, problems)
    return records


def accuracy_curves(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """val/acc and gen/acc as (steps, values) for the figures."""
    records = read_records(run_dir)
    return {key: (c.steps, c.values) for key in ("val/acc", "gen/acc") for c in [curve(records, key)]}
