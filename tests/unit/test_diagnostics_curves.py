"""Learning-curve metrics on synthetic curves with known answers (grokking.diagnostics.curves, .fitting)."""

from __future__ import annotations

import numpy as np
import pytest

from grokking.diagnostics.analyze import rule_aoa
from grokking.diagnostics.curves import forgettability, gam_aoa, sigmoid_aoa, smooth
from grokking.diagnostics.fitting import classify, holm, running_median, sign_test
from grokking.diagnostics.schedule import log_steps, schedule_steps

CHANCE = 7.0
X = np.log10(np.unique(np.ceil(100 * 1.1 ** np.arange(60) - 1e-9)))


def falling(midpoint: float, width: float = 0.1) -> np.ndarray:
    """Surprisal dropping from chance to 1 bit with its midpoint (4 bits) at log10 step `midpoint`."""
    return CHANCE - 6.0 / (1.0 + np.exp((midpoint - X) / width))


def test_sigmoid_and_gam_aoa_recover_the_midpoint():
    mids = np.array([2.5, 3.0, 3.5, 4.0])
    rng = np.random.default_rng(0)
    curves = np.stack([falling(m) for m in mids]) + rng.normal(0, 0.05, (4, len(X)))
    sig = sigmoid_aoa(X, curves, CHANCE)
    assert np.abs(sig.x - mids).max() < 0.03 and not sig.never.any()
    gam = gam_aoa(smooth(X, curves), CHANCE)
    assert np.abs(gam.x - mids).max() < 0.03 and not gam.never.any()


def test_never_acquired_and_already_acquired():
    flat_chance = np.full((1, len(X)), CHANCE + 0.1)
    assert sigmoid_aoa(X, flat_chance, CHANCE).never[0]
    assert sigmoid_aoa(X, flat_chance, CHANCE).x[0] == pytest.approx(X[-1])
    assert gam_aoa(smooth(X, flat_chance), CHANCE).never[0]
    learnt = np.full((1, len(X)), 1.0)
    assert sigmoid_aoa(X, learnt, CHANCE).x[0] == pytest.approx(X[0])


def test_forgettability_is_the_total_rise():
    # 4 -> 2 -> 4 -> 2 bits in log-step: one rise of exactly 2 bits; a monotone sigmoid: 0
    t = (X - X[0]) / (X[-1] - X[0])
    bumpy = 3.0 + np.cos(3 * np.pi * t) + np.random.default_rng(1).normal(0, 0.03, len(X))
    fit = smooth(X, np.stack([bumpy, falling(3.0)]))
    f = forgettability(fit, X)
    assert f[0] == pytest.approx(2.0, abs=0.1)
    assert f[1] < 0.05


def test_rule_aoa_first_win():
    steps = np.array([0, 10, 20, 30])
    logits = np.zeros((4, 1, 4))
    logits[:, 0, 2] = [5, -1, -1, -1]  # candidate 2 wins at init only (ignored: step 0)
    logits[:, 0, 1] = [0, 1, 0, -2]  # linear answer 1 wins at step 10
    logits[:, 0, 3] = [0, 0, 2, 3]  # hierarchical answer 3 wins from step 20
    assert rule_aoa(steps, logits, np.array([1]))[0] == 10
    assert rule_aoa(steps, logits, np.array([3]))[0] == 20
    assert np.isnan(rule_aoa(steps, logits, np.array([2]))[0])


def test_sign_test_holm_and_classification():
    assert sign_test(10, 0) == pytest.approx(2 * 0.5**10)
    assert sign_test(5, 5) == 1.0
    assert holm(np.array([0.01, 0.04, 0.03])).tolist() == pytest.approx([0.03, 0.06, 0.06])
    rows = [{"p": 1e-6, "worse": 40, "better": 2, "offset": -0.5}, {"p": 1e-6, "worse": 40, "better": 2, "offset": 0.3},
            {"p": 0.5, "worse": 5, "better": 4, "offset": 0.3}]
    classify(rows)
    assert [r["status"] for r in rows] == ["over", "under", "fit"]
    assert running_median(np.array([1.0, 9.0, 1.0, 1.0, 1.0])).tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]


def test_schedule_is_log_plus_linear():
    assert log_steps(200, 100, 1.1)[:4] == [100, 110, 121, 134]  # not 111: ceil tolerates float error
    steps = schedule_steps(10_000, 100, 1.1, 3_000)
    assert steps[0] == 0 and steps[-1] == 10_000
    assert {3_000, 6_000, 9_000} <= set(steps.tolist())
    assert (np.diff(steps) > 0).all()
