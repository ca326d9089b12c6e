"""What a task is: the interface every task module implements, and the records its answers come in.

A task module (`qf.py`, `ti.py`, `dyck.py`) subclasses `Task` and says everything that is specific to it: how its
splits are generated and written in the original line format, which positions its accuracy scores, its probe
sample, its gold trees and its diagnostic roles. The generic code (data store, evaluation, probes, diagnostics,
report) asks `grokking.tasks.get_task(name)` and never branches on a task's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grokking.data.examples import Example

Splits = tuple[list[Example], list[Example], list[Example]]


@dataclass(frozen=True)
class ScoredRow:
    """One teacher-forced row of an evaluation: its example, whether its tokens count in the mean loss, and the
    positions whose next-token prediction is scored: (position in [SOS, *tokens], expected token, far), ranked
    over the task's candidate tokens only (`far`: a task's second, filtered accuracy, e.g. Dyck's long
    dependencies)."""

    example: Example
    in_loss: bool = True
    positions: tuple[tuple[int, str, bool], ...] = ()


@dataclass
class SentenceRoles:
    """Per-target diagnostic annotations of one example (length = tokens + 1 for the EOS): each target's role
    (`critical`, `structure-sensitive` or `other`), the linear and the hierarchical rule's answers where they
    apply, and the candidate tokens whose logits are stored at critical targets."""

    role: list[str]
    linear: list[str]
    hierarchical: list[str]
    candidates: dict[int, list[str]] = field(default_factory=dict)  # critical target index -> candidate tokens

    @classmethod
    def blank(cls, n: int) -> SentenceRoles:
        return cls(["other"] * n, [""] * n, [""] * n)

    def mark_rules(self, offset: int, linear: Sequence[str], hierarchical: Sequence[str]) -> None:
        """Targets from `offset` on where the two rules' outputs differ are structure-sensitive."""
        for j, (a, b) in enumerate(zip(linear, hierarchical, strict=True)):
            if a != b:
                self.role[offset + j] = "structure-sensitive"
                self.linear[offset + j], self.hierarchical[offset + j] = a, b

    def mark_critical(self, index: int, linear: str, hierarchical: str, candidates: list[str]) -> None:
        self.role[index] = "critical"
        self.linear[index], self.hierarchical[index] = linear, hierarchical
        self.candidates[index] = candidates


class Task:
    """One task. Subclasses set `name` and implement what their data and metrics need; the defaults are those of a
    plain language-modelling task (every example in the loss, no scored positions, no trees)."""

    name: str
    summary: str = ""  # one line for help texts

    # How accuracy is measured: ranking the `candidates` at scored positions (teacher-forced), or greedy decoding
    # of each output followed by `decoded_correct` (`decodes = True`).
    decodes: bool = False
    far_metric: str | None = None  # the key of a second accuracy over the positions flagged `far` (Dyck)
    has_gold_trees: bool = False  # gold_tree() gives binary parses (tree-projection tscore/tparseval)
    plots_critical_candidates: bool = False  # the report's per-candidate surprisal figure suits this task

    # -- data -------------------------------------------------------------------------------------------------
    def generation_params(self, task_cfg) -> dict[str, Any]:
        """The task-specific `task.*` settings that determine the generated data (hashed into the data cache)."""
        return {}

    def file_params(self, task_cfg) -> dict[str, Any]:
        """The settings the original files' names depend on (`original_names`)."""
        return {}

    def generate(self, rng: np.random.Generator, n_train: int, n_val: int, n_gen: int,
                 params: dict[str, Any]) -> Splits:
        """(train, val, gen) drawn with `rng`; `params` holds generation_params' keys."""
        raise NotImplementedError

    def original_names(self, params: dict[str, Any]) -> dict[str, tuple[str, ...]]:
        """Split -> accepted file names in a source directory, the export name first."""
        raise NotImplementedError

    def to_line(self, example: Example) -> str:
        raise NotImplementedError

    def from_line(self, line: str, check: bool = True) -> Example:
        """Parse one line (without its newline); ValueError says what is wrong. `check=False` skips checks a
        checksummed cache makes redundant."""
        raise NotImplementedError

    # -- evaluation -------------------------------------------------------------------------------------------
    def scored_rows(self, examples: Sequence[Example], task_cfg) -> list[ScoredRow]:
        """Every example in the loss, with the positions the accuracy scores."""
        return [ScoredRow(e) for e in examples]

    def candidates(self, vocab) -> list[str] | None:
        """The tokens the teacher-forced accuracy ranks at scored positions."""
        return None

    def decoded_correct(self, target: Sequence[str], predicted: Sequence[str]) -> bool:
        """Whether a greedy continuation of an example's input is right (only for `decodes = True`)."""
        raise NotImplementedError

    # -- probes and diagnostics -------------------------------------------------------------------------------
    def probe_input(self, example: Example) -> tuple[str, ...] | None:
        """The probe sentence a training example contributes to the fixed probe sample, or None."""
        return tuple(example.words)

    def gold_tree(self, words: Sequence[str]):
        """The binary gold parse (an nltk Tree) of a probe sentence (only for `has_gold_trees = True`)."""
        raise NotImplementedError

    def roles(self, example: Example, task_cfg, vocab) -> SentenceRoles:
        """Diagnostic roles of every target of `example` (its tokens and the EOS)."""
        return SentenceRoles.blank(len(example.tokens) + 1)

    def segments_and_tags(self, example: Example) -> tuple[list[str], list[str]]:
        """Per target (tokens and EOS): segment (`input`/`output`) and a part-of-speech-like tag."""
        raise NotImplementedError
