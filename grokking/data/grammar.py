"""The two PCFGs (package data) and a fast sampler that draws whole sentences with numpy.

The grammars are finite (no recursion), so every derivation reduces to a *template*: a sequence of
lexical categories (`Det`, `N_S`, `Aux_S`, ...) and literal terminals ('.'). Sampling draws a template
by its probability, then each category's word uniformly, all vectorised; nltk is used only to read
the grammar.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import nltk
import numpy as np

# grammar name -> file: one per task for the in-domain splits (and TI's gen set); QF's gen set has its own weights
GRAMMAR_FILES = {"qf": "question.cfg", "qf_gen": "question_gen.cfg", "ti": "tense.cfg"}


@functools.cache
def load_grammar(name: str) -> nltk.PCFG:
    """A PCFG of GRAMMAR_FILES as an nltk object (present tense for TI)."""
    text = resources.files("grokking").joinpath("grammars", GRAMMAR_FILES[name]).read_text()
    return nltk.PCFG.fromstring(text)


@dataclass(frozen=True)
class Template:
    slots: tuple[str, ...]  # lexical category names, or literal words for terminals
    prob: float


@functools.cache
def lexicon(name: str) -> dict[str, tuple[str, ...]]:
    """Lexical category -> its words, for the categories whose rules all rewrite to one terminal."""
    by_lhs: dict[str, list[str]] = {}
    grammar = load_grammar(name)
    for lhs in {p.lhs() for p in grammar.productions()}:
        rules = grammar.productions(lhs=lhs)
        if all(len(p.rhs()) == 1 and isinstance(p.rhs()[0], str) for p in rules):
            by_lhs[str(lhs)] = [p.rhs()[0] for p in rules]
    return {cat: tuple(words) for cat, words in by_lhs.items()}


@functools.cache
def templates(name: str) -> tuple[Template, ...]:
    """Every template the grammar derives from its start symbol, with its probability."""
    grammar, lexical = load_grammar(name), lexicon(name)

    def expand(symbol) -> list[tuple[tuple[str, ...], float]]:
        if isinstance(symbol, str):
            return [((symbol,), 1.0)]
        if str(symbol) in lexical:
            return [((str(symbol),), 1.0)]
        out = []
        for rule in grammar.productions(lhs=symbol):
            partial = [((), rule.prob())]
            for child in rule.rhs():
                partial = [(a + b, p * q) for a, p in partial for b, q in expand(child)]
            out.extend(partial)
        return out

    return tuple(Template(slots, prob) for slots, prob in expand(grammar.start()))


class SentenceSampler:
    """Draws sentences from one PCFG of GRAMMAR_FILES with a numpy Generator (deterministic per generator)."""

    def __init__(self, grammar: str):
        lexical = lexicon(grammar)
        self.templates = templates(grammar)
        self.probs = np.array([t.prob for t in self.templates])
        self.probs /= self.probs.sum()
        words = sorted({w for ws in lexical.values() for w in ws} | {s for t in self.templates for s in t.slots
                                                                   if s not in lexical})
        self.words = np.array(words, dtype=object)
        index = {w: i for i, w in enumerate(words)}
        self.width = max(len(t.slots) for t in self.templates)
        # per template and slot: the ids of the words that may fill it
        self.choices = [[np.array([index[w] for w in lexical.get(s, (s,))]) for s in t.slots]
                        for t in self.templates]

    def sample(self, rng: np.random.Generator, n: int) -> list[list[str]]:
        """`n` sentences as word lists (each ends in the grammar's '.')."""
        which = rng.choice(len(self.templates), size=n, p=self.probs)
        ids = np.full((n, self.width), -1, dtype=np.int64)
        for t in np.unique(which):
            rows = np.flatnonzero(which == t)
            for j, options in enumerate(self.choices[t]):
                ids[rows, j] = options[rng.integers(len(options), size=len(rows))]
        lengths = (ids >= 0).sum(axis=1)
        return [self.words[row[:k]].tolist() for row, k in zip(ids, lengths, strict=True)]
