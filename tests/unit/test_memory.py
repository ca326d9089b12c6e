"""grokking.memory: the parameter count is the model's own, the estimate grows with what it counts, and a run that
cannot fit in the device's free memory is refused on one line (CPU and CUDA)."""

from __future__ import annotations

import pytest
import torch

from cli.compose import compose_config
from grokking import memory
from grokking.errors import ConfigError
from grokking.memory import FLOAT_BYTES, check_fits, human, parameter_count, training_memory
from grokking.model import build_model


@pytest.mark.parametrize("overrides", [
    [],
    ["model.tied_output=true"],
    ["model.output_bias=false", "model.scale_embedding=false"],
    ["depth=3", "model.d_model=48", "model.n_heads=4", "model.d_ff=80", "model=paper_literal"],
])
def test_the_parameter_count_is_the_built_models(overrides):
    cfg = compose_config(["experiment=smoke", *overrides])
    for vocab_size in (5, 37):
        model = build_model(cfg.model, vocab_size)
        assert parameter_count(cfg.model, vocab_size) == sum(p.numel() for p in model.parameters())


def test_weights_and_optimizer_state_are_exact_and_scale_with_the_pack():
    cfg = compose_config(["experiment=smoke", "eval.ema=[0.99,0.999]"])
    params = parameter_count(cfg.model, 37)
    one = training_memory(cfg, 37, 40)
    assert one.weights == (params + cfg.model.max_len * cfg.model.d_model) * FLOAT_BYTES
    assert one.optimizer == (3 + 2) * params * FLOAT_BYTES  # gradients, two AdamW moments, two weight averages
    three = training_memory(cfg, 37, 40, members=3)
    assert three.total == 3 * one.total and not one.lower_bound


def test_the_estimate_before_the_data_is_a_lower_bound():
    cfg = compose_config(["experiment=smoke"])
    lower = training_memory(cfg)
    assert lower.lower_bound and lower.total < training_memory(cfg, 37, 40).total
    assert training_memory(cfg, 37, 40).activations < training_memory(cfg, 37, 400).activations
    bigger = compose_config(["experiment=smoke", "model.d_model=64", "model.d_ff=256", "train.batch_size=32"])
    assert training_memory(bigger, 37, 40).total > training_memory(cfg, 37, 40).total


def test_the_activation_estimate_covers_a_real_training_step():
    """The estimate is close to what autograd really keeps for the backward pass of a CPU training step."""
    cfg = compose_config(["experiment=smoke", "model.d_model=256", "model.d_ff=1024", "train.batch_size=64"])
    model = build_model(cfg.model, 40)
    ids = torch.randint(1, 40, (64, 60))
    loss = model.loss(ids, ids)
    saved = sum(t.numel() * t.element_size() for t in _saved_tensors(loss))
    estimate = training_memory(cfg, 40, 60).activations
    assert 0.5 * estimate < saved < 1.1 * estimate  # torch 2.13: 199.1 MB kept, 202.1 MB estimated


def _saved_tensors(loss: torch.Tensor) -> list[torch.Tensor]:
    """The distinct tensors autograd keeps for the backward pass of `loss`."""
    seen, out, stack = set(), [], [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        for name in dir(fn):
            if name.startswith("_saved_"):
                value = getattr(fn, name, None)
                if isinstance(value, torch.Tensor) and value.data_ptr() not in {t.data_ptr() for t in out}:
                    out.append(value)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return out


def test_a_run_that_cannot_fit_is_refused_with_the_estimate(monkeypatch):
    cfg = compose_config(["experiment=smoke", "model.d_model=1000000", "model.d_ff=1000000"])
    monkeypatch.setattr(memory, "available_memory", lambda device: 16 * 10**9)
    with pytest.raises(ConfigError) as refused:
        check_fits(cfg, torch.device("cpu"))
    message = str(refused.value)
    assert message.startswith("the run needs at least 192.0 TB of memory (48.0 TB weights, 144.0 TB gradients and "
                              "AdamW state, ") and "but this machine has 16.0 GB free" in message
    assert "\n" not in message
    small = compose_config(["experiment=smoke"])
    assert check_fits(small, torch.device("cpu"), vocab_size=37, longest=40).total < 16 * 10**9


def test_cuda_asks_the_device_for_its_free_memory(monkeypatch):
    cfg = compose_config(["experiment=smoke", "model.d_model=8192", "model.d_ff=32768"])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * 10**9, 80 * 10**9))
    assert memory.available_memory(torch.device("cuda")) == 2 * 10**9
    with pytest.raises(ConfigError, match=r"but the GPU has 2\.0 GB free"):
        check_fits(cfg, torch.device("cuda"), members=2)


def test_cpu_memory_is_known_here_and_human_sizes_read_well():
    free = memory.available_memory(torch.device("cpu"))
    assert free is None or free > 0
    assert [human(n) for n in (512, 23_600_000_000, 192 * 10**12)] == ["512 B", "23.6 GB", "192.0 TB"]
