"""Seed packs: K models of one shape trained together, their weights stacked on a leading member dimension.

The one model definition (grokking.model.TransformerLM) runs once per member through `torch.func.vmap` over
`functional_call`, so every linear layer becomes one batched matmul across members. Each member keeps what a
single run has: its own initialisation (built with its seed exactly as a single run builds it), its own data order
(the caller passes one batch per member), its own dropout masks (vmap's randomness="different"), its own AdamW
state (AdamW is element-wise, so one optimizer over stacked tensors is K independent ones) and its own gradient
clipping (the norm is taken per member). `member_model` / `load_member` and the optimizer-state pair convert to and from the
single-run layout, so every member's checkpoint is an ordinary single-run checkpoint.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from grokking.model import TransformerLM, lm_loss

# CPU attention has no vmap batching rule: torch loops over members for that one op and says so on every call
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")


@dataclass(frozen=True)
class ScoredModels:
    """The models scored together: `logits(inputs [K', B, T]) -> [K, B, T, V]` (K' = 1: rows shared by all), and
    `apply(fn, *args)`: fn(model, *args) -> Tensor for every member, stacked [K, ...] (the probes' forward passes)."""

    size: int
    logits: Callable[[Tensor], Tensor]
    apply: Callable[..., Tensor]

    @classmethod
    def of(cls, model) -> ScoredModels:
        """One model (in the mode its caller set) as a pack of one."""
        return cls(1, lambda inputs: model(inputs[0])[None], lambda fn, *args: fn(model, *args)[None])


class PackedLM(nn.Module):
    """K TransformerLMs of one shape as stacked parameters [K, ...] (names as in TransformerLM)."""

    def __init__(self, members: list[TransformerLM]):
        super().__init__()
        if any(m.shape != members[0].shape for m in members):
            raise ValueError("a pack's members must share one model shape")
        self.size = len(members)
        params, buffers = stack_module_state(members)
        self.names, self.buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterDict()  # filled in TransformerLM.parameters() order (a dict would be sorted)
        for name, stacked in params.items():
            self.stacked[self._key(name)] = nn.Parameter(stacked)
        for name, stacked in buffers.items():  # fixed tables (positions), identical across members
            self.register_buffer(self._key(name), stacked[0].clone(), persistent=False)
        # the module whose forward runs per member; kept out of the module tree (its meta parameters are no weights)
        base = copy.deepcopy(members[0]).to("meta")
        if base.shape.tied_output:  # moving to meta unties; functional_call needs the tie to fill both names
            base.output.weight = base.embedding.weight
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "loss_of_base", _Call(base, TransformerLM.loss))
        self.shape = members[0].shape

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "__")

    def params(self) -> dict[str, Tensor]:
        return {n: self.stacked[self._key(n)] for n in self.names}

    def _member_loss(self, params: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        buffers = {n: getattr(self, self._key(n)) for n in self.buffer_names}
        logits = functional_call(self.base, (params, buffers), (inputs,))
        return lm_loss(logits, targets)

    def _call_buffers(self) -> dict[str, Tensor]:
        """The fixed tables by name as a `_Call` around the base model sees them (for functional_call)."""
        return {f"model.{n}": getattr(self, self._key(n)) for n in self.buffer_names}

    def _member_padding_free_loss(self, params: dict[str, Tensor], inputs: Tensor, targets: Tensor,
                                  index: Tensor) -> Tensor:
        buffers = self._call_buffers()
        params = {f"model.{n}": p for n, p in params.items()}
        return functional_call(self.loss_of_base, (params, buffers), (inputs, targets, index))

    def loss(self, inputs: Tensor, targets: Tensor, index: Tensor | None = None) -> Tensor:
        """inputs, targets: [K, batch, length] (one batch per member, right-padded to a common length).
        Returns the K training losses [K]. With `index` [K, tokens] (`grokking.step.padding_free_index`), every
        position-wise computation runs on each member's listed tokens only, as `TransformerLM.loss` does."""
        self.base.train(self.training)
        if index is None:
            return vmap(self._member_loss, randomness="different")(self.params(), inputs, targets)
        return vmap(self._member_padding_free_loss, randomness="different")(self.params(), inputs, targets, index)

    def losses_each(self, batches: list[tuple[Tensor, Tensor]]) -> Tensor:
        """The K training losses [K], member by member, each on its own unpadded batch through the padding-free
        TransformerLM.loss (the CPU path: there the arithmetic, not kernel launches, dominates, and skipping the
        padding is what saves it). Same values as `loss`; the members draw their dropout masks in turn.
        Members take their weights through one unbind per tensor, whose backward stacks the K gradients once
        (indexing p[k] per member would scatter each member's gradient into a zeroed full [K, ...] tensor)."""
        self.base.train(self.training)
        buffers = self._call_buffers()
        per_member = {f"model.{n}": p.unbind(0) for n, p in self.params().items()}
        return torch.stack([
            functional_call(self.loss_of_base, ({n: p[k] for n, p in per_member.items()}, buffers), (inputs, targets))
            for k, (inputs, targets) in enumerate(batches)])

    def logits(self, inputs: Tensor, batched: bool) -> Tensor:
        """Every member's eval-mode logits [K, B, T, V] for inputs [K', B, T] (K' = 1: the same rows for all)."""
        if inputs.shape[0] == 1:
            return self.apply(_forward, inputs[0], batched=batched)
        return self.apply(_forward, batched=batched, member_args=(inputs,))

    @torch.no_grad()
    def apply(self, fn, *args, batched: bool, member_args: tuple[Tensor, ...] = ()) -> Tensor:
        """fn(model, *args, *rows) -> Tensor for every member in eval mode, stacked [K, ...], where `rows` are
        member k's slices of `member_args` ([K, ...] each). batched: one vmapped call (CUDA); else member by
        member, each exactly as its single run's model computes it (the CPU: its attention has no vmap rule,
        and the arithmetic dominates there anyway)."""
        self.base.eval()
        call = _Call(self.base, fn)
        buffers = self._call_buffers()
        params = {f"model.{n}": p for n, p in self.params().items()}

        def member(member_params: dict[str, Tensor], *rows: Tensor) -> Tensor:
            return functional_call(call, (member_params, buffers), (*args, *rows))

        if batched:
            return vmap(member)(params, *member_args)
        return torch.stack([member({n: p[k] for n, p in params.items()}, *(a[k] for a in member_args))
                            for k in range(self.size)])

    @torch.no_grad()
    def clip_grad_norms_(self, max_norm: float) -> Tensor:
        """Clip each member's gradient to `max_norm` as clip_grad_norm_ would for its single run; returns the K
        pre-clipping norms. Fused as clip_grad_norm_ is: one _foreach_norm over every member's slice of every
        gradient (views), and one _foreach_mul_ per member, not a few kernels per parameter."""
        grads = [p.grad for p in self.stacked.values() if p.grad is not None]
        slices = [g[k] for k in range(self.size) for g in grads]  # member-major views
        norms = torch.stack(torch._foreach_norm(slices)).view(self.size, len(grads)).norm(dim=1)  # [K]
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for k in range(self.size):
            torch._foreach_mul_(slices[k * len(grads) : (k + 1) * len(grads)], coef[k])
        return norms

    @torch.no_grad()
    def member_model(self, k: int, into: TransformerLM) -> TransformerLM:
        """`into` (a TransformerLM of the pack's shape) holding a copy of member k's weights: for evaluation,
        probes and checkpoints, whose `state_dict()` is then exactly a single run's."""
        for n in self.names:
            into.get_parameter(n).copy_(self.stacked[self._key(n)][k])
        return into

    @torch.no_grad()
    def load_member(self, k: int, model: TransformerLM) -> None:
        """Member k takes the weights of `model` (a single run's model, e.g. loaded from its checkpoint)."""
        for n in self.names:
            self.stacked[self._key(n)][k].copy_(model.get_parameter(n))

    def member_optimizer_state(self, state: dict, k: int) -> dict:
        """Member k's part of an AdamW state_dict over this pack, in the layout of the single run's AdamW (same
        parameter order: TransformerLM.parameters())."""
        return {"state": {i: {key: value[k].clone() if key != "step" else value.clone() for key, value in s.items()}
                          for i, s in state["state"].items()},
                "param_groups": state["param_groups"]}

    def stacked_optimizer_state(self, states: list[dict]) -> dict:
        """The pack's AdamW state_dict from its members' single-run states (all at the same step)."""
        first = states[0]
        return {"state": {i: {key: (torch.stack([st["state"][i][key] for st in states]) if key != "step"
                                    else value.clone()) for key, value in s.items()}
                          for i, s in first["state"].items()},
                "param_groups": first["param_groups"]}


def _forward(model: TransformerLM, rows: Tensor) -> Tensor:
    return model(rows)


class _Call(nn.Module):
    """`fn(model, *args)` as a module's forward, so that functional_call can run it with a member's weights."""

    def __init__(self, model: TransformerLM, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args):
        return self.fn(self.model, *args)
