"""Known-answer tests of success after in-domain saturation (grokking.report.success) on hand-built curves, of
the keys `--weights` reads, and of the plain-text table `grok report` prints."""

import math

import numpy as np
import pytest

from grokking.ema import ema_suffix
from grokking.report.collect import ReportError
from grokking.report.document import Bullets, Heading, Image, Paragraph, Table, to_text
from grokking.report.success import group_success, success_after_saturation
from grokking.report.summary import ACCURACY_PAIRS, accuracy_pairs, weights_suffix
from grokking.runfiles import Curve

STEPS = [3000 * i for i in range(1, 11)]


def curve_of(values, steps=STEPS):
    return Curve(np.array(steps[:len(values)], dtype=np.int64), np.array(values, dtype=float))


def success(val, gen, threshold=0.8, val_steps=STEPS, gen_steps=STEPS):
    return success_after_saturation(curve_of(val, val_steps), curve_of(gen, gen_steps), threshold)


SATURATES_AT_9K = [0.5, 0.98, 0.99, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_saturation_is_the_first_evaluation_with_in_domain_accuracy_at_least_099():
    result = success(SATURATES_AT_9K, [0.3, 0.2, 0.1, 0.3, 0.5, 0.6, 0.7, 0.9, 0.85, 0.95])
    assert result.saturation_step == 9000  # 0.98 at 6k is not saturated, exactly 0.99 at 9k is
    assert result.gen_at_saturation == pytest.approx(0.1)
    never = success([0.5, 0.9, 0.989], [0.9, 0.9, 0.9])
    assert never.saturation_step is None and not never.crossed and not never.demo
    assert math.isnan(never.gen_at_saturation) and math.isnan(never.max_gen_after)


def test_crossing_counts_only_at_or_after_saturation_and_strictly_above_the_threshold():
    # OOD above 0.8 at 3k (before S = 9k) does not count; exactly 0.8 at 12k does not cross; 0.81 at 15k does
    result = success(SATURATES_AT_9K, [0.9, 0.2, 0.1, 0.8, 0.81, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert result.crossing_step == 15000 and result.crossed
    assert result.max_gen_after == pytest.approx(0.81)  # the 0.9 before S is not "after S"
    assert success(SATURATES_AT_9K, [0.9, 0.2, 0.1, 0.8, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]).crossing_step is None
    assert success(SATURATES_AT_9K, [0.1, 0.1, 0.1, 0.8] + [0.5] * 6, threshold=0.7).crossing_step == 12000
    at_saturation = success(SATURATES_AT_9K, [0.1, 0.1, 0.95] + [0.95] * 7)
    assert at_saturation.crossing_step == 9000  # at S counts (Dyck: OOD is high when in-domain saturates)


def test_ood_at_saturation_is_the_next_ood_evaluation_when_none_was_logged_at_s():
    """Sparse logs (the released Dyck logs): in-domain at 10k, 30k; OOD at 20k, 40k."""
    result = success([0.5, 0.995], [0.4, 0.6], val_steps=[10000, 30000], gen_steps=[20000, 40000])
    assert result.saturation_step == 30000
    assert result.gen_at_saturation == pytest.approx(0.6) and result.max_gen_after == pytest.approx(0.6)
    late = success([0.5, 0.995], [0.4], val_steps=[10000, 30000], gen_steps=[20000])
    assert late.saturation_step == 30000 and math.isnan(late.gen_at_saturation) and not late.crossed


def test_jumps_count_changes_of_more_than_20_points_in_both_directions_over_the_whole_run():
    gen = [0.0, 0.25, 0.3, 0.9, 0.1, 0.3, 0.5, 0.7, 0.9, 0.69]  # jumps: +0.25, +0.6, -0.8, -0.21
    assert success(SATURATES_AT_9K, gen).jumps == 4  # 0.1 -> 0.3 -> ... -> 0.9: exactly 20 points, no jump
    assert success(SATURATES_AT_9K, [0.5] * 10).jumps == 0
    assert success([0.5], [0.3]).jumps == 0


def test_last_5_mean_and_the_demo_criterion():
    ends_high = success(SATURATES_AT_9K, [0.1, 0.1, 0.1, 0.9, 0.0, 0.7, 0.7, 0.7, 0.7, 0.7])
    assert ends_high.last_mean == 0.7 and ends_high.demo  # >= 0.7 counts, rounding noise aside
    ends_low = success(SATURATES_AT_9K, [0.1, 0.1, 0.1, 0.9, 0.0, 0.7, 0.7, 0.7, 0.7, 0.69])
    assert ends_low.last_mean == pytest.approx(0.698) and ends_low.crossed and not ends_low.demo
    never_crossed = success(SATURATES_AT_9K, [0.1, 0.1, 0.1, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8])
    assert never_crossed.last_mean == pytest.approx(0.8) and not never_crossed.demo
    assert success(SATURATES_AT_9K, [0.2, 0.4, 0.9]).last_mean == pytest.approx(0.5)  # fewer than 5: all
    assert math.isnan(success(SATURATES_AT_9K, []).last_mean)


def test_group_counts_seeds_with_ood_accuracy_and_the_fraction_that_crossed():
    results = [success(SATURATES_AT_9K, [0.1, 0.1, 0.1, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]),  # demo
               success(SATURATES_AT_9K, [0.1, 0.1, 0.1, 0.3, 0.85, 0.1, 0.1, 0.1, 0.1, 0.1]),  # forgot
               success([0.5] * 10, [0.9] * 10),  # never saturated: counted, not crossed
               success(SATURATES_AT_9K, [])]  # no OOD accuracy: not counted
    group = group_success(results)
    assert (group.seeds, group.saturated, group.crossed, group.demo) == (3, 2, 2, 1)
    assert group.crossed_fraction == pytest.approx(2 / 3)
    assert group.crossing_steps == [12000, 15000] and group.saturation_steps == [9000, 9000]
    assert group.jumps == [0, 1, 2]
    assert math.isnan(group_success([]).crossed_fraction)


def test_weights_pick_the_keys_of_their_evaluation():
    assert weights_suffix("raw") == ""
    assert weights_suffix("ema0.999") == "_ema0.999"
    for decay in ("0.999", "0.9990", "0.99", "0.9999", ".5"):  # the keys the trainer writes
        assert weights_suffix(f"ema{decay}") == ema_suffix(float(decay))
    primary, filtered = accuracy_pairs("ema0.999")
    assert (primary.val, primary.gen, primary.primary) == ("val/acc_ema0.999", "gen/acc_ema0.999", True)
    assert (filtered.val, filtered.gen) == ("val/acc_mindep_ema0.999", "gen/acc_mindep_ema0.999")
    assert accuracy_pairs("raw") == ACCURACY_PAIRS
    for bad in ("ema", "ema1", "ema0", "emax", "swa", "EMA0.999", "ema-0.5", "emanan"):
        with pytest.raises(ReportError, match="--weights must be raw or ema<decay>"):
            weights_suffix(bad)


def test_plain_text_tables_line_up_for_the_terminal():
    text = to_text([Heading("Success"), Table(["task", "depth"], [["qf [released logs]", "6"], ["ti", "10"]]),
                    Bullets(["demo"]), Paragraph("S: ..."), Image("success.png", "by depth")])
    assert text == ("Success\n\n"
                    "task                depth\n"
                    "qf [released logs]  6\n"
                    "ti                  10\n\n"
                    "- demo\n\n"
                    "S: ...\n\n"
                    "by depth: success.png\n")
