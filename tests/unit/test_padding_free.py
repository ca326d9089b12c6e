"""The padding-free CUDA step (issue #21 item 8): on batches that are mostly padding (a Dyck pack's, where one long
string sets the width of all K x 8), the static-width step runs every position-wise computation on each member's
real tokens only, with the index computed on the host from the known lengths (no device sync).

The CPU runs PackStep / SingleStep with `static_shapes` switched on (their CUDA path), as tests/unit/test_compile.py
does; tests/gpu/test_cuda.py has the CUDA twin.
"""

import pytest
import torch
from conftest import mostly_padding_batches, seeded_models
from omegaconf import OmegaConf

from grokking.model import TransformerLM, up_to_last_target
from grokking.pack import PackedLM
from grokking.step import PackStep, SingleStep, padding_free_index, static_width, token_bucket

SEEDS = (42, 52, 62)
CPU = torch.device("cpu")
OFF = torch.autocast("cpu", enabled=False)


def dyck_like(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return mostly_padding_batches(seed, len(SEEDS), vocab_size=30, long=120)


def models(dropout: float = 0.0) -> list[TransformerLM]:
    return seeded_models(SEEDS, vocab_size=30, d_model=32, n_heads=4, d_ff=64, n_layers=2, dropout=dropout,
                         attn_dropout=dropout, max_len=256)


def config(compile_model: bool = False):
    return OmegaConf.create({"optim": {"betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.0},
                             "compile": compile_model, "train": {"batch_size": 8}})


def test_token_bucket_series():
    assert [token_bucket(n) for n in (1, 8, 9, 64, 65, 96, 97, 128, 129, 192, 193, 700, 800)] == \
        [8, 8, 16, 64, 96, 96, 128, 128, 192, 192, 256, 768, 1024]
    for n in range(1, 5000):
        assert n <= token_bucket(n) <= max(8, 1.5 * n + 8)  # at most a third filler above 16


def test_the_index_lists_each_members_real_tokens_in_order_then_padding_only():
    inputs, targets = static_width(dyck_like(0), pad=0, max_len=256, rows=8)
    index = padding_free_index(targets)
    keep = up_to_last_target(targets).flatten(1)
    counts = keep.sum(1)
    assert index.shape == (3, token_bucket(int(counts.max())))
    assert index.shape[1] * 2 <= targets.shape[1] * targets.shape[2]  # worth it: at least half the layout skipped
    for k in range(3):
        real, filler = index[k, : counts[k]], index[k, counts[k]:]
        assert torch.equal(real, keep[k].nonzero().squeeze(1))  # what TransformerLM.loss finds with nonzero()
        assert not keep[k][filler].any()  # filler: after its row's last real target
        assert len(set(index[k].tolist())) == index.shape[1]  # no repeats (index_put writes each once)


def test_batches_with_little_padding_keep_the_padded_layout():
    ids = torch.randint(1, 30, (3, 8, 20))
    targets = ids.roll(-1, 2)
    targets[:, :3, -4:] = -100
    assert padding_free_index(targets) is None


def test_the_vmapped_padding_free_pack_loss_equals_the_padded_one_and_each_members_own():
    pack = PackedLM(models())
    batches = dyck_like(1)
    inputs, targets = static_width(batches, pad=0, max_len=256, rows=8)
    index = padding_free_index(targets)
    assert index is not None
    free = pack.loss(inputs, targets, index)
    free.sum().backward()
    free_grads = [p.grad.clone() for p in pack.parameters()]
    pack.zero_grad()
    padded = pack.loss(inputs, targets)
    padded.sum().backward()
    assert torch.allclose(free, padded, rtol=1e-6) and torch.allclose(free, pack.losses_each(batches), rtol=1e-6)
    for got, want in zip(free_grads, (p.grad for p in pack.parameters()), strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)


def tokens_embedded(step, batches) -> list[int]:
    """The token positions of each embedding lookup in one step: a member's position-wise work (under vmap a
    lookup sees one member's tensor)."""
    seen, original = [], torch.nn.functional.embedding

    def counting(input, *args, **kwargs):
        seen.append(input.numel())
        return original(input, *args, **kwargs)

    torch.nn.functional.embedding = counting
    try:
        assert torch.isfinite(step(batches, 1e-3, 1.0, OFF, CPU)).all()
    finally:
        torch.nn.functional.embedding = original
    return seen


@pytest.mark.parametrize("kind", ["pack", "single"])
def test_the_static_width_step_embeds_only_real_tokens_and_trains_as_the_padded_step(kind):
    def make(skip_padding: bool):
        built = models()
        step = (PackStep(built, config(), CPU, pad=0) if kind == "pack"
                else SingleStep(built[1], config(), CPU, pad=0))  # the member with the long string
        step.static_shapes, step.skip_padding = True, skip_padding  # the CUDA path; compiled: padded
        return step

    def batches(n: int):
        return dyck_like(n) if kind == "pack" else dyck_like(n)[1:2]

    free, padded = make(True), make(False)
    inputs, targets = static_width(batches(2), pad=0, max_len=256, rows=8)
    tokens = padding_free_index(targets).shape[1]
    assert tokens_embedded(padded, batches(2)) == [8 * inputs.shape[-1]]
    assert tokens_embedded(free, batches(2)) == [tokens] and 2 * tokens <= 8 * inputs.shape[-1]
    trained = [torch.stack([step(batches(n), 1e-3, 1.0, OFF, CPU) for n in range(3, 7)]) for step in (free, padded)]
    assert torch.allclose(*trained, rtol=1e-4, atol=1e-6)
