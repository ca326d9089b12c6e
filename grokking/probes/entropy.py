"""Attention-entropy probe (docs/metrics.md; docs/paper-vs-code.md #17).

Entropies (natural log) of the real attention distributions of a normal eval-mode forward pass, i.e. each layer
sees the previous layer's output (the released code fed every layer the embedding output). One value per layer
and head, averaged over every valid query position of every sentence (SOS included, pad queries excluded); a
causal query at position q spreads its mass over keys 0..q. The paper's "sparsity" is the negative mean entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from grokking.evaluate import pad_batch
from grokking.probes.batching import length_sorted_batches


def entropy_sums(maps: Sequence[Tensor], lengths: Tensor) -> Tensor:
    """Per-(layer, head) sums of row entropies over valid queries. maps: per layer [B, H, T, T] probabilities;
    lengths: [B] real lengths. Returns float64 [layers, heads]."""
    valid = torch.arange(maps[0].shape[-1], device=lengths.device)[None, :] < lengths[:, None]  # [B, T]
    sums = []
    for probs in maps:
        rows = -torch.special.xlogy(probs.double(), probs.double()).sum(-1)  # [B, H, T]; 0 log 0 = 0
        sums.append((rows * valid[:, None, :]).sum(dim=(0, 2)))
    return torch.stack(sums)


def entropy_metrics(sums: Tensor, n_queries: int) -> dict[str, float]:
    """`probe/attn_entropy` (mean over layers, heads and queries), `probe/attn_sparsity` (its negative),
    `probe/attn_entropy/layer{i}` (mean over heads) and `probe/attn_entropy/layer{i}/head{h}`."""
    per_head = (sums / n_queries).tolist()
    mean = float(sums.sum() / (n_queries * sums.numel()))
    metrics = {"probe/attn_entropy": mean, "probe/attn_sparsity": -mean}
    for layer, heads in enumerate(per_head):
        metrics[f"probe/attn_entropy/layer{layer}"] = sum(heads) / len(heads)
        for head, value in enumerate(heads):
            metrics[f"probe/attn_entropy/layer{layer}/head{head}"] = value
    return metrics


@torch.no_grad()
def attention_entropy(model, sequences: Sequence[Sequence[int]], pad: int, batch_size: int,
                      device: torch.device) -> dict[str, float | None]:
    """Entropy metrics of `model` (already in eval mode) over `[SOS] + ids` sequences."""
    if not sequences:
        return {"probe/attn_entropy": None, "probe/attn_sparsity": None}
    sums, n_queries = None, 0
    for batch in length_sorted_batches(sequences, batch_size):
        rows = [sequences[i] for i in batch]
        ids, lengths = pad_batch(rows, pad, device)
        _, maps = model(ids, return_attn=True)
        batch_sums = entropy_sums(maps, lengths)
        sums = batch_sums if sums is None else sums + batch_sums
        n_queries += int(lengths.sum())
    return entropy_metrics(sums.cpu(), n_queries)


@torch.no_grad()
def released_attention_sparsity(model, sequences: Sequence[Sequence[int]], pad: int, batch_size: int,
                                device: torch.device) -> float | None:
    """`probe/attn_sparsity_sg`: the value the released code logs as attention sparsity, computed its way
    (docs/metrics.md): every layer's attention is computed on the *embedding output* (the code never fed layer p's
    output to layer p+1), the heads are averaged into one map, each valid query row's entropy is summed over
    positions and averaged over layers, and the result is averaged over sentences. Not a per-query mean and not
    negated: the paper plots its negative. Kept only to compare curves with the paper's figures; the real
    quantity is `probe/attn_entropy`."""
    if not sequences:
        return None
    total = 0.0
    for batch in length_sorted_batches(sequences, batch_size):
        ids, lengths = pad_batch([sequences[i] for i in batch], pad, device)
        length = ids.shape[1]
        embedded = model.embedding(ids) * model.embed_scale + model.positions[:length]
        valid = torch.arange(length, device=device)[None, :] < lengths[:, None]  # [B, T] real queries
        per_sentence = torch.zeros(len(batch), dtype=torch.float64, device=device)
        for block in model.blocks:
            _, probs = block.attn(embedded, None, True)  # causal mask: a query sees keys 0..q, never padding
            head_mean = probs.double().mean(dim=1)  # [B, T, T]
            rows = -torch.special.xlogy(head_mean, head_mean).sum(-1)  # [B, T]
            per_sentence += (rows * valid).sum(-1)
        total += float(per_sentence.sum()) / len(model.blocks)
    return total / len(sequences)
