"""Dip statistic and bifurcation onset on synthetic weight distributions (grokking.diagnostics.bifurcation)."""

from __future__ import annotations

import numpy as np
import pytest

from grokking.diagnostics.bifurcation import bifurcation_table, dip_pvalue, histogram_dip, onset
from grokking.diagnostics.params import bimodality_coefficient

EDGES = np.linspace(-6, 6, 202)  # 201 bins over ±6 σ, as recorded


def histogram(values: np.ndarray) -> np.ndarray:
    inside = np.histogram(values, EDGES)[0]
    return np.concatenate([[(values < -6).sum()], inside, [(values > 6).sum()]])


def bc(values: np.ndarray) -> float:
    c = values - values.mean()
    std = c.std()
    return bimodality_coefficient(float((c**3).mean() / std**3), float((c**4).mean() / std**4 - 3), len(values))


def test_dip_of_known_distributions():
    separated = np.zeros(1004)
    separated[[1, 1002]] = [30, 70]
    assert histogram_dip(separated) == pytest.approx(0.15, abs=1e-3)  # two point masses: min(p, 1 − p) / 2
    rng = np.random.default_rng(0)
    assert dip_pvalue(histogram(rng.uniform(-1.7, 1.7, 20_000)), 6.0)[1] > 0.05
    assert dip_pvalue(histogram(rng.normal(0, 1, 20_000)), 6.0)[1] > 0.05
    two = np.concatenate([rng.normal(-2, 0.6, 10_000), rng.normal(2, 0.6, 10_000)])
    assert dip_pvalue(histogram(two), 6.0)[1] < 0.01


def test_onset_needs_three_consecutive_evaluations():
    steps = np.arange(0, 100, 10)
    assert onset(steps, [0, 1, 1, 0, 1, 1, 1, 1, 0, 0]) == 40
    assert onset(steps, [1, 1, 0, 1, 1, 0, 0, 0, 0, 0]) is None


def test_bifurcation_detected_at_the_split_and_not_on_unimodal_runs():
    rng = np.random.default_rng(1)
    steps = np.array([0, 100, 200, 400, 800, 1600, 3200, 6400])
    separation = np.array([0, 0, 0, 0, 2.5, 2.8, 3.0, 3.0])  # the weights split into two modes at step 800
    hists, bcs = [], []
    for s in separation:
        values = rng.normal(0, 1, 20_000) if s == 0 else np.concatenate(
            [rng.normal(-s, 0.8, 10_000), rng.normal(s, 0.8, 10_000)])
        values = values / values.std()
        hists.append(histogram(values))
        bcs.append(bc(values))
    _, pvalues, t_bif = bifurcation_table(steps, np.array(bcs), np.stack(hists), 6.0)
    assert t_bif == 800
    assert (pvalues[:4] > 0.01).all()

    uniform = [rng.uniform(-np.sqrt(3), np.sqrt(3), 20_000) for _ in steps]  # Xavier-uniform-like: BC = 5/9
    _, _, none = bifurcation_table(steps, np.array([bc(v) for v in uniform]), np.stack([histogram(v) for v in uniform]),
                                   6.0)
    assert none is None
    gaussian = [rng.normal(0, 1, 20_000) * (1 + 0.1 * i) for i in range(len(steps))]  # widening, still unimodal
    _, _, none = bifurcation_table(steps, np.array([bc(v) for v in gaussian]),
                                   np.stack([histogram(v) for v in gaussian]), 6.0)
    assert none is None
