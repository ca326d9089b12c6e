"""The records every consumer sees: one LM string (`Example`) and a task's three splits (`TaskData`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grokking.data.vocab import Vocab


@dataclass(frozen=True)
class Example:
    """One LM string, space-split.

    QF: (*decl, ".", "quest"|"decl", *output) with output ending in "?" or "."; TI: (*past, ".", "PAST"|"PRESENT",
    *output, "."); Dyck: bracket tokens without the trailing END. `n_input` counts the tokens up to and including
    the marker (0 for Dyck).
    """

    tokens: tuple[str, ...]
    n_input: int

    @property
    def input(self) -> tuple[str, ...]:
        return self.tokens[:self.n_input]

    @property
    def output(self) -> tuple[str, ...]:
        return self.tokens[self.n_input:]

    @property
    def marker(self) -> str | None:
        """QF/TI: the marker that ends the input ("quest", "PRESENT", ...); None for Dyck."""
        return self.tokens[self.n_input - 1] if self.n_input else None

    @property
    def words(self) -> tuple[str, ...]:
        """QF/TI: the input sentence without its "." and marker; Dyck: every bracket."""
        return self.tokens[: self.n_input - 2] if self.n_input else self.tokens


@dataclass
class TaskData:
    name: str
    train: list[Example]
    val: list[Example]
    gen: list[Example]
    vocab: Vocab
    directory: Path
    params: dict[str, Any] = field(default_factory=dict)  # generation config (Dyck export names use dyck_k/dyck_m)
