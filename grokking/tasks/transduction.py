"""What McCoy's two sentence-transduction tasks (QF, TI) share: the line format `<input words> . <marker><TAB>
<output words>`, the input/output segments, part-of-speech tags from the task's grammar, and gold parses."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from grokking.data import splits
from grokking.data.examples import Example
from grokking.data.grammar import SentenceSampler
from grokking.data.lexicon import pos_tag
from grokking.data.trees import gold_tree
from grokking.tasks.base import Task

EOS_TAG = "EOS"
MARKER_TAG = "M"


class TransductionTask(Task):
    """A task whose lines map an input sentence, ended by "." and a marker, to an output sentence."""

    markers: tuple[str, ...]  # the tokens that end an input and say which transformation to apply
    output_ends: dict[str, str]  # marker -> the token every output for it ends in
    stem: str  # original file names: <stem>.train, <stem>.dev|val, <stem>.gen|test
    language: ModuleType  # grokking.data.qf / .ti: `candidates(sampler, rng, generalisation)` draws lines
    grammars: tuple[str, str]  # the PCFGs (grammar.GRAMMAR_FILES) of the in-domain splits and of gen
    has_gold_trees = True

    def generate(self, rng, n_train, n_val, n_gen, params):
        in_domain, generalisation = (SentenceSampler(name) for name in self.grammars)
        return splits.build(self.language.candidates(in_domain, rng, generalisation=False),
                            self.language.candidates(generalisation, rng, generalisation=True), n_train, n_val, n_gen)

    def original_names(self, params) -> dict[str, tuple[str, ...]]:
        stem = self.stem
        return {"train": (f"{stem}.train",), "val": (f"{stem}.dev", f"{stem}.val"),
                "gen": (f"{stem}.gen", f"{stem}.test")}

    def to_line(self, example: Example) -> str:
        return " ".join(example.input) + "\t" + " ".join(example.output)

    def from_line(self, line: str, check: bool = True) -> Example:
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"expected 2 tab-separated fields, found {len(parts)}")
        source, target = parts[0].split(" "), parts[1].split(" ")
        if len(source) < 3 or source[-2] != "." or source[-1] not in self.markers:
            raise ValueError(f"input must end in '. {'|'.join(self.markers)}'")
        if "" in source or "" in target or target[-1] != self.output_ends[source[-1]]:
            raise ValueError(f"output must be words ending in {self.output_ends[source[-1]]!r}")
        return Example((*source, *target), len(source))

    def pos_tag(self, word: str) -> str:
        """The grammar's tag of a word (D N V A P R T), M for a marker."""
        return MARKER_TAG if word in self.markers else pos_tag(self.name, word)

    def gold_tree(self, words: Sequence[str]):
        return gold_tree(self.name, list(words))

    def segments_and_tags(self, example: Example) -> tuple[list[str], list[str]]:
        targets = example.tokens
        segments = ["input"] * example.n_input + ["output"] * (len(targets) - example.n_input + 1)
        return segments, [self.pos_tag(t) for t in targets] + [EOS_TAG]
