"""Filling the QF/TI splits from candidate streams, with the cross-split de-duplication rules.

Every split is filled by sequential rejection of repeated inputs (sentence, "." and marker), as McCoy's files were:
none of his splits repeats an input, and the share of short sentences falls along his train file as their few
distinct inputs are used up. Train takes in-domain candidates whose input it does not hold yet; val those whose
input is in neither train nor val; gen generalisation candidates whose input is in no split yet. Excluding train
inputs thins the shortest sentences out of val, as in McCoy's dev set (5 of 1,000 QF lines are four-word sentences).
"""

from __future__ import annotations

from collections.abc import Callable

from grokking.data.examples import Example
from grokking.errors import DataError

Draw = Callable[[int], list[Example]]  # draw(n raw sentences) -> the candidates among them that fit the split
MAX_STALLED_ROUNDS = 20


def take(draw: Draw, n: int, exclude: set[tuple[str, ...]], what: str) -> list[Example]:
    """`n` candidates from `draw` whose inputs are not in `exclude`; each taken input is added to `exclude`."""
    out: list[Example] = []
    accepted, drawn, stalled = 1, 2, 0
    while len(out) < n:
        want = int((n - len(out)) * drawn / accepted * 1.1) + 64
        batch = draw(want)
        drawn, accepted = drawn + want, accepted + len(batch)
        before = len(out)
        for example in batch:
            if example.input in exclude:
                continue
            exclude.add(example.input)
            out.append(example)
            if len(out) == n:
                break
        stalled = stalled + 1 if len(out) == before else 0
        if stalled >= MAX_STALLED_ROUNDS:
            raise DataError(f"only {len(out)} distinct {what} sentences found, {n} requested; "
                            "reduce the split sizes in task.*")
    return out


def build(in_domain: Draw, generalisation: Draw, n_train: int, n_val: int,
          n_gen: int) -> tuple[list[Example], list[Example], list[Example]]:
    seen: set[tuple[str, ...]] = set()
    train = take(in_domain, n_train, seen, "training")
    val = take(in_domain, n_val, seen, "validation")
    gen = take(generalisation, n_gen, seen, "generalisation")
    return train, val, gen
