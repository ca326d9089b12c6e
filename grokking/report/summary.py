"""The numbers a report is made of, as pure functions of metric records (docs/metrics.md).

Definitions (accuracies are fractions in [0, 1]; `threshold` is 0.8 unless the user asks otherwise):
- early stopping: the first evaluation with the best in-domain accuracy (`val/acc`) among evaluations that
  logged both `val/acc` and `gen/acc`;
- Δ (gap): in-domain minus OOD accuracy (`val/acc − gen/acc`), at early stopping and at the last such evaluation;
- grokking step: the first evaluation from which `gen/acc >= threshold` at it and at every later evaluation
  (None if the last one is below threshold). For an unfinished run this is provisional;
- success "final": the last logged `gen/acc > threshold`; success "ever": the largest `gen/acc > threshold`;
- success after saturation, the paper's Fig 3a criterion: grokking.report.success.

`--weights ema<decay>` reads every accuracy from the keys of the weight-averaged evaluation instead
(`val/acc_ema0.999`, `gen/acc_ema0.999`): `accuracy_pairs`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from grokking.report.collect import ReportError, Run
from grokking.report.success import SuccessAfterSaturation, success_after_saturation
from grokking.runfiles import Curve, curve, first_argmax, grokking_step
from grokking.tasks import TASKS

RAW_WEIGHTS = "raw"


@dataclass(frozen=True)
class AccuracyPair:
    """An in-domain / OOD metric pair; Dyck logs a second, filtered pair (docs/metrics.md,
    docs/paper-vs-code.md #9). The primary pair is every task's main accuracy: always reported, and the one
    the paper's numbers measure."""

    label: str
    val: str
    gen: str
    primary: bool = False


ACCURACY = AccuracyPair("", "val/acc", "gen/acc", primary=True)
DYCK_MIN_DEP = AccuracyPair(" (deps ≥10 tokens)", "val/acc_mindep", "gen/acc_mindep")
ACCURACY_PAIRS = (ACCURACY, DYCK_MIN_DEP)


def weights_suffix(weights: str) -> str:
    """The key suffix of an evaluation's weights: `raw` (the trained weights) -> "", `ema0.999` (their
    exponential moving average with decay 0.999, logged as `<split>/<metric>_ema0.999`) -> "_ema0.999", the
    decay written as the trainer writes it (`grokking.ema.ema_suffix`, so `ema0.9990` reads `_ema0.999`)."""
    if weights == RAW_WEIGHTS:
        return ""
    try:
        decay = float(weights.removeprefix("ema")) if weights.startswith("ema") else math.nan
    except ValueError:
        decay = math.nan
    if not 0.0 < decay < 1.0:
        raise ReportError(f"--weights must be {RAW_WEIGHTS} or ema<decay> with a decay in (0, 1), e.g. "
                          f"ema0.999; got {weights!r}")
    return f"_ema{decay:g}"


def accuracy_pairs(weights: str) -> tuple[AccuracyPair, ...]:
    """`ACCURACY_PAIRS` read from the keys of the evaluation of `weights` (`weights_suffix`)."""
    suffix = weights_suffix(weights)
    return tuple(AccuracyPair(p.label, p.val + suffix, p.gen + suffix, p.primary) for p in ACCURACY_PAIRS)


@dataclass(frozen=True)
class Gap:
    """In-domain and OOD accuracy at early stopping and at the end."""

    es_step: int
    es_val: float
    es_gen: float
    end_step: int
    end_val: float
    end_gen: float

    @property
    def delta_es(self) -> float:
        return self.es_val - self.es_gen

    @property
    def delta_end(self) -> float:
        return self.end_val - self.end_gen


@dataclass(frozen=True)
class RunSummary:
    run: Run
    pair: AccuracyPair
    gap: Gap | None  # None without a single evaluation logging both accuracies
    final_gen: float  # last logged OOD accuracy (NaN if none)
    max_gen: float
    grok_step: int | None
    after_saturation: SuccessAfterSaturation

    def success(self, threshold: float) -> tuple[bool | None, bool | None]:
        """(final, ever) success; None when the run logged no OOD accuracy."""
        if math.isnan(self.final_gen):
            return None, None
        return self.final_gen > threshold, self.max_gen > threshold


@dataclass(frozen=True)
class Stat:
    mean: float
    sd: float  # sample standard deviation (ddof=1); NaN for fewer than 2 values
    n: int


@dataclass(frozen=True)
class MeanCurve:
    steps: np.ndarray
    mean: np.ndarray
    sd: np.ndarray  # NaN where fewer than 2 runs logged the step
    n: np.ndarray  # runs contributing at each step


def gap(steps: np.ndarray, val: np.ndarray, gen: np.ndarray) -> Gap | None:
    """Early stopping and end on aligned finite arrays (ties: the first best step)."""
    i = first_argmax(val)
    if i is None:
        return None
    return Gap(int(steps[i]), float(val[i]), float(gen[i]), int(steps[-1]), float(val[-1]), float(gen[-1]))


def summarise_run(run: Run, pair: AccuracyPair, threshold: float) -> RunSummary:
    val, gen = curve(run.records, pair.val), curve(run.records, pair.gen)
    both, i_val, i_gen = np.intersect1d(val.steps, gen.steps, return_indices=True)
    return RunSummary(
        run=run,
        pair=pair,
        gap=gap(both, val.values[i_val], gen.values[i_gen]),
        final_gen=float(gen.values[-1]) if len(gen) else math.nan,
        max_gen=float(gen.values.max()) if len(gen) else math.nan,
        grok_step=grokking_step(gen.steps, gen.values, threshold),
        after_saturation=success_after_saturation(val, gen, threshold),
    )


def logs_pair(run: Run, pair: AccuracyPair) -> bool:
    return any(pair.val in r or pair.gen in r for r in run.records)


def mean_sd(values: Iterable[float | None]) -> Stat:
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not len(finite):
        return Stat(math.nan, math.nan, 0)
    sd = float(finite.std(ddof=1)) if len(finite) > 1 else math.nan
    return Stat(float(finite.mean()), sd, len(finite))


def success_fractions(summaries: list[RunSummary], threshold: float) -> tuple[float, float, int]:
    """(final, ever, n): fractions of the n runs that logged OOD accuracy."""
    outcomes = [s.success(threshold) for s in summaries]
    outcomes = [o for o in outcomes if o[0] is not None]
    if not outcomes:
        return math.nan, math.nan, 0
    return (sum(f for f, _ in outcomes) / len(outcomes), sum(e for _, e in outcomes) / len(outcomes), len(outcomes))


def mean_curve(curves: list[Curve]) -> MeanCurve:
    """Mean and sd across runs at every step any run logged (each step averages the runs that logged it)."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for c in curves:
        for s, v in zip(c.steps.tolist(), c.values.tolist(), strict=True):
            by_step[s].append(v)
    steps = sorted(by_step)
    stats = [mean_sd(by_step[s]) for s in steps]
    return MeanCurve(np.array(steps, dtype=np.int64), np.array([t.mean for t in stats]),
                     np.array([t.sd for t in stats]), np.array([t.n for t in stats], dtype=np.int64))


def mean_curve_gap(val: MeanCurve, gen: MeanCurve) -> Gap | None:
    """Early stopping and Δ read off the seed-mean curves, as the paper's Fig 2 does (docs/metrics.md)."""
    both, i_val, i_gen = np.intersect1d(val.steps, gen.steps, return_indices=True)
    return gap(both, val.mean[i_val], gen.mean[i_gen])


def task_order(experiment: str) -> tuple[int, str]:
    known = [i for i, task in enumerate(TASKS) if experiment.startswith(task)]
    return (known[0] if known else len(TASKS), experiment)


def group_runs(runs: list[Run]) -> dict[tuple[str, int], list[Run]]:
    """Identified, not failed runs by (experiment, depth), in task then depth order."""
    groups: dict[tuple[str, int], list[Run]] = defaultdict(list)
    for run in runs:
        if run.identified and run.state != "failed":
            groups[(run.experiment, run.depth)].append(run)
    ordered = sorted(groups, key=lambda key: (task_order(key[0]), key[1]))
    return {key: sorted(groups[key], key=lambda r: r.seed) for key in ordered}
