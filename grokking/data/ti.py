"""Tense inflection: past-tense sentence -> present tense with each verb agreeing by a rule."""

from __future__ import annotations

import numpy as np

from grokking.data.examples import Example
from grokking.data.grammar import SentenceSampler
from grokking.data.lexicon import PAST, PRESENT, is_plural_noun, pos_tags
from grokking.data.splits import Draw
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


def candidates(sampler: SentenceSampler, rng: np.random.Generator, generalisation: bool) -> Draw:
    """In-domain: "PAST" (identity) or "PRESENT" with probability 1/2 each, a "PRESENT" rejected where agreeing
    with the most recent noun would change the output. Generalisation: "PRESENT" lines where it does (only the main
    verb can be affected: every other verb's subject is the noun right before it)."""

    def draw(n: int) -> list[Example]:
        sentences = sampler.sample(rng, n)  # present tense, each verb agreeing with its subject
        to_present = rng.random(n) < 0.5
        out = []
        for words, change in zip(sentences, to_present.tolist(), strict=True):
            past = [PAST.get(w, w) for w in words]
            if generalisation or change:
                ambiguous = present(past[:-1], "linear") == words[:-1]
                if ambiguous == generalisation:
                    continue
                out.append(Example((*past, "PRESENT", *words), len(words) + 1))
            else:
                out.append(Example((*past, "PAST", *past), len(words) + 1))
        return out

    return draw
