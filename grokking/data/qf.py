"""Question formation: declarative -> polar question by moving an auxiliary, and the QF splits."""

from __future__ import annotations

import numpy as np

from grokking.data.examples import Example
from grokking.data.grammar import SentenceSampler
from grokking.data.lexicon import AUXILIARIES, pos_tag, pos_tags
from grokking.data.splits import Draw
from grokking.errors import DataError

RULES = ("hierarchical", "linear")


def auxiliary_positions(words: list[str]) -> list[int]:
    return [i for i, w in enumerate(words) if w in AUXILIARIES]


def is_plural_auxiliary(word: str) -> bool:
    return word in ("do", "don't")


def is_negated_auxiliary(word: str) -> bool:
    return word.endswith("n't")


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


def _noun_phrase(tags: list[str], i: int) -> tuple[str, str | None, int]:
    """(kind, RC type, end) of the noun phrase starting at word i: kind bare/PP/RC; RC type intransitive,
    object-gap ("who the yak does admire") or transitive ("who does admire the yak")."""
    if tags[i:i + 2] != ["D", "N"]:
        raise DataError(f"no noun phrase at word {i}")
    j = i + 2
    if j < len(tags) and tags[j] == "P":
        return "PP", None, j + 3
    if j < len(tags) and tags[j] == "R":
        if tags[j + 1] == "D":
            return "RC", "object-gap", j + 5
        if j + 3 < len(tags) and tags[j + 3] == "D":
            return "RC", "transitive", j + 5
        return "RC", "intransitive", j + 3
    return "bare", None, j


def structure(decl_words: list[str]) -> dict[str, str]:
    """The constituents a declarative was built from: subject (bare/PP/RC) and its RC type, main VP
    (intransitive/transitive), object (bare/PP/RC) and its RC type. Keys are absent where they do not apply."""
    tags = pos_tags("qf", decl_words)
    out: dict[str, str] = {}
    out["subject"], rc, end = _noun_phrase(tags, 0)
    if rc:
        out["subject RC"] = rc
    if end + 2 == len(tags):
        out["main VP"] = "intransitive"
    else:
        out["main VP"] = "transitive"
        out["object"], rc, _ = _noun_phrase(tags, end + 2)
        if rc:
            out["object RC"] = rc
    return out


def candidates(sampler: SentenceSampler, rng: np.random.Generator, generalisation: bool) -> Draw:
    """In-domain: "decl" or "quest" with probability 1/2 each, a "quest" with a subject RC rejected (the rules would
    disagree on it). Generalisation (draw from the "qf_gen" grammar): "quest" lines as in McCoy's gen set -- the
    subject has an RC, the object none (exactly two auxiliaries), and the RC auxiliary has the main auxiliary's
    number and the opposite polarity, so no rule that picks an auxiliary by number can tell them apart."""

    def draw(n: int) -> list[Example]:
        sentences = sampler.sample(rng, n)
        asks = rng.random(n) < 0.5
        out = []
        for words, ask in zip(sentences, asks.tolist(), strict=True):
            decl = words[:-1]
            rc = has_subject_rc("qf", decl)
            if generalisation:
                aux = [decl[i] for i in auxiliary_positions(decl)]
                if (not rc or len(aux) != 2 or is_plural_auxiliary(aux[0]) != is_plural_auxiliary(aux[1])
                        or is_negated_auxiliary(aux[0]) == is_negated_auxiliary(aux[1])):
                    continue
                ask = True
            elif ask and rc:
                continue
            output = [*question(decl, "hierarchical"), "?"] if ask else words
            out.append(Example((*words, "quest" if ask else "decl", *output), len(words) + 1))
        return out

    return draw
