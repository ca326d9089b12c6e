"""Question formation (McCoy et al. 2020): a declarative -> the same declarative ("decl") or its polar question
("quest"), formed by moving the main auxiliary to the front. The language itself (the rules, the splits' sampling)
is `grokking.data.qf`.

Accuracy (the original code's): argmax over the four auxiliaries at the position right after `quest`; val scores
its quest lines, gen is all quest lines. Diagnostics: that position is critical (the linear rule moves the first
auxiliary, the hierarchical rule the main one), and every output position where the two rules' questions differ
is structure-sensitive.
"""

from __future__ import annotations

from collections.abc import Sequence

from grokking.data import qf
from grokking.data.examples import Example
from grokking.data.lexicon import AUXILIARIES
from grokking.tasks.base import ScoredRow, SentenceRoles
from grokking.tasks.transduction import TransductionTask


class QuestionFormation(TransductionTask):
    name = "qf"
    summary = "question formation: move the main auxiliary to the front"
    markers = ("decl", "quest")
    output_ends = {"decl": ".", "quest": "?"}
    stem = "question"
    language = qf
    grammars = ("qf", "qf_gen")  # the gen set has McCoy's own weights (question_gen.cfg)
    plots_critical_candidates = True

    def scored_rows(self, examples: Sequence[Example], task_cfg) -> list[ScoredRow]:
        """Every line in the loss; the main auxiliary scored on question lines, right after `quest`."""
        return [ScoredRow(e, positions=((e.n_input, e.tokens[e.n_input], False),) if e.marker == "quest" else ())
                for e in examples]

    def candidates(self, vocab) -> list[str]:
        return list(AUXILIARIES)

    def probe_input(self, example: Example) -> tuple[str, ...] | None:
        """The declarative of a question line (subject-RC sentences never are one in training)."""
        return tuple(example.words) if example.marker == "quest" else None

    def roles(self, example: Example, task_cfg, vocab) -> SentenceRoles:
        roles = SentenceRoles.blank(len(example.tokens) + 1)
        if example.marker != "quest":
            return roles
        decl = list(example.words)
        linear, hierarchical = qf.question(decl, "linear"), qf.question(decl, "hierarchical")
        roles.mark_rules(example.n_input, linear, hierarchical)
        roles.mark_critical(example.n_input, linear[0], hierarchical[0], list(AUXILIARIES))
        return roles


TASK = QuestionFormation()
