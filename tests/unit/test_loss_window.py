"""The trainer's loss windows: every member's running (loss, grad norm) sums in one [K, 2] tensor, so booking a
step costs the same few kernels for a pack of 10 as for one run (it was two per member per step)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grokking.member import LossWindow

CPU = torch.device("cpu")


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("k", [1, 10])
def test_booking_a_step_is_one_kernel_whatever_the_pack_size(k):
    window = LossWindow([[0.0, 0.0]] * k, [0] * k, CPU)
    stats = torch.rand(k, 2)
    with CountOps() as counter:
        window.add(stats)
    assert counter.ops == ["aten.add_.Tensor"]


def test_means_per_member_and_a_member_leaving():
    window = LossWindow([[0.0, 0.0]] * 3, [0] * 3, CPU)
    window.add(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    window.add(torch.tensor([[3.0, 2.0], [5.0, 4.0], [7.0, 6.0]]))
    assert window.means() == [(2.0, 2.0), (4.0, 4.0), (6.0, 6.0)]
    window.drop(1)
    assert window.means() == [(2.0, 2.0), (6.0, 6.0)] and window.member_sums(1) == [12.0, 12.0]
    window.reset()
    assert window.means() == [(0.0, 0.0), (0.0, 0.0)]


def test_a_resumed_member_carries_its_open_window_and_a_fresh_one_starts_empty():
    resumed = SimpleNamespace(resumed_sums=[[10.0, 4.0], [30.0, 12.0]])
    fresh = SimpleNamespace(resumed_sums=None)
    log_window = LossWindow.resumed([resumed, fresh], 0, every=100, step=1205, device=CPU)
    eval_window = LossWindow.resumed([resumed, fresh], 1, every=1000, step=1205, device=CPU)
    assert log_window.steps == [5, 0] and eval_window.steps == [205, 0]
    assert log_window.member_sums(0) == [10.0, 4.0] and eval_window.member_sums(0) == [30.0, 12.0]
    assert log_window.means()[1] == (0.0, 0.0)
