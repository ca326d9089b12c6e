"""Per-member gradient clipping and the weight-norm probe run as fused foreach kernels with at most one host
sync, however many parameters the model has (depth 6: ~75 tensors, which used to cost ~150 launches per step)."""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grokking.model import ModelShape, TransformerLM
from grokking.pack import PackedLM
from grokking.probes import weight_norms


class Ops(TorchDispatchMode):
    """The torch ops dispatched inside the mode, by name."""

    def __init__(self):
        super().__init__()
        self.names: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def model(seed: int, depth: int) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(ModelShape(vocab_size=30, d_model=32, n_heads=4, d_ff=64, n_layers=depth))


@pytest.mark.parametrize("depth", [2, 6])
def test_pack_clipping_launches_a_fixed_number_of_kernels_whatever_the_depth(depth):
    members = [model(seed, depth) for seed in (1, 2, 3)]
    pack = PackedLM(members)
    ids = torch.randint(1, 30, (3, 4, 9))
    pack.loss(ids, ids.roll(-1, 2)).sum().backward()
    expected = []
    for k, member in enumerate(members):  # each member alone, as its single run clips
        for p, stacked in zip(member.parameters(), pack.stacked.values(), strict=True):
            p.grad = stacked.grad[k].clone()
        expected.append(float(torch.nn.utils.clip_grad_norm_(member.parameters(), 0.5)))
    with Ops() as ops:
        norms = pack.clip_grad_norms_(0.5)
    assert norms.tolist() == pytest.approx(expected, rel=1e-5)
    for k, member in enumerate(members):
        for p, stacked in zip(member.parameters(), pack.stacked.values(), strict=True):
            assert torch.allclose(stacked.grad[k], p.grad, rtol=1e-5, atol=1e-8)
    launches = sum(n for name, n in ops.names.items() if name not in ("select", "view", "unbind"))
    assert launches <= 2 * pack.size + 8, ops.names  # not per parameter: depth 6 has ~75 gradient tensors


def test_weight_norms_read_the_device_once():
    reads = []

    class Reads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            reads.append(func is torch.ops.aten._local_scalar_dense.default)
            return func(*args, **(kwargs or {}))

    built = model(0, 6)
    expected = sum(float(p.detach().double().pow(2).sum()) for p in built.parameters()) ** 0.5
    tolist = torch.Tensor.tolist
    calls = []

    def counted(tensor):
        calls.append(1)
        return tolist(tensor)

    torch.Tensor.tolist = counted
    try:
        with Reads():
            norms = weight_norms(built, 6)
    finally:
        torch.Tensor.tolist = tolist
    assert norms["probe/weight_norm"] == pytest.approx(expected, rel=1e-12)
    assert sum(reads) + len(calls) == 1
