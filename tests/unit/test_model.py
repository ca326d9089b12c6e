"""The LM matches the original architecture (docs/paper-vs-code.md) and its fused attention matches explicit attention."""

import math

import pytest
import torch

from grokking.model import ModelShape, TransformerLM, lm_loss, sinusoidal_positions


def make(**overrides) -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(ModelShape(**{"vocab_size": 71, "d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 2,
                                       **overrides}))


def test_parameter_count_matches_the_papers_arithmetic():
    model = TransformerLM(ModelShape(vocab_size=71, n_layers=6))  # QF: 69 tokens + EOS + SOS
    expected = 6 * 3_150_336 + 512 * 71 + 513 * 71  # 8 heads, FF 2048, no dead decoder: docs/paper-vs-code.md #1, #2, #19
    assert sum(p.numel() for p in model.parameters()) == expected


def test_tied_output_shares_the_embedding_and_has_no_bias():
    model = make(tied_output=True, output_bias=False)
    assert model.output.weight is model.embedding.weight
    assert model.output.bias is None


def test_sinusoidal_positions_sin_even_cos_odd():
    table = sinusoidal_positions(10, 8)
    assert table[0, 0::2].abs().max() == 0 and torch.allclose(table[0, 1::2], torch.ones(4))
    assert math.isclose(table[3, 2].item(), math.sin(3 / 10000 ** (2 / 8)), rel_tol=1e-5)


def test_causal_future_tokens_do_not_change_past_logits():
    model = make().eval()
    ids = torch.randint(0, 71, (3, 12))
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 71
    assert torch.allclose(model(ids)[:, :7], model(changed)[:, :7], atol=1e-6)
    assert not torch.allclose(model(ids)[:, 7:], model(changed)[:, 7:], atol=1e-6)


def test_right_padding_does_not_change_real_positions():
    model = make().eval()
    ids = torch.randint(1, 71, (1, 9))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    assert torch.allclose(model(ids), model(padded)[:, :9], atol=1e-6)


def test_explicit_attention_path_equals_fused_and_rows_are_causal_distributions():
    model = make().eval()
    ids = torch.randint(0, 71, (2, 10))
    logits, maps, hidden = model(ids, return_attn=True, return_hidden=True)
    assert torch.allclose(logits, model(ids), atol=1e-5)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 10, 10)
    assert torch.allclose(maps[1].sum(-1), torch.ones(2, 4, 10), atol=1e-6)
    assert maps[0].triu(diagonal=1).abs().max() == 0
    assert hidden.shape == (2, 10, 32)


def test_custom_mask_equal_to_causal_gives_the_same_logits():
    model = make().eval()
    ids = torch.randint(0, 71, (2, 10))
    mask = torch.ones(10, 10, dtype=torch.bool).tril().expand(2, 1, 10, 10)
    assert torch.allclose(model(ids, attn_mask=mask), model(ids), atol=1e-5)


def test_embeddings_are_scaled_by_sqrt_d():
    assert make().embed_scale == pytest.approx(math.sqrt(32))
    assert make(scale_embedding=False).embed_scale == 1.0


def test_too_long_sequence_is_refused():
    with pytest.raises(ValueError, match="max_len"):
        make(max_len=8)(torch.zeros(1, 9, dtype=torch.long))


def padded_batch(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (pad 0) and targets (-100 on padding), as the trainer's BatchOrder builds them."""
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    targets = torch.full_like(ids, -100)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(1, 71, (length,))
        targets[row, :length] = torch.randint(1, 71, (length,))
    return ids, targets


@pytest.mark.parametrize("lengths", [[5, 12, 9], [7, 7, 7, 7], [11], [3, 14, 14, 1, 8]])
def test_packed_loss_equals_padded_loss(lengths):
    model = make().eval()
    ids, targets = padded_batch(lengths)
    assert torch.allclose(model.loss(ids, targets), lm_loss(model(ids), targets), atol=1e-5)


@pytest.mark.parametrize("lengths", [[5, 12, 9], [11]])
def test_packed_loss_gradients_equal_padded_gradients(lengths):
    model = make(dropout=0.0, attn_dropout=0.0).train()
    ids, targets = padded_batch(lengths)
    packed = torch.autograd.grad(model.loss(ids, targets), list(model.parameters()))
    padded = torch.autograd.grad(lm_loss(model(ids), targets), list(model.parameters()))
    for (name, _), a, b in zip(model.named_parameters(), packed, padded, strict=True):
        assert torch.allclose(a, b, atol=1e-5), name
