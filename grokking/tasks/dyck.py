"""Dyck-(k, m): strings of k bracket types nested at most m deep, IID val vs OOD gen by top-level excursion
structure. The sampler and the split are `grokking.data.dyck`; lines are space-separated brackets ending in END.

Accuracy: argmax over the closing brackets at every closing position, strings in file order until
`task.dyck_eval_prefixes` positions; unfiltered (what the code measured, `acc`) and with the >= `task.dyck_min_dep`
dependency filter (what the paper describes, `acc_mindep`).
Diagnostics (project-native): closing brackets are the output segment; a closing bracket whose opener is
>= dyck_min_dep tokens back is critical; one where closing the most recently *opened* type (the linear rule) differs
from closing the top of the stack (the hierarchical rule) is structure-sensitive.
"""

from __future__ import annotations

from collections.abc import Sequence

from grokking.data import dyck
from grokking.data.dyck import END, closing_brackets, is_closing
from grokking.data.examples import Example
from grokking.tasks.base import ScoredRow, SentenceRoles, Task
from grokking.tasks.transduction import EOS_TAG


def closing_positions(examples: Sequence[Example], limit: int) -> list[tuple[Example, list[tuple[int, int]]]]:
    """Strings in file order with their (closing index, dependency length) pairs, until >= limit positions."""
    taken, total = [], 0
    for example in examples:
        stack, closing = [], []
        for i, token in enumerate(example.tokens):
            if token.startswith("("):
                stack.append(i)
            else:
                closing.append((i, i - stack.pop()))
        taken.append((example, closing))
        total += len(closing)
        if limit and total >= limit:
            break
    return taken


def check_brackets(tokens: Sequence[str]) -> None:
    stack = []
    for token in tokens:
        if len(token) == 2 and token[0] == "(":
            stack.append(token[1])
        elif len(token) == 2 and token[1] == ")":
            if not stack or stack.pop() != token[0]:
                raise ValueError(f"unmatched closing bracket {token!r}")
        else:
            raise ValueError(f"not a bracket token: {token!r}")
    if stack or not tokens:
        raise ValueError("brackets are not balanced" if stack else "empty string")


class Dyck(Task):
    name = "dyck"
    summary = "Dyck-(k,m): close the right bracket"
    far_metric = "acc_mindep"

    def generation_params(self, task_cfg):
        return {"dyck_k": task_cfg.dyck_k, "dyck_m": task_cfg.dyck_m, "dyck_min_len": task_cfg.dyck_min_len}

    def file_params(self, task_cfg):
        return {"dyck_k": task_cfg.dyck_k, "dyck_m": task_cfg.dyck_m}

    def generate(self, rng, n_train, n_val, n_gen, params):
        return dyck.generate(rng, n_train, n_val, n_gen, params["dyck_k"], params["dyck_m"], params["dyck_min_len"])

    def original_names(self, params) -> dict[str, tuple[str, ...]]:
        stem = f"k-{params.get('dyck_k', 20)}_d-{params.get('dyck_m', 10)}"
        return {"train": (f"{stem}_train.txt",), "val": (f"{stem}_val.txt",), "gen": (f"{stem}_test.txt",)}

    def to_line(self, example: Example) -> str:
        return " ".join((*example.tokens, END))

    def from_line(self, line: str, check: bool = True) -> Example:
        tokens = line.split(" ")
        if tokens[-1] != END:
            raise ValueError("line does not end in END")
        if check:
            check_brackets(tokens[:-1])
        return Example(tuple(tokens[:-1]), 0)

    def scored_rows(self, examples: Sequence[Example], task_cfg) -> list[ScoredRow]:
        """Every string in the loss; closing brackets scored in the strings that `closing_positions` takes."""
        taken = closing_positions(examples, task_cfg.dyck_eval_prefixes)
        min_dep = task_cfg.dyck_min_dep
        return [ScoredRow(e, positions=tuple((index, e.tokens[index], distance >= min_dep)
                                             for index, distance in closing))
                for e, closing in taken] + [ScoredRow(e) for e in examples[len(taken):]]

    def candidates(self, vocab) -> list[str]:
        return closing_brackets(vocab)

    def roles(self, example: Example, task_cfg, vocab) -> SentenceRoles:
        roles = SentenceRoles.blank(len(example.tokens) + 1)
        closers = closing_brackets(vocab)
        stack: list[int] = []
        last_open = ""
        for i, token in enumerate(example.tokens):
            if not is_closing(token):
                stack.append(i)
                last_open = token
                continue
            opener = stack.pop()
            linear = f"{last_open[1:]})"
            if linear != token:
                roles.role[i], roles.linear[i], roles.hierarchical[i] = "structure-sensitive", linear, token
            if i - opener >= task_cfg.dyck_min_dep:
                roles.mark_critical(i, linear, token, closers)
        return roles

    def segments_and_tags(self, example: Example) -> tuple[list[str], list[str]]:
        """Closing brackets (deterministic given the prefix) are output; opening brackets and EOS (free choices of
        the PFSA) are input."""
        tags = ["close" if is_closing(t) else "open" for t in example.tokens] + [EOS_TAG]
        return ["output" if t == "close" else "input" for t in tags], tags


TASK = Dyck()
