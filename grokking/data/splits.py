"""Filling the QF/TI splits from candidate streams, with the cross-split de-duplication rules.

Train takes the first `n_train` in-domain candidates as drawn (repeats allowed: the original sampler draws
i.i.d.). Val takes in-domain candidates whose input (sentence, "." and marker) is in neither train nor val; gen
takes generalisation candidates whose input is in no other split and not yet in gen. Excluding train inputs thins
the shortest sentences out of val, as in McCoy's dev set (5 of 1,000 QF lines are four-word sentences; here ~2%).
"""

from __future__ import annotations

from collections.abc import Callable

from grokking.data.examples import Example
from grokking.errors import DataError

Draw = Callable[[int], list[Example]]  # draw(n raw sentences) -> the candidates among them that fit the split
MAX_STALLED_ROUNDS = 20


def take(draw: Draw, n: int, exclude: set[tuple[str, ...]] | None, what: str) -> list[Example]:
    """`n` candidates from `draw`; with `exclude`, only unseen inputs, which are then added to `exclude`."""
    out: list[Example] = []
    accepted, drawn, stalled = 1, 2, 0
    while len(out) < n:
        want = int((n - len(out)) * drawn / accepted * 1.1) + 64
        batch = draw(want)
        drawn, accepted = drawn + want, accepted + len(batch)
        before = len(out)
        for example in batch:
            if exclude is not None:
                key = example.input
                if key in exclude:
                    continue
                exclude.add(key)
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
    train = take(in_domain, n_train, None, "training")
    seen = {example.input for example in train}
    val = take(in_domain, n_val, seen, "validation")
    gen = take(generalisation, n_gen, seen, "generalisation")
    return train, val, gen
