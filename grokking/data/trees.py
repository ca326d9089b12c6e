"""Structural parses of QF declaratives and TI sentences: binary gold trees and each verb's subject.

The parse follows the grammars' constituents bottom-up, as McCoy's pairing rules do:
D+N -> NP, P+NP -> PP, NP+PP -> NP, NP+RC -> NP, V+NP -> VP, Aux+(V|VP) -> VP, R+VP -> RC, NP+VP -> S.
Relative clauses with an object gap ("who some yak does high_five") pair their own subject with their
verb phrase first, like a clause, and then attach the relativiser: R + (NP + VP) -> RC, i.e.
(who ((some yak) (does high_five))). Parsing needs only the words' part-of-speech tags, so it works on
past-tense TI inputs and present-tense outputs alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nltk import Tree

from grokking.data.lexicon import pos_tags
from grokking.errors import DataError


@dataclass
class Parse:
    tree: Tree
    subject_of: dict[int, int] = field(default_factory=dict)  # verb/auxiliary index -> index of its subject noun
    main_verb: int = -1
    main_aux: int = -1  # QF only


class _Parser:
    def __init__(self, task: str, words: list[str]):
        self.words, self.tags, self.i = list(words), pos_tags(task, words), 0
        self.has_aux = task == "qf"
        self.parse = Parse(tree=None)  # type: ignore[arg-type]

    def peek(self) -> str:
        return self.tags[self.i] if self.i < len(self.tags) else ""

    def take(self, tag: str) -> int:
        if self.peek() != tag:
            found = self.words[self.i] if self.i < len(self.words) else "the end"
            raise DataError(f"cannot parse {' '.join(self.words)!r}: expected {tag} at {found!r}")
        self.i += 1
        return self.i - 1

    def noun_phrase(self, modifiers: bool) -> tuple[Tree, int]:
        det, noun = self.take("D"), self.take("N")
        tree = Tree("NP", [self.words[det], self.words[noun]])
        if modifiers and self.peek() == "P":
            prep = self.take("P")
            inner, _ = self.noun_phrase(modifiers=False)
            tree = Tree("NP", [tree, Tree("PP", [self.words[prep], inner])])
        elif modifiers and self.peek() == "R":
            tree = Tree("NP", [tree, self.relative_clause(noun)])
        return tree, noun

    def relative_clause(self, head: int) -> Tree:
        rel = self.words[self.take("R")]
        if self.peek() == "D":  # object gap: R + (NP + VP)
            subject, noun = self.noun_phrase(modifiers=False)
            return Tree("RC", [rel, Tree("S", [subject, self.verb_phrase(noun, objects=False)])])
        return Tree("RC", [rel, self.verb_phrase(head, objects=True, object_modifiers=False)])

    def verb_phrase(self, subject: int, objects: bool, object_modifiers: bool = False, main: bool = False) -> Tree:
        aux = self.take("A") if self.has_aux else -1
        verb = self.take("V")
        self.parse.subject_of[verb] = subject
        if aux >= 0:
            self.parse.subject_of[aux] = subject
        if main:
            self.parse.main_verb, self.parse.main_aux = verb, aux
        phrase: Tree | str = self.words[verb]
        if objects and self.peek() == "D":
            obj, _ = self.noun_phrase(modifiers=object_modifiers)
            phrase = Tree("VP", [phrase, obj])
        return Tree("VP", [self.words[aux], phrase]) if aux >= 0 else phrase

    def sentence(self) -> Parse:
        subject, noun = self.noun_phrase(modifiers=True)
        predicate = self.verb_phrase(noun, objects=True, object_modifiers=True, main=True)
        if self.i != len(self.words):
            raise DataError(f"cannot parse {' '.join(self.words)!r}: unexpected {self.words[self.i]!r}")
        self.parse.tree = Tree("S", [subject, predicate])
        return self.parse


def parse(task: str, words: list[str]) -> Parse:
    """Parse a QF declarative or a TI sentence (words without the final '.' and marker)."""
    return _Parser(task, words).sentence()


def gold_tree(task: str, words: list[str]) -> Tree:
    """Binary gold parse (leaves = `words`, every internal node has two children); see the module docstring."""
    return parse(task, words).tree
