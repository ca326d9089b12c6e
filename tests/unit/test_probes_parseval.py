"""Bracket F1 on known trees: corpus-level, whole-sentence span included, single words excluded."""

import nltk
import numpy as np
import pytest

from grokking.probes.parseval import bracket_f1, nltk_mask, tree_mask
from grokking.probes.trees import right_branching


def test_spans_of_an_nltk_tree_skip_single_words_and_unary_chains():
    tree = nltk.Tree.fromstring("(S (NP (D the) (N cat)) (VP (V saw) (NP (D a) (N (N dog)))))")
    assert set(zip(*np.nonzero(nltk_mask(tree)), strict=True)) == {(0, 4), (0, 1), (2, 4), (3, 4)}
    assert (tree_mask(((0, 1, 4), (0, 0, 1), (2, 2, 4), (3, 3, 4)), 5) == nltk_mask(tree)).all()


def test_corpus_level_f1_pools_brackets_over_sentences():
    gold = [nltk_mask(nltk.Tree.fromstring("(S (A a b) (B c d))")), nltk_mask(nltk.Tree.fromstring("(S a b)"))]
    predicted = [tree_mask(right_branching(4), 4), tree_mask(right_branching(2), 2)]
    # sentence 1: {(0,3),(1,3),(2,3)} vs {(0,3),(0,1),(2,3)} -> 2 of 3; sentence 2: 1 of 1 -> 3 of 4 overall
    assert bracket_f1(predicted, gold) == pytest.approx(0.75)
    assert bracket_f1(gold, gold) == 1.0


def test_f1_is_none_without_brackets():
    assert bracket_f1([np.zeros((1, 1), dtype=bool)], [np.zeros((1, 1), dtype=bool)]) is None
