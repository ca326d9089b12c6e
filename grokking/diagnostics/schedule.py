"""The log-plus-linear diagnostic evaluation schedule (docs/diagnostics.md).

Steps = {0} ∪ {⌈log_start · log_ratio^k⌉ : k ≥ 0} ∪ {multiples of linear_every} ∪ {the last step}, restricted to
[0, total]. The log part makes early learning dense (age of acquisition is fitted on log10 step); the linear part
covers late, sharp structural grokking. Step 0 (the initialisation) is always on the schedule.
"""

from __future__ import annotations

import math

import numpy as np

CEIL_TOLERANCE = 1e-9  # 100 · 1.1 is 110.00000000000001 in floating point; it must round up to 110, not 111


def log_steps(total: int, log_start: int, log_ratio: float) -> list[int]:
    """{⌈log_start · log_ratio^k⌉} up to `total`, deduplicated (small starts repeat steps for the first k)."""
    if log_start <= 0 or log_ratio <= 1.0:
        raise ValueError(f"need log_start > 0 and log_ratio > 1, got {log_start}, {log_ratio}")
    out, k = set(), 0
    while True:
        step = math.ceil(log_start * log_ratio**k - CEIL_TOLERANCE)
        if step > total:
            return sorted(out)
        out.add(step)
        k += 1


def schedule_steps(total: int, log_start: int, log_ratio: float, linear_every: int) -> np.ndarray:
    """Every diagnostic step of a `total`-step run, sorted (int64)."""
    if linear_every <= 0:
        raise ValueError(f"linear_every must be positive, got {linear_every}")
    steps = {0, total, *log_steps(total, log_start, log_ratio), *range(0, total + 1, linear_every)}
    return np.array(sorted(steps), dtype=np.int64)


class Schedule:
    """Membership test for one run's schedule."""

    def __init__(self, total: int, log_start: int, log_ratio: float, linear_every: int):
        self.steps = schedule_steps(total, log_start, log_ratio, linear_every)
        self._members = frozenset(self.steps.tolist())

    def due(self, step: int) -> bool:
        return step in self._members

    def __len__(self) -> int:
        return len(self.steps)
