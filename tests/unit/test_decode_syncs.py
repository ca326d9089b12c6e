"""greedy_decode syncs with the host once every few tokens (not twice per token) and decodes exactly what the
per-token loop decodes."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grokking.data import Vocab
from grokking.evaluate import greedy_decode, padded
from grokking.model import ModelShape, TransformerLM
from grokking.pack import ScoredModels

CPU = torch.device("cpu")


class HostSyncs(TorchDispatchMode):
    """Counts the reads of tensor values by the host: item()/int()/bool() (aten._local_scalar_dense, which
    torch's CUDA sync debug mode flags) and tolist()."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.count = 0
        tolist = torch.Tensor.tolist

        def counted(tensor):
            self.count += 1
            return tolist(tensor)

        monkeypatch.setattr(torch.Tensor, "tolist", counted)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


def per_token_loop(members: ScoredModels, prefixes, vocab: Vocab, max_new_tokens: int) -> list[list[list[int]]]:
    """The reference: read the exact longest row and whether all have finished after every token."""
    buffer, lengths = padded([[[vocab.sos, *p] for p in rows] for rows in prefixes], vocab.pad, CPU,
                             extra=max_new_tokens)
    buffer = buffer.expand(members.size, -1, -1).clone()
    lengths = lengths.expand(members.size, -1).clone()
    starts = lengths.clone()
    finished = torch.zeros_like(lengths, dtype=torch.bool)
    member, row = torch.arange(members.size)[:, None], torch.arange(buffer.shape[1])[None, :]
    for _ in range(max_new_tokens):
        next_token = members.logits(buffer[:, :, : int(lengths.max())])[member, row, lengths - 1].argmax(dim=-1)
        active = ~finished
        buffer[member, row, lengths] = torch.where(active, next_token, buffer[member, row, lengths])
        lengths += active
        finished |= active & (next_token == vocab.eos)
        if bool(finished.all()):
            break
    return [[t[b:e][: t[b:e].index(vocab.eos)] if vocab.eos in t[b:e] else t[b:e]
             for t, b, e in zip(tokens, begin, end, strict=True)]
            for tokens, begin, end in zip(buffer.tolist(), starts.tolist(), lengths.tolist(), strict=True)]


def pack(vocab: Vocab, seeds=(0, 1, 2)) -> ScoredModels:
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(TransformerLM(ModelShape(vocab_size=vocab.size, d_model=32, n_heads=4, d_ff=64, n_layers=2,
                                               max_len=128)).eval())
    return ScoredModels(len(models), lambda inputs: torch.stack([m(inputs[0 if len(inputs) == 1 else k])
                                                            for k, m in enumerate(models)]),
                   lambda fn, *args: torch.stack([fn(m, *args) for m in models]))


@pytest.mark.parametrize("max_new_tokens", [1, 7, 8, 9, 30])
def test_greedy_decode_equals_the_per_token_loop_with_rows_finishing_at_different_times(max_new_tokens):
    vocab = Vocab(["<pad>", *(f"w{i}" for i in range(5))])  # a small vocabulary: random members emit EOS now and then
    generator = torch.Generator().manual_seed(max_new_tokens)
    prefixes = [[torch.randint(3, vocab.size, (int(n),), generator=generator).tolist()
                 for n in torch.randint(1, 9, (16,), generator=generator)]]
    members = pack(vocab)
    decoded = greedy_decode(members, prefixes, vocab, CPU, max_new_tokens=max_new_tokens)
    assert decoded == per_token_loop(members, prefixes, vocab, max_new_tokens)
    lengths = {len(row) for rows in decoded for row in rows}
    assert max_new_tokens == 1 or len(lengths) > 1  # rows did finish at different times


def test_greedy_decode_syncs_once_every_eight_tokens(monkeypatch):
    vocab = Vocab(["<pad>", *(f"w{i}" for i in range(40))])
    members = pack(vocab, seeds=(3, 4))
    prefixes = [[[5, 6, 7], [8, 9]]]
    with HostSyncs(monkeypatch) as syncs:
        decoded = greedy_decode(members, prefixes, vocab, CPU, max_new_tokens=24)
    assert syncs.count <= 24 // 8 + 3, syncs.count  # every 8 tokens, then the result's three tolist() reads
    monkeypatch.undo()
    assert decoded == per_token_loop(members, prefixes, vocab, 24)
