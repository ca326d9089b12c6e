"""A fourth task in one module: reverse a string of letters (docs/architecture.md, "Adding a task").

The test registers it through the `grok.tasks` entry point and puts `toy_conf/` on Hydra's search path (not
`conf/`, the name of grok's own config package); it is never part of grok itself. In-domain strings have 2-5 letters, OOD ones 6-7 (length generalisation); accuracy scores
every output letter, teacher-forced, among the letters.
"""

from __future__ import annotations

from grokking.data.examples import Example
from grokking.tasks import ScoredRow, Task

LETTERS = tuple("abcdef")
MARKER = "rev"


def reversal(letters) -> Example:
    letters = tuple(letters)
    return Example((*letters, MARKER, *reversed(letters)), len(letters) + 1)


class Reverse(Task):
    name = "toy"
    summary = "reverse a string of letters"

    def generate(self, rng, n_train, n_val, n_gen, params):
        def draw(n: int, shortest: int, longest: int) -> list[Example]:
            return [reversal(rng.choice(LETTERS, size=int(rng.integers(shortest, longest + 1))).tolist())
                    for _ in range(n)]

        return draw(n_train, 2, 5), draw(n_val, 2, 5), draw(n_gen, 6, 7)

    def original_names(self, params):
        return {"train": ("reverse.train",), "val": ("reverse.val",), "gen": ("reverse.gen",)}

    def to_line(self, example: Example) -> str:
        return " ".join(example.tokens)

    def from_line(self, line: str, check: bool = True) -> Example:
        tokens = line.split(" ")
        if MARKER not in tokens:
            raise ValueError(f"no {MARKER!r} marker")
        example = reversal(tokens[: tokens.index(MARKER)])
        if check and example.tokens != tuple(tokens):
            raise ValueError("the output is not the input reversed")
        return example

    def scored_rows(self, examples, task_cfg):
        return [ScoredRow(e, positions=tuple((i, e.tokens[i], False) for i in range(e.n_input, len(e.tokens))))
                for e in examples]

    def candidates(self, vocab):
        return list(LETTERS)

    def probe_input(self, example: Example):
        return example.input[:-1]

    def segments_and_tags(self, example: Example):
        segments = ["input"] * example.n_input + ["output"] * (len(example.tokens) - example.n_input + 1)
        return segments, ["M" if t == MARKER else "L" for t in example.tokens] + ["EOS"]


TASK = Reverse()
