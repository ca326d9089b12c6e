"""Tense inflection: past-tense sentence -> present tense with each verb agreeing by a rule."""

from __future__ import annotations

from grokking.data.lexicon import PRESENT, is_plural_noun, pos_tags
from grokking.data.trees import parse
from grokking.errors import DataError

RULES = ("hierarchical", "linear")


def _inflect(word: str, plural: bool) -> str:
    try:
        singular, plural_form = PRESENT[word]
    except KeyError:
        raise DataError(f"{word!r} is not a past-tense verb") from None
    return plural_form if plural else singular


def present(past_words: list[str], rule: str) -> list[str]:
    """Re-inflect to present tense (words without '.').

    "hierarchical": each verb agrees with its own subject; "linear": with the most recent noun before it
    (McCoy's tense_nearest).
    """
    if rule == "hierarchical":
        subjects = parse("ti", past_words).subject_of
        return [_inflect(w, is_plural_noun("ti", past_words[subjects[i]])) if i in subjects else w
                for i, w in enumerate(past_words)]
    if rule != "linear":
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    out, plural = [], None
    for word, tag in zip(past_words, pos_tags("ti", past_words), strict=True):
        if tag == "N":
            plural = is_plural_noun("ti", word)
        elif tag == "V":
            if plural is None:
                raise DataError(f"verb {word!r} before any noun in {' '.join(past_words)!r}")
            word = _inflect(word, plural)
        out.append(word)
    return out
