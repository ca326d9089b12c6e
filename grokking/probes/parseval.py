"""Unlabeled bracket F1 (tparseval, docs/metrics.md).

A tree contributes the spans of its internal nodes, the whole sentence included and single words excluded, held
as a boolean mask [n, n] (True at (start, end)). Scores are corpus-level (micro): matched brackets summed over
sentences. For binary trees on both sides precision = recall = F1.
"""

from __future__ import annotations

from collections.abc import Sequence

import nltk
import numpy as np

from grokking.probes.trees import Tree


def tree_mask(tree: Tree, n: int) -> np.ndarray:
    """The span mask of a tree given as (start, split, end) nodes."""
    mask = np.zeros((n, n), dtype=bool)
    for start, _, end in tree:
        mask[start, end] = True
    return mask


def nltk_mask(tree: nltk.Tree) -> np.ndarray:
    """The span mask of every constituent of an nltk tree covering two or more leaves (unary chains count once)."""
    mask = np.zeros((len(tree.leaves()),) * 2, dtype=bool)

    def visit(node, start: int) -> int:
        if not isinstance(node, nltk.Tree):
            return start + 1
        end = start
        for child in node:
            end = visit(child, end)
        if end - start >= 2:
            mask[start, end - 1] = True
        return end

    visit(tree, 0)
    return mask


def bracket_f1(predicted: Sequence[np.ndarray], gold: Sequence[np.ndarray]) -> float | None:
    """Corpus-level F1 of predicted against gold span masks; None when there is nothing to score."""
    matched = sum(int((p & g).sum()) for p, g in zip(predicted, gold, strict=True))
    n_predicted, n_gold = sum(int(p.sum()) for p in predicted), sum(int(g.sum()) for g in gold)
    if n_predicted == 0 or n_gold == 0:
        return None
    precision, recall = matched / n_predicted, matched / n_gold
    return 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)
