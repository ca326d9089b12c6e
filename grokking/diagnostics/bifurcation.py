"""Bifurcation onset of a weight tensor's value distribution (docs/diagnostics.md; project-native rule).

t_bif = the first evaluation at which the bimodality coefficient BC > 5/9 AND Hartigan's dip test rejects
unimodality at p < 0.01, at that evaluation and at the next two (3 consecutive evaluations, for hysteresis).

The dip statistic is computed on the recorded fixed-bin histogram (no raw weights are stored): the CDF through the
bin edges, linear inside each bin (under/overflow mass sits in one extra bin-width beyond each end), and the
distance to the closest unimodal CDF found by Hartigan & Hartigan's (1985) greatest-convex-minorant /
least-concave-majorant iteration. Its p-value is a Monte Carlo one under the least favourable unimodal null, the
uniform: DIP_REPLICATES uniform samples of n = min(numel, DIP_SAMPLE) values (the spec's ≤ 20k subsample),
binned on the same relative grid. Binning all numel weights has less noise than an n-value sample, so the test
is conservative. Xavier-uniform initial weights (BC = 5/9 exactly) are therefore not flagged.
"""

from __future__ import annotations

import functools

import numpy as np

BC_THRESHOLD = 5.0 / 9.0
DIP_ALPHA = 0.01
DIP_SAMPLE = 20_000  # n of the dip test's null (spec: a subsample of <= 20k entries)
DIP_REPLICATES = 400  # Monte Carlo null draws (smallest attainable p = 1/401)
CONSECUTIVE = 3  # evaluations the criterion must hold (spec: 3)


def _hull(x: np.ndarray, y: np.ndarray, lower: bool) -> list[int]:
    """Indices of the lower (convex minorant) or upper (concave majorant) hull of points sorted by x."""
    sign = 1.0 if lower else -1.0
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            j, k = hull[-2], hull[-1]
            cross = (x[k] - x[j]) * (y[i] - y[j]) - (y[k] - y[j]) * (x[i] - x[j])
            if sign * cross <= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def dip(x: np.ndarray, cdf: np.ndarray) -> float:
    """Hartigan's dip of the piecewise-linear CDF through the vertices (x, cdf): x increasing, cdf from 0 to 1."""
    lo, hi, dip2 = 0, len(x) - 1, 0.0
    while hi - lo >= 2:
        xs, fs = x[lo : hi + 1], cdf[lo : hi + 1]
        g = np.array(_hull(xs, fs, lower=True))
        lcm = np.array(_hull(xs, fs, lower=False))
        convex, concave = np.interp(xs, xs[g], fs[g]), np.interp(xs, xs[lcm], fs[lcm])
        gap = concave - convex
        at_g, at_l = gap[g], gap[lcm]
        if max(at_g.max(), at_l.max()) <= dip2:
            break
        if at_g.max() >= at_l.max():
            new_lo = int(g[at_g.argmax()])
            new_hi = int(lcm[lcm >= new_lo][0])
        else:
            new_hi = int(lcm[at_l.argmax()])
            new_lo = int(g[g <= new_hi][-1])
        left = (fs[: new_lo + 1] - convex[: new_lo + 1]).max()
        right = (concave[new_hi:] - fs[new_hi:]).max()
        dip2 = max(dip2, left, right)
        if (new_lo, new_hi) == (0, hi - lo):
            break
        lo, hi = lo + new_lo, lo + new_hi
    return dip2 / 2.0


def histogram_dip(counts: np.ndarray) -> float:
    """Dip of a histogram [under, bin_1..bin_B, over] on unit-width bins (the dip is scale-free)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return 0.0
    cdf = np.concatenate([[0.0], np.cumsum(counts) / total])
    occupied = np.flatnonzero(counts)  # the empty outer bins are flat ends of the CDF: they do not change the dip
    keep = slice(occupied[0], occupied[-1] + 2)
    return dip(np.arange(len(cdf), dtype=np.float64)[keep], cdf[keep])


@functools.cache
def null_dips(n: int, bins: int, range_sigma: float) -> np.ndarray:
    """Sorted dips of DIP_REPLICATES uniform samples of size n (unit variance) on a ±range_sigma grid of `bins`."""
    rng = np.random.default_rng([n, bins])
    half = np.sqrt(3.0)
    edges = np.linspace(-range_sigma, range_sigma, bins + 1)
    out = np.empty(DIP_REPLICATES)
    for r in range(DIP_REPLICATES):
        values = rng.uniform(-half, half, n)
        inside = np.histogram(values, edges)[0]
        out[r] = histogram_dip(np.concatenate([[0], inside, [0]]))
    return np.sort(out)


def dip_pvalue(counts: np.ndarray, range_sigma: float) -> tuple[float, float]:
    """(dip, Monte Carlo p-value) of one histogram [under, bins..., over]."""
    n = int(min(np.asarray(counts).sum(), DIP_SAMPLE))
    if n < 4:
        return 0.0, 1.0
    value = histogram_dip(counts)
    null = null_dips(n, len(counts) - 2, range_sigma)
    exceed = len(null) - np.searchsorted(null, value, side="left")
    return value, (1 + exceed) / (1 + len(null))


def onset(steps: np.ndarray, bimodal: np.ndarray, run: int = CONSECUTIVE) -> int | None:
    """First step from which `bimodal` (any per-evaluation condition) holds at `run` consecutive evaluations, or
    None (the parameter bifurcation's onset, and the events' "held from" steps)."""
    count = 0
    for i, flag in enumerate(np.asarray(bimodal, dtype=bool)):
        count = count + 1 if flag else 0
        if count == run:
            return int(steps[i - run + 1])
    return None


def bifurcation_table(steps: np.ndarray, bc: np.ndarray, hists: np.ndarray,
                      range_sigma: float) -> tuple[np.ndarray, np.ndarray, int | None]:
    """For one tensor over evaluations: (dip [E], p-value [E], t_bif) from BC [E] and histograms [E, bins + 2]."""
    dips, pvalues = np.zeros(len(steps)), np.ones(len(steps))
    for i, counts in enumerate(hists):
        dips[i], pvalues[i] = dip_pvalue(counts, range_sigma)
    bimodal = (np.nan_to_num(bc, nan=0.0) > BC_THRESHOLD) & (pvalues < DIP_ALPHA)
    return dips, pvalues, onset(steps, bimodal)
