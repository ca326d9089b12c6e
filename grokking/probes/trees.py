"""Trees from SCI charts and their scores (docs/metrics.md, tree projections), plus one addition.

A binary tree over words 0..n-1 is given by its internal nodes (start, split, end): the node covers start..end and
its children are start..split and split+1..end. With s(i, j, k) = chart[i, k] + chart[k+1, j]:
- greedy (the paper's tree): top-down, each node takes the first k maximising s(i, j, k). There is no exact
  (CKY) search: in a causal LM every span starting at the first word has SCI exactly 1 (its context-free and
  contextual vectors coincide), so the exact maximum of the summed chart values is always the left-branching tree;
- tscore (the released code): per sentence, the sum over greedy nodes of s(k*) - s(r) with one uniformly random
  split r per node; the corpus value is the mean over sentences. Draws come from a numpy Generator, one per node,
  in (length group, sentence, start, end) order, so a seeded Generator makes the value reproducible;
- exact tscore (beyond the paper): the same with s(r) replaced by its expectation, the mean of s over all splits.
Everything is computed for all sentences of one length at once; trees are held as boolean node masks [n, n].
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

Split = tuple[int, int, int]
Tree = tuple[Split, ...]

GROUP_CELLS = 1 << 22  # sentences x n^2 chart cells searched at once


def read_tree(best_split: np.ndarray) -> Tree:
    """The preorder (start, split, end) nodes of one sentence's tree."""
    nodes, stack = [], [(0, best_split.shape[0] - 1)]
    while stack:
        start, end = stack.pop()
        if start < end:
            split = int(best_split[start, end])
            nodes.append((start, split, end))
            stack.extend(((split + 1, end), (start, split)))
    return tuple(nodes)


def top_down(count: int, n: int, choose: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """[S, n, n] internal-node mask of S trees built top-down: `choose(sentence, start, end)` gives the splits of
    all nodes of one width (arrays), widest first, so parents are split before their children are visited."""
    nodes = np.zeros((count, n, n), dtype=bool)
    if n > 1:
        nodes[:, 0, n - 1] = True
    for width in range(n - 1, 0, -1):
        sentence, start = np.nonzero(nodes[:, np.arange(n - width), np.arange(width, n)])
        if len(start) == 0:
            continue
        end = start + width
        split = choose(sentence, start, end)
        left, right = split > start, split + 1 < end
        nodes[sentence[left], start[left], split[left]] = True
        nodes[sentence[right], split[right] + 1, end[right]] = True
    return nodes


class LengthGroup:
    """Greedy trees of S sentences of n words (charts [S, n, n]): node masks `greedy` and the split of every
    node in `greedy_split`."""

    def __init__(self, indices: list[int], charts: np.ndarray):
        self.indices, self.charts = indices, charts
        count, n = charts.shape[:2]
        self.greedy_split = np.zeros((count, n, n), dtype=np.int64)
        self.exact_gains = np.zeros(count)  # per sentence: sum over greedy nodes of s(k*) - mean_r s(r)
        self.greedy = top_down(count, n, self._greedy_choice)

    def _greedy_choice(self, sentence: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        splits = start[:, None] + np.arange(end[0] - start[0])[None, :]  # all nodes here have one width
        candidates = self.split_values(sentence[:, None], start[:, None], splits, end[:, None])
        split = start + candidates.argmax(axis=-1)
        self.greedy_split[sentence, start, end] = split
        gains = candidates.max(axis=-1) - candidates.mean(axis=-1)
        self.exact_gains += np.bincount(sentence, gains, minlength=len(self.indices))
        return split

    def split_values(self, sentence, start, split, end) -> np.ndarray:
        """s(start, end, split) = chart[start, split] + chart[split+1, end] (broadcasting index arrays)."""
        return self.charts[sentence, start, split] + self.charts[sentence, split + 1, end]

    def sampled_gains(self, rng: np.random.Generator) -> np.ndarray:
        """[S] per-sentence sum over greedy nodes of s(k*) - s(r), one uniform random split r per node."""
        sentence, start, end = np.nonzero(self.greedy)
        drawn = start + np.floor(rng.random(len(start)) * (end - start)).astype(np.int64)
        split = self.greedy_split[sentence, start, end]
        gain = self.split_values(sentence, start, split, end) - self.split_values(sentence, start, drawn, end)
        return np.bincount(sentence, weights=gain, minlength=len(self.indices))


class Projections:
    """Tree projections of a corpus of charts (any lengths), grouped by length for vectorised search."""

    def __init__(self, charts: Sequence[np.ndarray]):
        self.size = len(charts)
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, chart in enumerate(charts):
            by_length[chart.shape[0]].append(index)
        self.groups = []
        for n, indices in sorted(by_length.items()):
            step = max(1, GROUP_CELLS // max(1, n * n))
            for first in range(0, len(indices), step):
                chunk = indices[first : first + step]
                self.groups.append(LengthGroup(chunk, np.stack([charts[i] for i in chunk])))

    def tscores(self, rng: np.random.Generator) -> tuple[float, float]:
        """(tscore, exact tscore): means over sentences of the sampled and the exact per-sentence gains."""
        sampled = sum(float(group.sampled_gains(rng).sum()) for group in self.groups)
        exact = sum(float(group.exact_gains.sum()) for group in self.groups)
        return sampled / self.size, exact / self.size

    def node_masks(self) -> list[np.ndarray]:
        """Per sentence, in input order, the [n, n] internal-node mask of its greedy tree."""
        masks: list[np.ndarray | None] = [None] * self.size
        for group in self.groups:
            for index, mask in zip(group.indices, group.greedy, strict=True):
                masks[index] = mask
        return masks

    def tree(self, index: int) -> Tree:
        for group in self.groups:
            if index in group.indices:
                return read_tree(group.greedy_split[group.indices.index(index)])
        raise IndexError(index)


def greedy_tree(chart: np.ndarray) -> Tree:
    return Projections([chart]).tree(0)


def tree_value(chart: np.ndarray, tree: Tree) -> float:
    """The tree-search objective: the sum of the chart values of all non-root nodes."""
    return float(sum(chart[i, k] + chart[k + 1, j] for i, k, j in tree))


def right_branching(n: int) -> Tree:
    return tuple((i, i, n - 1) for i in range(n - 1))
