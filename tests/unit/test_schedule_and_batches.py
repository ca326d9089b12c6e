"""LR schedule (docs/paper-vs-code.md #5) and the (seed, epoch)-derived data order that makes resume exact."""

from types import SimpleNamespace

import pytest
import torch

from grokking.batches import BatchOrder
from grokking.train import learning_rate

PAPER = SimpleNamespace(lr=1e-4, warmup_steps=10_000, decay_horizon=2_000_000)


def test_first_update_has_lr_zero_and_warmup_is_linear():
    assert learning_rate(0, PAPER) == 0.0
    assert learning_rate(5_000, PAPER) == pytest.approx(5e-5)
    assert learning_rate(10_000, PAPER) == pytest.approx(1e-4)


def test_decay_reaches_the_papers_values_at_300k_and_400k_and_zero_at_2m():
    assert learning_rate(300_000, PAPER) / 1e-4 == pytest.approx(0.8534, abs=1e-3)
    assert learning_rate(400_000, PAPER) / 1e-4 == pytest.approx(0.8040, abs=1e-3)
    assert learning_rate(2_000_000, PAPER) == 0.0
    assert learning_rate(3_000_000, PAPER) == 0.0


VOCAB = SimpleNamespace(pad=0, sos=9, eos=8)


def order(seed=3, n=10, batch=4):
    return BatchOrder([[1 + i % 5] * (1 + i % 3) for i in range(n)], VOCAB, batch, seed)


def test_an_epoch_visits_every_example_once_and_epochs_differ():
    batches = order()
    assert batches.per_epoch == 3
    seen = [int(row[1]) for step in range(3) for row in batches.batch(step)[0]]
    assert len(seen) == 10
    first = [batches.batch(s)[0].tolist() for s in range(3)]
    second = [batches.batch(s)[0].tolist() for s in range(3, 6)]
    assert first != second


def test_batches_are_a_pure_function_of_seed_and_step():
    a, b = order(), order()
    for step in (7, 2, 2, 11, 0):
        assert torch.equal(a.batch(step)[0], b.batch(step)[0])
    assert not all(torch.equal(order(seed=4).batch(s)[0], a.batch(s)[0]) for s in range(3))


def test_inputs_start_with_sos_and_targets_end_with_eos():
    inputs, targets = order(n=1, batch=1).batch(0)
    assert inputs.tolist() == [[9, 1]] and targets.tolist() == [[1, 8]]
