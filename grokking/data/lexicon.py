"""Word classes of the two grammars: POS tags, noun and verb number, and the TI past-tense lexicon."""

from __future__ import annotations

import functools

from grokking.data.grammar import GRAMMAR_FILES, lexicon
from grokking.errors import DataError

AUXILIARIES = ("do", "does", "don't", "doesn't")
TERMINALS = (".", "?")

# TI verbs: plural/base form -> (third-person singular, past). Inputs are past tense, so "read" is ambiguous
# between past and base, and the past carries no number.
VERB_FORMS = {
    "giggle": ("giggles", "giggled"), "smile": ("smiles", "smiled"), "sleep": ("sleeps", "slept"),
    "swim": ("swims", "swam"), "wait": ("waits", "waited"), "move": ("moves", "moved"),
    "change": ("changes", "changed"), "read": ("reads", "read"), "eat": ("eats", "ate"),
    "entertain": ("entertains", "entertained"), "amuse": ("amuses", "amused"),
    "high_five": ("high_fives", "high_fived"), "applaud": ("applauds", "applauded"),
    "confuse": ("confuses", "confused"), "admire": ("admires", "admired"), "accept": ("accepts", "accepted"),
    "remember": ("remembers", "remembered"), "comfort": ("comforts", "comforted"),
}
PAST = {form: past for base, (sg, past) in VERB_FORMS.items() for form in (base, sg)}
PRESENT = {past: (sg, base) for base, (sg, past) in VERB_FORMS.items()}  # past -> (singular, plural)

_CATEGORY_TAGS = {"Det": "D", "N": "N", "V": "V", "Aux": "A", "Prep": "P", "Rel": "R"}


@functools.cache
def _tags(task: str) -> dict[str, str]:
    tags = {}
    for category, words in lexicon(task).items():
        tag = _CATEGORY_TAGS[category.split("_")[0]]
        tags.update(dict.fromkeys(words, tag))
    if task == "ti":
        tags.update(dict.fromkeys(PRESENT, "V"))
    tags.update(dict.fromkeys(TERMINALS, "T"))
    return tags


def pos_tag(task: str, word: str) -> str:
    """D, N, V, A (QF auxiliary), P, R (relativiser) or T ('.' or '?') for a word of `task`'s grammar (a task adds
    its markers: `grokking.tasks.transduction.TransductionTask.pos_tag`)."""
    if task not in GRAMMAR_FILES:
        raise DataError(f"no part-of-speech tags for task {task!r} (qf or ti)")
    try:
        return _tags(task)[word]
    except KeyError:
        raise DataError(f"unknown {task} word {word!r}") from None


def pos_tags(task: str, words) -> list[str]:
    return [pos_tag(task, w) for w in words]


@functools.cache
def _plural_nouns(task: str) -> frozenset[str]:
    return frozenset(w for cat, words in lexicon(task).items() if cat in ("N_P", "N_pl") for w in words)


def is_plural_noun(task: str, word: str) -> bool:
    return word in _plural_nouns(task)
