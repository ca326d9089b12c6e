"""Question formation: declarative -> polar question by moving an auxiliary, and the QF splits."""

from __future__ import annotations

import numpy as np

from grokking.data.examples import Example
from grokking.data.grammar import SentenceSampler
from grokking.data.lexicon import AUXILIARIES, pos_tag
from grokking.data.splits import Draw
from grokking.errors import DataError

RULES = ("hierarchical", "linear")


def auxiliary_positions(words: list[str]) -> list[int]:
    return [i for i, w in enumerate(words) if w in AUXILIARIES]


def has_subject_rc(task: str, words: list[str]) -> bool:
    """True if the main subject carries a relative clause (the third word is a relativiser)."""
    return len(words) > 2 and pos_tag(task, words[2]) == "R"


def main_auxiliary(words: list[str]) -> int:
    """Index of the main clause's auxiliary: a subject RC holds exactly one auxiliary, so it is the second one."""
    positions = auxiliary_positions(words)
    index = 1 if has_subject_rc("qf", words) else 0
    if len(positions) <= index:
        raise DataError(f"no main auxiliary in {' '.join(words)!r}")
    return positions[index]


def question(decl_words: list[str], rule: str) -> list[str]:
    """The question words (without '?'): move the main ("hierarchical") or first ("linear") auxiliary to the front."""
    if rule == "hierarchical":
        moved = main_auxiliary(decl_words)
    elif rule == "linear":
        positions = auxiliary_positions(decl_words)
        if not positions:
            raise DataError(f"no auxiliary in {' '.join(decl_words)!r}")
        moved = positions[0]
    else:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return [decl_words[moved], *decl_words[:moved], *decl_words[moved + 1:]]


def candidates(sampler: SentenceSampler, rng: np.random.Generator, generalisation: bool) -> Draw:
    """In-domain: "decl" or "quest" with probability 1/2 each, a "quest" with a subject RC rejected (the rules would
    disagree on it). Generalisation: "quest" lines whose subject RC auxiliary differs from the main auxiliary, with
    no RC on the object (exactly two auxiliaries, as in McCoy's gen set)."""

    def draw(n: int) -> list[Example]:
        sentences = sampler.sample(rng, n)
        asks = rng.random(n) < 0.5
        out = []
        for words, ask in zip(sentences, asks.tolist(), strict=True):
            decl = words[:-1]
            rc = has_subject_rc("qf", decl)
            if generalisation:
                aux = auxiliary_positions(decl)
                if not rc or len(aux) != 2 or decl[aux[0]] == decl[aux[1]]:
                    continue
                ask = True
            elif ask and rc:
                continue
            output = [*question(decl, "hierarchical"), "?"] if ask else words
            out.append(Example((*words, "quest" if ask else "decl", *output), len(words) + 1))
        return out

    return draw
