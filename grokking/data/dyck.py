"""Dyck-(k,m): the bounded-depth PFSA sampler and the IID/OOD split by top-level excursion structure.

PFSA (docs/data.md): on the empty stack each open bracket has probability 1/(2k) and END 1/2 (END is redrawn
while fewer than `min_len` tokens were emitted); at 0 < depth < m each open 1/(2k) and the matching close 1/2;
at depth m the close is forced. There is no maximum length. All strings are sampled in parallel with numpy.

Splits: train holds `n_train` samples (duplicates allowed, as in the original). The *structure* of a top-level
excursion is its open/close pattern. Candidates then go to IID val if every excursion structure occurs in train and
the exact string is not a train string, to OOD gen if any excursion structure is unseen, else are discarded,
until both lists are full.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from grokking.data.examples import Example
from grokking.errors import DataError

END = "END"
BATCH = 50_000


def bracket_names(k: int) -> tuple[list[str], list[str]]:
    """Open tokens "(a".."(x" and the matching close tokens "a)".."x)" for k types."""
    if k > len(string.ascii_lowercase):
        raise DataError(f"task.dyck_k must be at most {len(string.ascii_lowercase)}, got {k}")
    letters = string.ascii_lowercase[:k]
    return [f"({c}" for c in letters], [f"{c})" for c in letters]


def is_closing(token: str) -> bool:
    return token.endswith(")")


def closing_brackets(vocab) -> list[str]:
    """The closing-bracket tokens of a Dyck vocabulary, in vocabulary order."""
    return [t for t in vocab.tokens if is_closing(t)]


@dataclass
class Batch:
    """Sampled strings as one flat array of token ids (opens 0..k-1, closes k..2k-1) with per-string offsets."""

    flat: np.ndarray
    offsets: np.ndarray  # string i is flat[offsets[i]:offsets[i + 1]]
    k: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def string_keys(self) -> list[bytes]:
        data = self.flat.astype(np.uint8).tobytes()
        return [data[a:b] for a, b in zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist(), strict=True)]

    def excursions(self) -> tuple[list[bytes], np.ndarray]:
        """Each top-level excursion's open/close pattern, and the index of the string it belongs to."""
        opens = self.flat < self.k
        depth = np.cumsum(np.where(opens, 1, -1))  # every string returns to depth 0, so a global sum works
        ends = np.flatnonzero(depth == 0) + 1
        starts = np.concatenate(([0], ends[:-1]))
        pattern = opens.astype(np.uint8).tobytes()
        keys = [pattern[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
        owner = np.searchsorted(self.offsets, starts, side="right") - 1
        return keys, owner

    def examples(self, names: np.ndarray, rows: np.ndarray | None = None) -> list[Example]:
        tokens = names[self.flat].tolist()
        offsets = self.offsets.tolist()
        rows = range(len(self)) if rows is None else rows.tolist()
        return [Example(tuple(tokens[offsets[i]:offsets[i + 1]]), 0) for i in rows]


def sample(rng: np.random.Generator, n: int, k: int, m: int, min_len: int) -> Batch:
    """`n` strings from the Dyck-(k,m) PFSA, without END."""
    depth = np.zeros(n, dtype=np.int64)
    stack = np.zeros((n, m), dtype=np.int64)
    active = np.arange(n)
    step_rows, step_tokens, step = [], [], 0
    while len(active):
        u = rng.random(len(active))
        kind = rng.integers(k, size=len(active))
        d = depth[active]
        end = (d == 0) & (u < 0.5) & (step >= min_len)
        close = (d > 0) & ((d == m) | (u < 0.5))
        opening = ~end & ~close
        token = np.where(opening, kind, -1)
        closers = np.flatnonzero(close)
        token[closers] = k + stack[active[closers], d[closers] - 1]
        openers = np.flatnonzero(opening)
        stack[active[openers], d[openers]] = kind[openers]
        depth[active] = d + opening - close
        keep = ~end
        step_rows.append(active[keep])
        step_tokens.append(token[keep])
        active = active[keep]
        step += 1
    rows = np.concatenate(step_rows)
    order = np.argsort(rows, kind="stable")  # steps were appended in order, so a stable sort keeps positions
    counts = np.bincount(rows, minlength=n)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    return Batch(np.concatenate(step_tokens)[order], offsets, k)


def generate(rng: np.random.Generator, n_train: int, n_val: int, n_gen: int, k: int, m: int,
             min_len: int) -> tuple[list[Example], list[Example], list[Example]]:
    """Train, IID val and OOD gen examples (see the module docstring)."""
    opens, closes = bracket_names(k)
    names = np.array(opens + closes, dtype=object)
    train_batch = sample(rng, n_train, k, m, min_len)
    seen_structures = set(train_batch.excursions()[0])
    train_strings = set(train_batch.string_keys())
    val: list[Example] = []
    gen: list[Example] = []
    stalled = 0
    while len(val) < n_val or len(gen) < n_gen:
        batch = sample(rng, BATCH, k, m, min_len)
        keys, owner = batch.excursions()
        unseen = np.fromiter((key not in seen_structures for key in keys), dtype=bool, count=len(keys))
        ood = np.bincount(owner, weights=unseen, minlength=len(batch)) > 0
        new_string = np.fromiter((s not in train_strings for s in batch.string_keys()), dtype=bool,
                                 count=len(batch))
        before = len(val) + len(gen)
        if len(val) < n_val:
            val.extend(batch.examples(names, np.flatnonzero(~ood & new_string)[:n_val - len(val)]))
        if len(gen) < n_gen:
            gen.extend(batch.examples(names, np.flatnonzero(ood)[:n_gen - len(gen)]))
        stalled = stalled + 1 if len(val) + len(gen) == before else 0
        if stalled >= 20:
            raise DataError(f"Dyck sampler found no new val/gen strings in {20 * BATCH} draws; "
                            "reduce task.n_val/task.n_gen or increase task.n_train")
    return train_batch.examples(names), val, gen
