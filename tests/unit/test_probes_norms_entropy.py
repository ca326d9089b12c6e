"""Weight norms on a model with known weights; attention entropy on hand-built attention maps."""

import math

import pytest
import torch

from grokking.model import ModelShape, TransformerLM
from grokking.pack import ScoredModels
from grokking.probes import weight_norms
from grokking.probes.entropy import (
    attention_entropy,
    entropy_metrics,
    entropy_sums,
    released_attention_sparsity,
)


def constant_model(**overrides) -> TransformerLM:
    model = TransformerLM(ModelShape(**{"vocab_size": 11, "d_model": 8, "n_heads": 2, "d_ff": 16, "n_layers": 3,
                                        **overrides}))
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(2.0)
    return model


def test_weight_norms_of_constant_weights():
    model = constant_model()
    norms = weight_norms(model, 3)
    per_layer = sum(p.numel() for p in model.blocks[0].parameters())
    assert norms["probe/norm/embedding"] == pytest.approx(2 * math.sqrt(11 * 8))
    assert norms["probe/norm/output"] == pytest.approx(2 * math.sqrt(11 * 8 + 11))
    for i in range(3):
        assert norms[f"probe/norm/layer{i}"] == pytest.approx(2 * math.sqrt(per_layer))
    total = 2 * math.sqrt(sum(p.numel() for p in model.parameters()))
    assert norms["probe/weight_norm"] == pytest.approx(total)
    assert norms["probe/weight_norm_per_layer"] == pytest.approx(total / 3)


def test_tied_output_weight_is_counted_once():
    model = constant_model(tied_output=True, output_bias=False)
    norms = weight_norms(model, 3)
    assert norms["probe/norm/output"] == 0.0
    assert norms["probe/norm/embedding"] == pytest.approx(2 * math.sqrt(11 * 8))
    assert norms["probe/weight_norm"] == pytest.approx(2 * math.sqrt(sum(p.numel() for p in model.parameters())))


def uniform_causal(batch: int, heads: int, length: int) -> torch.Tensor:
    allowed = torch.ones(length, length).tril()
    return (allowed / allowed.sum(-1, keepdim=True)).expand(batch, heads, length, length)


def test_uniform_causal_rows_have_entropy_log_of_visible_keys():
    lengths = torch.tensor([4, 2])  # second sequence: queries 2 and 3 are padding
    maps = [uniform_causal(2, 2, 4), torch.eye(4).expand(2, 2, 4, 4)]  # layer 1: one-hot (entropy 0)
    sums = entropy_sums(maps, lengths)
    expected = sum(math.log(q + 1) for q in range(4)) + sum(math.log(q + 1) for q in range(2))
    assert sums.shape == (2, 2)
    assert sums[0].tolist() == pytest.approx([expected, expected])
    assert sums[1].tolist() == [0.0, 0.0]
    metrics = entropy_metrics(sums, n_queries=6)
    assert metrics["probe/attn_entropy/layer0"] == pytest.approx(expected / 6)
    assert metrics["probe/attn_entropy/layer1/head1"] == 0.0
    assert metrics["probe/attn_entropy"] == pytest.approx(expected / 12)
    assert metrics["probe/attn_sparsity"] == -metrics["probe/attn_entropy"]


def test_entropy_of_a_real_forward_pass_is_bounded_and_ignores_padding():
    torch.manual_seed(0)
    model = TransformerLM(ModelShape(vocab_size=11, d_model=16, n_heads=2, d_ff=32, n_layers=2)).eval()
    sequences = [[10, 3, 4, 5, 6], [10, 1], [10, 2, 2]]
    together = attention_entropy(ScoredModels.of(model), sequences, pad=0, batch_size=8, device=torch.device("cpu"))[0]
    one_by_one = attention_entropy(ScoredModels.of(model), sequences, pad=0, batch_size=1, device=torch.device("cpu"))[0]
    assert together == pytest.approx(one_by_one, abs=1e-6)
    assert 0 < together["probe/attn_entropy"] < math.log(5)
    assert {f"probe/attn_entropy/layer{i}/head{h}" for i in range(2) for h in range(2)} <= together.keys()


def test_released_sparsity_of_uniform_attention_is_the_sum_of_log_positions():
    """Zero query/key weights: every head attends uniformly to keys 0..q, entropy log(q + 1); summed over the
    positions of a sentence of L tokens that is log(L!), for every layer, so also its layer mean."""
    model = TransformerLM(ModelShape(vocab_size=11, d_model=8, n_heads=2, d_ff=16, n_layers=3)).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[:16].zero_()
    sequences = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]
    value = released_attention_sparsity(ScoredModels.of(model), sequences, 0, 2, torch.device("cpu"))[0]
    assert value == pytest.approx(sum(math.lgamma(len(s) + 1) for s in sequences) / 3)


def test_released_sparsity_feeds_every_layer_the_embedding_output():
    """Two copies of one layer see the same input in the released computation, so a 2-layer model with identical
    blocks gives the 1-layer model's value; the real entropy of layer 1 (fed layer 0's output) differs."""
    torch.manual_seed(0)
    one = TransformerLM(ModelShape(vocab_size=11, d_model=8, n_heads=2, d_ff=16, n_layers=1)).eval()
    two = TransformerLM(ModelShape(vocab_size=11, d_model=8, n_heads=2, d_ff=16, n_layers=2)).eval()
    two.embedding.load_state_dict(one.embedding.state_dict())
    for block in two.blocks:
        block.load_state_dict(one.blocks[0].state_dict())
    sequences = [[1, 2, 3, 4], [5, 6, 7, 8, 9, 10]]
    released = [released_attention_sparsity(ScoredModels.of(m), sequences, 0, 4, torch.device("cpu"))[0]
                for m in (one, two)]
    assert released[0] == pytest.approx(released[1])
    real = attention_entropy(ScoredModels.of(two), sequences, 0, 4, torch.device("cpu"))[0]
    assert real["probe/attn_entropy/layer0"] != pytest.approx(real["probe/attn_entropy/layer1"])
