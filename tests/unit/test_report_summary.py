"""Known-answer tests of the report's definitions on hand-built metric records (no files)."""

import math
from pathlib import Path

import numpy as np
import pytest

from grokking.report.collect import Run
from grokking.report.summary import (
    ACCURACY,
    DYCK_MIN_DEP,
    curve,
    first_argmax,
    grokking_step,
    group_runs,
    logs_pair,
    mean_curve,
    mean_curve_gap,
    mean_sd,
    success_fractions,
    summarise_run,
)

STEPS = [1000, 2000, 3000, 4000, 5000, 6000]
VAL = [0.5, 0.9, 1.0, 1.0, 1.0, 1.0]


def make_run(gen, val=VAL, steps=STEPS, task="qf", depth=6, seed=42, status="done", **extra):
    records = [{"step": s, "val/acc": v, "gen/acc": g, **extra} for s, v, g in zip(steps, val, gen, strict=True)]
    return Run(path=Path(f"{task}/depth={depth}/seed={seed}"), name=f"{task}/depth={depth}/seed={seed}", task=task,
               depth=depth, seed=seed, status=status, records=records)


GROKS = make_run([0.1, 0.3, 0.2, 0.85, 0.7, 0.9])  # dips below 0.8 once after crossing, ends above
FORGETS = make_run([0.1, 0.3, 0.2, 0.85, 0.7, 0.75], seed=52)  # crosses 0.8, ends below
NEVER = make_run([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], seed=62)


def test_early_stopping_is_first_best_val_step_and_gaps_are_val_minus_gen():
    s = summarise_run(GROKS, ACCURACY, 0.8)
    assert s.gap.es_step == 3000  # val ties at 1.0 from 3000 on: the first one
    assert s.gap.es_gen == pytest.approx(0.2)
    assert s.gap.delta_es == pytest.approx(0.8)
    assert s.gap.end_step == 6000
    assert s.gap.delta_end == pytest.approx(0.1)


def test_grokking_step_is_first_step_after_which_gen_stays_at_or_above_threshold():
    assert summarise_run(GROKS, ACCURACY, 0.8).grok_step == 6000
    assert summarise_run(FORGETS, ACCURACY, 0.8).grok_step is None
    assert summarise_run(NEVER, ACCURACY, 0.8).grok_step is None
    steps = np.array(STEPS)
    assert grokking_step(steps, np.array([0.1, 0.8, 0.9, 0.95, 0.99, 1.0]), 0.8) == 2000  # >= counts
    assert grokking_step(steps, np.full(6, 0.9), 0.8) == 1000
    assert grokking_step(np.array([], dtype=int), np.array([]), 0.8) is None


def test_success_final_and_ever_use_strictly_greater_than_threshold():
    assert summarise_run(GROKS, ACCURACY, 0.8).success(0.8) == (True, True)
    assert summarise_run(FORGETS, ACCURACY, 0.8).success(0.8) == (False, True)
    assert summarise_run(NEVER, ACCURACY, 0.8).success(0.8) == (False, False)
    at_threshold = summarise_run(make_run([0.1, 0.2, 0.3, 0.4, 0.5, 0.8]), ACCURACY, 0.8)
    assert at_threshold.success(0.8) == (False, False)
    assert at_threshold.grok_step == 6000


def test_success_fractions_count_only_runs_that_logged_ood_accuracy():
    no_gen = make_run([None] * 6, seed=72)
    summaries = [summarise_run(r, ACCURACY, 0.8) for r in (GROKS, FORGETS, NEVER, no_gen)]
    final, ever, n = success_fractions(summaries, 0.8)
    assert (final, ever, n) == (pytest.approx(1 / 3), pytest.approx(2 / 3), 3)
    assert summaries[-1].success(0.8) == (None, None)
    assert summaries[-1].gap is None and math.isnan(summaries[-1].final_gen)
    assert success_fractions([], 0.8)[2] == 0


def test_missing_values_are_skipped_not_taken_as_zero():
    run = make_run([0.1, 0.3, None, 0.85, 0.7, 0.9])  # gen missing (NaN written as null) at the first best val
    s = summarise_run(run, ACCURACY, 0.8)
    assert s.gap.es_step == 4000  # the first best val among evaluations that logged both
    assert list(curve(run.records, "gen/acc").steps) == [1000, 2000, 4000, 5000, 6000]
    assert curve(run.records, "absent").steps.size == 0


def test_first_argmax_takes_the_first_tie_and_handles_empty():
    assert first_argmax(np.array([0.2, 0.9, 0.9])) == 1
    assert first_argmax(np.array([])) is None


def test_mean_curve_averages_the_runs_present_at_each_step():
    a = curve(make_run([0.2, 0.4, 0.6, 0.8, 1.0, 1.0]).records, "gen/acc")
    b = curve(make_run([0.0, 0.2, 0.4], val=VAL[:3], steps=STEPS[:3]).records, "gen/acc")  # unfinished seed
    mc = mean_curve([a, b])
    assert list(mc.steps) == STEPS
    assert list(mc.n) == [2, 2, 2, 1, 1, 1]
    assert mc.mean[0] == pytest.approx(0.1)
    assert mc.sd[0] == pytest.approx(np.std([0.2, 0.0], ddof=1))
    assert math.isnan(mc.sd[3])


def test_mean_curve_gap_reads_early_stopping_off_the_mean_curves():
    runs = [GROKS, NEVER]
    val = mean_curve([curve(r.records, "val/acc") for r in runs])
    gen = mean_curve([curve(r.records, "gen/acc") for r in runs])
    g = mean_curve_gap(val, gen)
    assert g.es_step == 3000
    assert g.delta_es == pytest.approx(1.0 - (0.2 + 0.3) / 2)
    assert g.delta_end == pytest.approx(1.0 - (0.9 + 0.6) / 2)


def test_mean_sd_ignores_missing_and_needs_two_values_for_sd():
    stat = mean_sd([0.5, None, math.nan, 0.7])
    assert (stat.mean, stat.n) == (pytest.approx(0.6), 2)
    assert stat.sd == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert math.isnan(mean_sd([0.5]).sd)
    assert mean_sd([]).n == 0


def test_group_runs_orders_tasks_and_depths_and_leaves_out_failed_and_unidentified():
    runs = [make_run([0.1] * 6, task="dyck", depth=2),
            make_run([0.1] * 6, task="ti", depth=4), make_run([0.1] * 6, task="qf", depth=10),
            make_run([0.1] * 6, task="qf", depth=2, seed=52), make_run([0.1] * 6, task="qf", depth=2, seed=42),
            make_run([0.1] * 6, task="qf", depth=4, status="failed")]
    unidentified = make_run([0.1] * 6)
    unidentified.task = None
    groups = group_runs([*runs, unidentified])
    assert list(groups) == [("qf", 2), ("qf", 10), ("ti", 4), ("dyck", 2)]
    assert [r.seed for r in groups[("qf", 2)]] == [42, 52]


def test_dyck_filtered_pair_is_summarised_from_its_own_keys():
    run = make_run([0.5] * 6, task="dyck", **{"gen/acc_mindep": 0.95, "val/acc_mindep": 0.99})
    assert logs_pair(run, DYCK_MIN_DEP) and not logs_pair(GROKS, DYCK_MIN_DEP)
    s = summarise_run(run, DYCK_MIN_DEP, 0.8)
    assert s.gap.delta_es == pytest.approx(0.04)
    assert s.grok_step == 1000
