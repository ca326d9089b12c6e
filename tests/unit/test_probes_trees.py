"""Tree search on SCI charts: greedy on a hand-worked chart, CKY against brute force, tscore, right branching."""

import numpy as np
import pytest

from grokking.probes.parseval import tree_mask
from grokking.probes.trees import Projections, cky_tree, greedy_tree, right_branching, tree_value

# A 4-word chart worked by hand. Root (0,3): s(0)=0.9+0.1=1.0, s(1)=0.2+0.35=0.55, s(2)=0.5+0.4=0.9 -> k=0.
# Node (1,3): s(1)=0.8+0.35=1.15, s(2)=0.7+0.4=1.1 -> k=1. Greedy = right branching, value 1.0+1.15+1.0 = 3.15.
# CKY: root k=2 with (0,2) split at 0 is worth 0.9 + 1.6 + (0.8+0.6) = 3.9, the maximum (root k=0: at best 3.5,
# root k=1: 0.55 + 1.7 + 1.0 = 3.25).
HAND = np.array([[0.9, 0.2, 0.5, 1.0],
                 [0.0, 0.8, 0.7, 0.1],
                 [0.0, 0.0, 0.6, 0.35],
                 [0.0, 0.0, 0.0, 0.4]])


def all_trees(start: int, end: int):
    if start == end:
        yield ()
        return
    for split in range(start, end):
        for left in all_trees(start, split):
            for right in all_trees(split + 1, end):
                yield ((start, split, end), *left, *right)


def test_greedy_on_a_hand_worked_chart():
    assert greedy_tree(HAND) == ((0, 0, 3), (1, 1, 3), (2, 2, 3))
    assert tree_value(HAND, greedy_tree(HAND)) == pytest.approx(3.15)


def test_cky_beats_greedy_on_the_hand_worked_chart():
    assert cky_tree(HAND) == ((0, 2, 3), (0, 0, 2), (1, 1, 2))
    assert tree_value(HAND, cky_tree(HAND)) == pytest.approx(3.9)


def test_exact_tscore_on_the_hand_worked_chart():
    # (0,3): 1.0 - mean(1.0, 0.55, 0.9); (1,3): 1.15 - mean(1.15, 1.1); (2,3): one split, gain 0
    assert Projections([HAND]).tscores(np.random.default_rng(0))[1] == pytest.approx(1.0 - 2.45 / 3 + 0.025)


@pytest.mark.parametrize("n", range(1, 8))
def test_cky_matches_brute_force_over_all_binary_trees(n):
    rng = np.random.default_rng(n)
    charts = [np.triu(rng.random((n, n))) for _ in range(15)]
    projections = Projections(charts)
    cky_masks, greedy_masks = projections.node_masks("cky"), projections.node_masks("greedy")
    for index, chart in enumerate(charts):
        best = max(tree_value(chart, tree) for tree in all_trees(0, n - 1))
        cky, greedy = projections.tree(index, "cky"), projections.tree(index, "greedy")
        assert tree_value(chart, cky) == pytest.approx(best, abs=1e-12)
        assert cky in set(all_trees(0, n - 1))
        assert tree_value(chart, greedy) <= best + 1e-12
        assert (cky_masks[index] == tree_mask(cky, n)).all() and (greedy_masks[index] == tree_mask(greedy, n)).all()


def test_exact_tscore_is_the_expectation_of_the_sampled_tscore():
    rng = np.random.default_rng(0)
    charts = [np.triu(rng.random((n, n))) for n in (3, 5, 8, 8)]
    projections = Projections(charts)
    draws = [projections.tscores(np.random.default_rng(seed))[0] for seed in range(4000)]
    exact = projections.tscores(np.random.default_rng(0))[1]
    assert np.mean(draws) == pytest.approx(exact, abs=4 * np.std(draws) / np.sqrt(len(draws)))
    assert exact > 0  # greedy splits are never worse than random ones


def test_sampled_tscore_is_reproducible_and_never_negative():
    charts = [np.triu(np.random.default_rng(1).random((n, n))) for n in (7, 2, 9)]
    first = Projections(charts).tscores(np.random.default_rng([0, 3000]))[0]
    assert first == Projections(charts).tscores(np.random.default_rng([0, 3000]))[0]
    assert first >= 0


def test_sampled_gain_is_the_greedy_minus_a_random_split_per_node():
    # HAND's greedy nodes: (0,3) with 3 splits, (1,3) with 2, (2,3) with 1; random draws picked by hand
    class Draws:
        def random(self, size):
            assert size == 3  # nodes in (start, end) order: (0,3), (1,3), (2,3)
            return np.array([0.7, 0.6, 0.1])  # -> splits 2, 2, 2

    gain = Projections([HAND]).groups[0].sampled_gains(Draws())
    assert gain.tolist() == pytest.approx([(1.0 - 0.9) + (1.15 - 1.1) + 0.0])


def test_right_branching_and_single_words():
    assert right_branching(4) == ((0, 0, 3), (1, 1, 3), (2, 2, 3))
    assert right_branching(1) == ()
    assert greedy_tree(np.ones((1, 1))) == ()
    assert Projections([np.ones((1, 1))]).tscores(np.random.default_rng(0)) == (0.0, 0.0)
