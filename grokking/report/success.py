"""Success as the paper measures it (Fig 3a: OOD accuracy "eventually crosses 80%"), counted from in-domain
saturation on, per run and per group of seeds (docs/metrics.md, "Success after saturation").

Per run, on its logged evaluations (accuracies are fractions in [0, 1]; `threshold` is 0.8 unless the user
asks otherwise):
- S, saturation: the first evaluation with in-domain accuracy >= 0.99;
- OOD at S: the OOD accuracy at S (at the first OOD evaluation after S when none was logged at S itself, as in
  the released Dyck logs, which hold a different subset of steps per seed);
- max OOD after S: the largest OOD accuracy at or after S;
- crossing step: the first evaluation at or after S with OOD accuracy > threshold (None: never crossed);
- last-5 mean: the mean OOD accuracy of the last 5 evaluations (of all of them when there are fewer);
- jumps: how many consecutive OOD evaluations differ by more than 20 points, over the whole run;
- demo criterion: crossed the threshold after S and ends with a last-5 mean >= 0.7.
Per group: how many seeds saturated, crossed (the fraction is over the seeds that logged OOD accuracy) and
meet the demo criterion, with the medians of S, the crossing step and the jumps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grokking.runfiles import Curve

SATURATION = 0.99  # in-domain accuracy that counts as saturated
JUMP = 0.20  # a jump is a change of more than this between consecutive OOD evaluations
LAST_EVALUATIONS = 5
DEMO_LAST_MEAN = 0.7  # the demo criterion's least last-5 mean
ROUNDING = 9  # decimals kept of differences and means: 0.9 - 0.7 is a change of 0.2, not 0.20000000000000007


@dataclass(frozen=True)
class SuccessAfterSaturation:
    saturation_step: int | None  # S; None: in-domain accuracy never reached 0.99
    gen_at_saturation: float  # NaN without S or without an OOD evaluation at or after it
    max_gen_after: float  # NaN likewise
    crossing_step: int | None
    last_mean: float  # NaN without OOD evaluations
    jumps: int

    @property
    def crossed(self) -> bool:
        return self.crossing_step is not None

    @property
    def demo(self) -> bool:
        """Crossed the threshold after saturation and ends with a last-5 mean OOD accuracy >= 0.7."""
        return self.crossed and self.last_mean >= DEMO_LAST_MEAN


def success_after_saturation(val: Curve, gen: Curve, threshold: float) -> SuccessAfterSaturation:
    """The per-run numbers of the module docstring from a run's in-domain (`val`) and OOD (`gen`) curves."""
    saturated = np.flatnonzero(val.values >= SATURATION)
    saturation_step = int(val.steps[saturated[0]]) if len(saturated) else None
    after = gen.steps >= saturation_step if saturation_step is not None else np.zeros(len(gen), dtype=bool)
    steps_after, gen_after = gen.steps[after], gen.values[after]
    crossings = np.flatnonzero(gen_after > threshold)
    return SuccessAfterSaturation(
        saturation_step=saturation_step,
        gen_at_saturation=float(gen_after[0]) if len(gen_after) else math.nan,
        max_gen_after=float(gen_after.max()) if len(gen_after) else math.nan,
        crossing_step=int(steps_after[crossings[0]]) if len(crossings) else None,
        last_mean=round(float(gen.values[-LAST_EVALUATIONS:].mean()), ROUNDING) if len(gen) else math.nan,
        jumps=int((np.round(np.abs(np.diff(gen.values)), ROUNDING) > JUMP).sum()),
    )


@dataclass(frozen=True)
class GroupSuccess:
    """A group's seeds that logged OOD accuracy, summarised."""

    seeds: int
    saturated: int
    crossed: int
    demo: int
    saturation_steps: list[int]  # sorted
    crossing_steps: list[int]  # sorted
    jumps: list[int]  # sorted

    @property
    def crossed_fraction(self) -> float:
        return self.crossed / self.seeds if self.seeds else math.nan


def group_success(results: list[SuccessAfterSaturation]) -> GroupSuccess:
    """Counts over the runs that logged OOD accuracy (a run without any has a NaN last-5 mean)."""
    logged = [r for r in results if not math.isnan(r.last_mean)]
    return GroupSuccess(
        seeds=len(logged),
        saturated=sum(r.saturation_step is not None for r in logged),
        crossed=sum(r.crossed for r in logged),
        demo=sum(r.demo for r in logged),
        saturation_steps=sorted(r.saturation_step for r in logged if r.saturation_step is not None),
        crossing_steps=sorted(r.crossing_step for r in logged if r.crossing_step is not None),
        jumps=sorted(r.jumps for r in logged),
    )
