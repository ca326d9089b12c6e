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
from grokking.pack import ScoredModels
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


def _attention_maps(model, ids: Tensor) -> Tensor:
    """[layers, B, H, T, T] attention probabilities of a normal eval-mode forward pass."""
    return torch.stack(model(ids, return_attn=True)[1])


@torch.no_grad()
def attention_entropy(members: ScoredModels, sequences: Sequence[Sequence[int]], pad: int, batch_size: int,
                      device: torch.device) -> list[dict[str, float | None]]:
    """Entropy metrics of every member (already in eval mode) over `[SOS] + ids` sequences."""
    if not sequences:
        return [{"probe/attn_entropy": None, "probe/attn_sparsity": None} for _ in range(members.size)]
    sums, n_queries = None, 0
    for batch in length_sorted_batches(sequences, batch_size):
        ids, lengths = pad_batch([sequences[i] for i in batch], pad, device)
        maps = members.apply(_attention_maps, ids)  # [K, layers, B, H, T, T]
        batch_sums = torch.stack([entropy_sums(member_maps, lengths) for member_maps in maps])
        sums = batch_sums if sums is None else sums + batch_sums
        n_queries += int(lengths.sum())
    return [entropy_metrics(member_sums, n_queries) for member_sums in sums.cpu()]


def _embedding_fed_attention(model, ids: Tensor) -> Tensor:
    """[layers, B, H, T, T]: every layer's attention computed on the embedding output (the released code's way)."""
    embedded = model.embedding(ids) * model.embed_scale + model.positions[: ids.shape[1]]
    # the causal mask: a query sees keys 0..q, never padding
    return torch.stack([block.attn(embedded, None, True)[1] for block in model.blocks])


@torch.no_grad()
def released_attention_sparsity(members: ScoredModels, sequences: Sequence[Sequence[int]], pad: int, batch_size: int,
                                device: torch.device) -> list[float | None]:
    """`probe/attn_sparsity_sg` of every member: the value the released code logs as attention sparsity, computed
    its way (docs/metrics.md): every layer's attention is computed on the *embedding output* (the code never fed
    layer p's output to layer p+1), the heads are averaged into one map, each valid query row's entropy is summed
    over positions and averaged over layers, and the result is averaged over sentences. Not a per-query mean and
    not negated: the paper plots its negative. Kept only to compare curves with the paper's figures; the real
    quantity is `probe/attn_entropy`."""
    if not sequences:
        return [None] * members.size
    total = torch.zeros(members.size, dtype=torch.float64, device=device)
    for batch in length_sorted_batches(sequences, batch_size):
        ids, lengths = pad_batch([sequences[i] for i in batch], pad, device)
        probs = members.apply(_embedding_fed_attention, ids)  # [K, layers, B, H, T, T]
        valid = torch.arange(ids.shape[1], device=device)[None, :] < lengths[:, None]  # [B, T] real queries
        head_mean = probs.double().mean(dim=3)  # [K, layers, B, T, T]
        rows = -torch.special.xlogy(head_mean, head_mean).sum(-1)  # [K, layers, B, T]
        total += (rows * valid).sum(dim=(2, 3)).mean(dim=1)  # summed over sentences, averaged over layers
    return (total / len(sequences)).tolist()
