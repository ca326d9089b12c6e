"""The causal trick (one packed pass per start position) equals the released per-span computation."""

import numpy as np
import pytest
import torch

from grokking.evaluate import Members
from grokking.model import ModelShape, TransformerLM
from grokking.probes.sci import naive_sci_chart, packing_template, sci_charts

SOS, PAD = 20, 0


@pytest.fixture(scope="module")
def model() -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(ModelShape(vocab_size=21, d_model=32, n_heads=4, d_ff=64, n_layers=3)).eval()


@pytest.mark.parametrize("n", range(1, 12))
def test_packing_places_every_segment_once_within_a_row(n):
    template = packing_template(n)
    for g in range(n):
        cells = template.word[template.row_of[g], template.col_of[g, : n - g]]
        assert cells.tolist() == list(range(g, n))
        assert (template.segment[template.row_of[g], template.col_of[g, : n - g]] == g).all()
    assert (template.segment >= 0).sum() == n * (n + 1) // 2
    assert template.rows == (n + 2) // 2


def test_causal_trick_equals_per_span_forward_passes(model):
    rng = np.random.default_rng(0)
    sentences = [rng.integers(1, 19, size=n).tolist() for n in (1, 2, 3, 5, 5, 5, 8, 11, 13, 16)]
    fast = sci_charts(Members.of(model), sentences, SOS, PAD, batch_size=5, device=torch.device("cpu"))[0]
    for sentence, chart in zip(sentences, fast, strict=True):
        naive = naive_sci_chart(model, sentence, SOS, batch_size=256, device=torch.device("cpu"))
        assert chart.shape == (len(sentence), len(sentence))
        assert np.abs(chart - naive).max() <= 1e-5
    assert fast[7][0] == pytest.approx(np.ones(11), abs=1e-5)  # spans from the first word see their full context


def test_charts_do_not_depend_on_batching(model):
    sentences = [[3, 4, 5, 6], [7, 8], [9, 10, 11, 12, 13, 14], [1, 2, 3, 4]]
    one = sci_charts(Members.of(model), sentences, SOS, PAD, batch_size=1, device=torch.device("cpu"))[0]
    many = sci_charts(Members.of(model), sentences, SOS, PAD, batch_size=64, device=torch.device("cpu"))[0]
    for a, b in zip(one, many, strict=True):
        assert np.abs(a - b).max() <= 1e-5
