"""Question formation: declarative -> polar question by moving an auxiliary, and the QF splits."""

from __future__ import annotations

from grokking.data.lexicon import AUXILIARIES, pos_tag
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
