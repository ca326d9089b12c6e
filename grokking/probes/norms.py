"""Weight-norm probe (docs/metrics.md; docs/paper-vs-code.md #18).

The global L2 norm over the model's trained parameters, that norm divided by the number of layers (the paper's
normalisation, absent from the released code), and one norm per block. Parameters are taken from
`named_parameters()`, which lists a tied output weight once (under the embedding). The model has no dead decoder,
so the original's constant decoder contribution is absent by construction.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

_LAYER = re.compile(r"blocks\.(\d+)\.")


def _block_of(name: str) -> str:
    match = _LAYER.match(name)
    if match:
        return f"layer{match.group(1)}"
    return name.split(".", 1)[0]  # "embedding" or "output"


def weight_norms(model: nn.Module, n_layers: int) -> dict[str, float]:
    """`probe/weight_norm`, `probe/weight_norm_per_layer` and `probe/norm/<block>` for every block
    (`embedding`, `layer{i}`, `output`). Norms are accumulated in float64."""
    squares: dict[str, float] = {"embedding": 0.0, **{f"layer{i}": 0.0 for i in range(n_layers)}, "output": 0.0}
    named = [(name, p.detach()) for name, p in getattr(model, "_orig_mod", model).named_parameters() if p.requires_grad]
    if named:  # one fused norm (float64 accumulation) and one host sync, not one per parameter
        norms = torch.stack(torch._foreach_norm([p for _, p in named], 2, dtype=torch.float64)).tolist()
        for (name, _), norm in zip(named, norms, strict=True):
            block = _block_of(name)
            squares[block] = squares.get(block, 0.0) + norm * norm
    total = math.sqrt(sum(squares.values()))
    metrics = {"probe/weight_norm": total, "probe/weight_norm_per_layer": total / n_layers}
    metrics.update({f"probe/norm/{block}": math.sqrt(value) for block, value in squares.items()})
    return metrics
