"""compile=true on the CUDA static-width path, rehearsed on the CPU: packs compile with static shapes over bucketed
widths (a symbolic width broke dropout under vmap(randomness="different") at the second width), few enough to
stay within Dynamo's recompile limit, and compiled losses equal eager ones -- values, not just finiteness.

The CPU runs PackStep / SingleStep with `static_shapes` switched on (their CUDA path) and torch.compile's backend
forced: `aot_eager` (Dynamo + AOTAutograd, eager kernels: the same dropout masks as eager), a counting backend
(how many graphs were compiled), and inductor (slow; its CPU code for the vmapped attention with dropout gives NaN).
tests/gpu/test_cuda.py has the CUDA twins.
"""

import functools

import pytest
import torch
from conftest import seeded_models
from omegaconf import OmegaConf

from grokking.model import TransformerLM
from grokking.step import PackStep, SingleStep, bucket_width, static_width

SEEDS = (42, 52, 62)
WIDTHS = (10, 20, 30, 12, 45)  # four buckets: 16, 24, 32, 48
CPU = torch.device("cpu")


def config(compile_model: bool, batch_size: int | None = None):
    cfg = {"optim": {"betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.0}, "compile": compile_model}
    if batch_size:
        cfg["train"] = {"batch_size": batch_size}
    return OmegaConf.create(cfg)


def models(dropout: float = 0.1, attn_dropout: float = 0.1) -> list[TransformerLM]:
    return seeded_models(SEEDS, vocab_size=30, d_model=32, n_heads=4, d_ff=64, n_layers=2, dropout=dropout,
                         attn_dropout=attn_dropout, max_len=256)


def batches(width: int, seed: int, rows: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in SEEDS:
        ids = torch.randint(1, 30, (rows, width), generator=generator)
        targets = ids.roll(-1, 1)
        targets[: rows // 2, -3:] = -100  # shorter rows
        out.append((ids, targets))
    return out


def engine(kind: str, compile_model: bool, backend=None, monkeypatch=None, **shape):
    """PackStep or SingleStep on its static-width (CUDA) path, on the CPU, compiled with `backend`."""
    if backend is not None:
        monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    built = models(**shape)
    step = (PackStep(built, config(compile_model), CPU, pad=0) if kind == "pack"
            else SingleStep(built[0], config(compile_model), CPU, pad=0))
    if backend is not None:
        monkeypatch.undo()
    step.static_shapes = True
    return step


def train(step, widths=WIDTHS, lr: float = 1e-3) -> torch.Tensor:
    """[steps, K, 2] (loss, gradient norm) of one step per width."""
    torch.manual_seed(0)
    off = torch.autocast("cpu", enabled=False)
    return torch.stack([step(batches(w, n), lr, 1.0, off, CPU) for n, w in enumerate(widths)])


def test_bucket_width_keeps_every_task_within_the_recompile_limit():
    assert [bucket_width(w) for w in (1, 8, 9, 16, 17, 63, 64, 65, 128, 129, 818)] == \
        [8, 8, 16, 16, 24, 64, 64, 128, 128, 256, 1024]
    # batch widths seen in training (longest string + SOS): QF/TI about 12-40, Dyck 12-128 (60-77 values)
    for low, high in ((12, 40), (12, 128)):
        assert len({bucket_width(w) for w in range(low, high + 1)}) <= 8


def test_static_width_pads_to_the_bucket_and_to_full_batches_without_changing_targets():
    short = [(torch.ones(3, 21, dtype=torch.long), torch.ones(3, 21, dtype=torch.long))] * 2
    inputs, targets = static_width(short, pad=0, max_len=512, rows=8)
    assert inputs.shape == targets.shape == (2, 8, 24)
    assert (inputs[:, :3, :21] == 1).all() and (inputs[:, 3:] == 0).all() and (inputs[:, :, 21:] == 0).all()
    assert (targets[:, 3:] == -100).all() and (targets[:, :, 21:] == -100).all()
    assert static_width(short, pad=0, max_len=22)[0].shape == (2, 3, 22)  # never past the model's max_len


def test_a_padded_short_batch_has_the_loss_of_the_unpadded_one():
    step = engine("pack", False, dropout=0.0, attn_dropout=0.0)
    ids, targets = static_width(batches(13, 0, rows=3), pad=0, max_len=256)
    padded = static_width(batches(13, 0, rows=3), pad=0, max_len=256, rows=8)
    assert torch.allclose(step.pack.loss(*padded), step.pack.loss(ids, targets), rtol=1e-6)


@pytest.mark.parametrize("kind", ["pack", "single"])
def test_compiled_static_width_step_with_dropout_equals_eager_across_widths(kind, monkeypatch):
    """Dropout 0.1 everywhere, five batches over four padded widths: aot_eager runs the eager kernels, so it draws
    the same dropout masks, and the losses and gradient norms equal eager's."""
    eager = train(engine(kind, False))
    compiled = train(engine(kind, True, "aot_eager", monkeypatch))
    assert torch.isfinite(compiled).all()
    assert torch.allclose(compiled, eager, rtol=1e-5, atol=1e-6)


def test_a_pack_compiles_each_bucket_once_within_the_recompile_limit(monkeypatch):
    """Dyck-like widths (20 distinct values, 12..120) compile at most 8 graphs, each once, no fallback to eager."""
    graphs = []

    def counting(gm, example_inputs):
        graphs.append([tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)])
        return gm.forward

    torch._dynamo.reset()
    widths = tuple(range(12, 121, 6))
    stats = train(engine("pack", True, counting, monkeypatch), widths=widths)
    assert torch.isfinite(stats).all()
    assert len(graphs) == len({bucket_width(w) for w in widths}) <= 8
    torch._dynamo.reset()


def repeated_losses(step, repeats: int) -> torch.Tensor:
    """[widths, repeats, K] losses of the same weights (lr 0) on one batch per width: each a fresh dropout draw."""
    torch.manual_seed(0)
    off = torch.autocast("cpu", enabled=False)
    return torch.stack([torch.stack([step(batches(w, n), 0.0, 1.0, off, CPU)[:, 0] for _ in range(repeats)])
                        for n, w in enumerate(WIDTHS[:3])])


def assert_same_distribution(compiled: torch.Tensor, eager: torch.Tensor) -> None:
    """Mean loss per width and member within 5 standard errors (inductor draws its own dropout masks)."""
    assert torch.isfinite(compiled).all(), compiled
    error = ((compiled.var(dim=1) + eager.var(dim=1)) / compiled.shape[1]).sqrt()
    assert ((compiled.mean(dim=1) - eager.mean(dim=1)).abs() <= 5 * error + 1e-4).all(), (compiled.mean(1), eager.mean(1))


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="torch inductor's CPU code for the vmapped pack loss with attention dropout "
                                       "gives NaN losses with autograd on (eager and aot_eager are finite); the "
                                       "trainer never takes this path on the CPU (packs run losses_each there)")
def test_inductor_compiled_pack_losses_match_eager_on_the_cpu(monkeypatch):
    torch._dynamo.reset()
    eager = repeated_losses(engine("pack", False, dropout=0.0), 8)
    compiled = repeated_losses(engine("pack", True, "inductor", monkeypatch, dropout=0.0), 8)
    torch._dynamo.reset()
    assert_same_distribution(compiled, eager)


@pytest.mark.slow
def test_inductor_compiled_single_step_losses_match_eager_on_the_cpu(monkeypatch):
    torch._dynamo.reset()
    eager = repeated_losses(engine("single", False), 8)
    compiled = repeated_losses(engine("single", True, "inductor", monkeypatch), 8)
    torch._dynamo.reset()
    assert_same_distribution(compiled, eager)


def test_precision_tf32_is_a_valid_config_and_switches_cuda_matmuls_only():
    from cli.compose import compose_config
    from grokking.config import validate
    from grokking.step import matmul_precision

    cfg = compose_config(["experiment=smoke", "precision=tf32"])
    validate(cfg)  # fp32 | tf32 | bf16
    try:
        matmul_precision(cfg, CPU)
        assert torch.get_float32_matmul_precision() == "highest"  # the CPU reference keeps full float32
        matmul_precision(cfg, torch.device("cuda"))  # only sets torch's flag: no CUDA call
        assert torch.get_float32_matmul_precision() == "high"
        matmul_precision(compose_config(["experiment=smoke"]), torch.device("cuda"))
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision("highest")
