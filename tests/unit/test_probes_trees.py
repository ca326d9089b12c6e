"""Tree search on SCI charts: greedy on a hand-worked chart and against a plain recursion, tscore, right branching."""

import numpy as np
import pytest

from grokking.probes.parseval import tree_mask
from grokking.probes.trees import Projections, greedy_tree, right_branching

# A 4-word chart worked by hand. Root (0,3): s(0)=0.9+0.1=1.0, s(1)=0.2+0.35=0.55, s(2)=0.5+0.4=0.9 -> k=0.
# Node (1,3): s(1)=0.8+0.35=1.15, s(2)=0.7+0.4=1.1 -> k=1. Greedy = right branching, value 1.0+1.15+1.0 = 3.15.
HAND = np.array([[0.9, 0.2, 0.5, 1.0],
                 [0.0, 0.8, 0.7, 0.1],
                 [0.0, 0.0, 0.6, 0.35],
                 [0.0, 0.0, 0.0, 0.4]])


def tree_value(chart, tree) -> float:
    """The sum of the chart values of all non-root nodes of a tree."""
    return float(sum(chart[i, k] + chart[k + 1, j] for i, k, j in tree))


def recursive_greedy(chart, start: int, end: int):
    """The paper's greedy search written as the plain recursion: first best split, then both halves."""
    if start == end:
        return ()
    values = [chart[start, k] + chart[k + 1, end] for k in range(start, end)]
    split = start + int(np.argmax(values))
    return ((start, split, end), *recursive_greedy(chart, start, split), *recursive_greedy(chart, split + 1, end))


def test_greedy_on_a_hand_worked_chart():
    assert greedy_tree(HAND) == ((0, 0, 3), (1, 1, 3), (2, 2, 3))
    assert tree_value(HAND, greedy_tree(HAND)) == pytest.approx(3.15)


def test_exact_tscore_on_the_hand_worked_chart():
    # (0,3): 1.0 - mean(1.0, 0.55, 0.9); (1,3): 1.15 - mean(1.15, 1.1); (2,3): one split, gain 0
    assert Projections([HAND]).tscores(np.random.default_rng(0))[1] == pytest.approx(1.0 - 2.45 / 3 + 0.025)


@pytest.mark.parametrize("n", range(1, 9))
def test_vectorised_greedy_matches_the_plain_recursion(n):
    rng = np.random.default_rng(n)
    charts = [np.triu(rng.random((n, n))) for _ in range(15)]
    projections = Projections(charts)
    masks = projections.node_masks()
    for index, chart in enumerate(charts):
        expected = recursive_greedy(chart, 0, n - 1)
        assert projections.tree(index) == expected and len(expected) == n - 1
        assert (masks[index] == tree_mask(expected, n)).all()


def test_a_causal_chart_does_not_make_greedy_left_branching():
    """Prefix spans (start 0) have SCI exactly 1 in a causal LM; greedy's root split then depends on the right
    part only, so it still follows the other spans (an exact maximum of the summed chart would not)."""
    chart = np.triu(np.full((5, 5), 0.5))
    chart[0, :] = 1.0
    chart[1, 1] = chart[2, 4] = 0.9  # make the root split at 1: (0..1) (2..4)
    assert greedy_tree(chart)[0] == (0, 1, 4)


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
