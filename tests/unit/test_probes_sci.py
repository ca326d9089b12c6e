"""The causal trick (one packed pass per start position) equals the released per-span computation, in memory
bounded by one forward pass."""

import weakref

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from grokking.model import ModelShape, TransformerLM
from grokking.pack import ScoredModels
from grokking.probes.batching import rows_per_pass
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
    fast = sci_charts(ScoredModels.of(model), sentences, SOS, PAD, batch_size=5, device=torch.device("cpu"))[0]
    for sentence, chart in zip(sentences, fast, strict=True):
        naive = naive_sci_chart(model, sentence, SOS, batch_size=256, device=torch.device("cpu"))
        assert chart.shape == (len(sentence), len(sentence))
        assert np.abs(chart - naive).max() <= 1e-5
    assert fast[7][0] == pytest.approx(np.ones(11), abs=1e-5)  # spans from the first word see their full context


def test_charts_do_not_depend_on_batching(model):
    sentences = [[3, 4, 5, 6], [7, 8], [9, 10, 11, 12, 13, 14], [1, 2, 3, 4]]
    one = sci_charts(ScoredModels.of(model), sentences, SOS, PAD, batch_size=1, device=torch.device("cpu"))[0]
    many = sci_charts(ScoredModels.of(model), sentences, SOS, PAD, batch_size=64, device=torch.device("cpu"))[0]
    for a, b in zip(one, many, strict=True):
        assert np.abs(a - b).max() <= 1e-5


class PeakTensorBytes(TorchDispatchMode):
    """The peak of the bytes held by live tensors that torch ops create inside the mode (views count with their
    storage). The CPU allocator keeps no statistics and tracemalloc does not see torch's allocations."""

    def __init__(self):
        super().__init__()
        self.refs: dict[int, list[int]] = {}  # storage address -> [bytes, live tensors on it]
        self.live = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr():
                key = tensor.untyped_storage().data_ptr()
                if key not in self.refs:
                    self.refs[key] = [tensor.untyped_storage().nbytes(), 0]
                    self.live += self.refs[key][0]
                    self.peak = max(self.peak, self.live)
                self.refs[key][1] += 1
                weakref.finalize(tensor, self._release, key)
        return out

    def _release(self, key: int) -> None:
        entry = self.refs[key]
        entry[1] -= 1
        if not entry[1]:
            self.live -= entry[0]
            del self.refs[key]


@pytest.mark.parametrize("n, batch_size", [(100, 4), (160, 4), (160, 16)])
def test_probe_memory_is_bounded_by_the_chunk_not_by_n_squared(n, batch_size):
    """A pack of two members, one sentence of n words: the peak is about one forward pass of `rows_per_pass`
    rows (hidden states and an attention map per member), far below one [K, S, n, n, d] tensor (the old gathers
    held several: a Dyck pack's 818-token string needs ~100 GB)."""
    d, heads = 64, 2
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(TransformerLM(ModelShape(vocab_size=21, d_model=d, n_heads=heads, d_ff=64, n_layers=1)).eval())
    members = ScoredModels(2, None, lambda fn, *args: torch.stack([fn(m, *args) for m in models]))
    sentence = np.random.default_rng(n).integers(1, 19, size=n).tolist()
    with PeakTensorBytes() as meter:
        charts = sci_charts(members, [sentence], SOS, PAD, batch_size=batch_size, device=torch.device("cpu"))
    rows = rows_per_pass(batch_size, n + 1)
    chunk = len(models) * rows * (n + 1) * (d + heads * (n + 1)) * 4
    gathered = len(models) * n * n * d * 4
    assert meter.peak <= 3 * chunk, (meter.peak, chunk)
    assert meter.peak < gathered, (meter.peak, gathered)
    naive = naive_sci_chart(models[1], sentence, SOS, batch_size=4096, device=torch.device("cpu"))
    assert np.abs(charts[1][0] - naive).max() <= 1e-4
