"""Weight averages for evaluation (`eval.ema`): an exponential moving average of a run's weights per decay,

    average <- decay * average + (1 - decay) * weights      after every optimizer step, from the initial weights,

kept on the training device beside the weights they follow. Training never sees them: each evaluation scores the
raw weights as always and then each average, under its own keys (`gen/acc_ema0.999`). The dynamics are the raw
weights'; an average is a lower-noise reading of where they are (docs/metrics.md).

A seed pack's averages are stacked [K, ...] like its weights; each member's part is saved in its own checkpoint in
the single run's layout (parameter name -> tensor), so a member resumes, or is resumed alone, exactly.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

log = logging.getLogger(__name__)


def ema_suffix(decay: float) -> str:
    """The key suffix of an average's metrics: 0.999 -> `_ema0.999`."""
    return f"_ema{decay:g}"


def check_decays(decays: Sequence[float]) -> list[float]:
    """The decays as floats, each in (0, 1) and distinct (ValueError otherwise)."""
    values = [float(d) for d in decays]
    if any(not 0.0 < d < 1.0 for d in values) or len({ema_suffix(d) for d in values}) != len(values):
        raise ValueError(f"eval.ema must be distinct decays in (0, 1), got {values}")
    return values


class WeightAverages:
    """The averages of `weights` (name -> tensor, the live parameters; [K, ...] for a pack of K members), one
    set per decay."""

    def __init__(self, weights: dict[str, Tensor], decays: Sequence[float], members: int | None):
        self.weights, self.decays, self.members = weights, check_decays(decays), members
        self.averages = {d: {n: w.detach().clone() for n, w in weights.items()} for d in self.decays}

    @torch.no_grad()
    def update(self) -> None:
        """One step of every average towards the current weights (one fused kernel per decay)."""
        current = list(self.weights.values())
        for decay, averages in self.averages.items():
            torch._foreach_lerp_(list(averages.values()), current, 1.0 - decay)

    @contextlib.contextmanager
    def swapped_in(self, decay: float) -> Iterator[None]:
        """The weights hold the average of `decay` inside the block, their own values again after it (exactly)."""
        own = {n: w.detach().clone() for n, w in self.weights.items()}
        try:
            with torch.no_grad():
                for n, w in self.weights.items():
                    w.copy_(self.averages[decay][n])
            yield
        finally:
            with torch.no_grad():
                for n, w in self.weights.items():
                    w.copy_(own[n])

    def member_state(self, k: int) -> dict[str, dict[str, Tensor]]:
        """Member k's averages in the single run's layout, for its checkpoint: {"0.999": {name: tensor}}."""
        return {f"{d:g}": {n: (a[k] if self.members else a).detach().clone() for n, a in averages.items()}
                for d, averages in self.averages.items()}

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, dict[str, Tensor]] | None, where: str) -> None:
        """Member k's averages from its checkpoint; an average the checkpoint lacks (eval.ema changed) starts
        from the current weights, said on one line."""
        for d, averages in self.averages.items():
            saved = (state or {}).get(f"{d:g}")
            for n, a in averages.items():
                target = a[k] if self.members else a
                source = saved[n] if saved is not None else (self.weights[n][k] if self.members else self.weights[n])
                target.copy_(source)
            if saved is None:
                log.warning("%s holds no weight average of decay %g; it starts from the resumed weights", where, d)

    def drop(self, k: int, weights: dict[str, Tensor]) -> None:
        """Member k left the pack: keep the others' averages and follow the rebuilt pack's `weights`."""
        keep = [i for i in range(self.members) if i != k]
        self.averages = {d: {n: a[keep].clone() for n, a in averages.items()} for d, averages in self.averages.items()}
        self.weights, self.members = weights, len(keep)
