"""Span contextual invariance (SCI) charts, docs/metrics.md and docs/paper-vs-code.md #22.

For a sentence w_0..w_{n-1} (token positions 1..n after SOS), chart[i, j] is the cosine similarity between
  v_ij  = sum over k in i..j of the last-layer state h_k of a normal causal forward pass, and
  v~_ij = the same sum when every layer may attend only to SOS and the span's own positions (original positions kept).
The released code runs one masked forward pass per span (`naive_sci_chart`, kept as the reference).

Causal trick (`sci_charts`): in a causal LM the span-restricted state of position k in span (i, j) sees SOS and
tokens i..k only, so it does not depend on j. One pass per start i gives every span (i, .) by running sums, and the
start-0 pass is the normal forward pass. Each start is a *segment* [SOS, w_i..w_{n-1}] at positions [0, i+1..n];
positions before i would be wasted work, so segments are packed side by side into rows that share one SOS, with a
block-diagonal causal mask and explicit position ids. That needs about (n+1)/2 rows of n+1 tokens per sentence,
instead of n(n+1)/2 rows for the per-span method. Sentences of equal length share one packing template.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from grokking.evaluate import Members
from grokking.model import TransformerLM, causal_mask
from grokking.probes.batching import rows_per_pass


def hidden_states(model: TransformerLM, ids: Tensor, positions: Tensor, attn_mask: Tensor) -> Tensor:
    """Last-layer states of `TransformerLM.forward` (eval mode) with explicit position ids per token."""
    x = model.embed_dropout(model.embedding(ids) * model.embed_scale + model.positions[positions])
    for block in model.blocks:
        x, _ = block(x, attn_mask, False)
    return x


@dataclass(frozen=True)
class PackingTemplate:
    """How the n segments of an n-word sentence sit in `rows` rows of n+1 tokens (column 0 = shared SOS)."""

    word: np.ndarray  # [rows, n+1] word index at each slot; -1 = SOS (column 0), -2 = pad
    segment: np.ndarray  # [rows, n+1] segment (= start word) at each slot; -1 for SOS and pad
    row_of: np.ndarray  # [n] row holding segment g
    col_of: np.ndarray  # [n, n] column of offset o of segment g (column 0 where o >= n - g)
    valid: np.ndarray  # [n, n] bool, o < n - g

    @property
    def rows(self) -> int:
        return self.word.shape[0]


@cache
def packing_template(n: int) -> PackingTemplate:
    """Segment g (start word g, n - g words) packed longest-first, each row topped up with the shortest ones."""
    rows: list[list[int]] = []
    lo, hi = 0, n - 1  # segment lo is the longest left, segment hi the shortest
    while lo <= hi:
        row, used = [lo], n - lo
        lo += 1
        while lo <= hi and used + (n - hi) <= n:
            row.append(hi)
            used += n - hi
            hi -= 1
        rows.append(row)
    word = np.full((len(rows), n + 1), -2, dtype=np.int64)
    segment = np.full((len(rows), n + 1), -1, dtype=np.int64)
    word[:, 0] = -1
    row_of = np.zeros(n, dtype=np.int64)
    col_of = np.zeros((n, n), dtype=np.int64)
    for r, members in enumerate(rows):
        col = 1
        for g in members:
            length = n - g
            word[r, col : col + length] = np.arange(g, n)
            segment[r, col : col + length] = g
            row_of[g] = r
            col_of[g, :length] = np.arange(col, col + length)
            col += length
    valid = np.arange(n)[None, :] < (n - np.arange(n))[:, None]
    return PackingTemplate(word, segment, row_of, col_of, valid)


def _template_tensors(template: PackingTemplate, device: torch.device) -> tuple[Tensor, Tensor]:
    """Position ids [rows, n+1] and the boolean attention mask [rows, 1, n+1, n+1] of one sentence's rows."""
    positions = torch.as_tensor(np.where(template.word >= 0, template.word + 1, 0), device=device)
    segment = torch.as_tensor(template.segment, device=device)
    width = segment.shape[1]
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, None, :] >= 0)
    allowed = (same & causal_mask(width, device)) | (torch.arange(width, device=device) == 0)
    return positions, allowed[:, None]


@torch.no_grad()
def _charts_of_length(members: Members, sentences: Tensor, sos: int, pad: int, batch_size: int) -> np.ndarray:
    """SCI charts [K, S, n, n] of S sentences with n words each ([S, n] ids, no SOS), for every member."""
    count, n = sentences.shape
    device = sentences.device
    template = packing_template(n)
    positions, allowed = _template_tensors(template, device)
    word = torch.as_tensor(template.word, device=device)
    rows = torch.where(word >= 0, sentences[:, word.clamp(min=0)], torch.where(word == -1, sos, pad))
    rows = rows.reshape(-1, n + 1)  # [S * rows, n+1], sentence-major
    per_pass = rows_per_pass(batch_size, n + 1)
    states = []
    for start in range(0, rows.shape[0], per_pass):
        chunk = rows[start : start + per_pass]
        sentence_rows = torch.arange(start, start + chunk.shape[0], device=device) % template.rows
        states.append(members.apply(hidden_states, chunk, positions[sentence_rows], allowed[sentence_rows]))
    states = torch.cat(states, dim=1).view(members.size, count, template.rows, n + 1, -1)
    row_of = torch.as_tensor(template.row_of, device=device)[:, None]
    valid = torch.as_tensor(template.valid, device=device)[None, None, :, :, None]
    segments = states[:, :, row_of, torch.as_tensor(template.col_of, device=device)] * valid  # [K, S, start, offset, d]
    span_sums = segments.cumsum(dim=3)
    full_index = (torch.arange(n, device=device)[:, None] + torch.arange(n, device=device)[None, :]).clamp(max=n - 1)
    full_sums = (segments[:, :, 0][:, :, full_index] * valid).cumsum(dim=3)
    cosine = F.cosine_similarity(span_sums, full_sums, dim=-1).double().cpu().numpy()  # [K, S, start, offset]
    charts = np.zeros((members.size, count, n, n))
    starts, offsets = np.nonzero(template.valid)
    charts[:, :, starts, starts + offsets] = cosine[:, :, starts, offsets]
    return charts


def sci_charts(members: Members, sentences: Sequence[Sequence[int]], sos: int, pad: int, batch_size: int,
               device: torch.device) -> list[list[np.ndarray]]:
    """Every member's SCI chart of every sentence (word ids without SOS), float64 [n, n] with chart[i, j] for
    i <= j and zeros below the diagonal: [K][sentences]. The members must be in eval mode; about `batch_size`
    rows go through each forward pass."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, sentence in enumerate(sentences):
        by_length[len(sentence)].append(index)
    charts: list[list[np.ndarray | None]] = [[None] * len(sentences) for _ in range(members.size)]
    for n, indices in sorted(by_length.items()):
        if n == 0:
            for member_charts in charts:
                for index in indices:
                    member_charts[index] = np.zeros((0, 0))
            continue
        sentences_per_chunk = max(1, rows_per_pass(batch_size, n + 1) // packing_template(n).rows)
        for start in range(0, len(indices), sentences_per_chunk):
            chunk = indices[start : start + sentences_per_chunk]
            ids = torch.tensor([list(sentences[i]) for i in chunk], dtype=torch.long, device=device)
            for member_charts, computed in zip(charts, _charts_of_length(members, ids, sos, pad, batch_size),
                                               strict=True):
                for index, chart in zip(chunk, computed, strict=True):
                    member_charts[index] = chart
    return charts


@torch.no_grad()
def naive_sci_chart(model: TransformerLM, sentence: Sequence[int], sos: int, batch_size: int,
                    device: torch.device) -> np.ndarray:
    """The released code's computation: one masked forward pass per span (SOS + span keys, combined with the
    causal mask, at every layer), batched over the spans of one sentence, plus one normal pass."""
    n = len(sentence)
    ids = torch.tensor([[sos, *sentence]], dtype=torch.long, device=device)
    _, full = model(ids, return_hidden=True)
    spans = [(i, j) for i in range(n) for j in range(i, n)]
    keys = torch.arange(n + 1, device=device)
    chart = np.zeros((n, n))
    for start in range(0, len(spans), batch_size):
        batch = spans[start : start + batch_size]
        first = torch.tensor([i + 1 for i, _ in batch], device=device)[:, None]
        last = torch.tensor([j + 1 for _, j in batch], device=device)[:, None]
        in_span = (keys[None, :] >= first) & (keys[None, :] <= last)  # [B, n+1]
        key_allowed = in_span | (keys[None, :] == 0)
        mask = causal_mask(n + 1, device)[None, None] & key_allowed[:, None, None, :]
        _, restricted = model(ids.expand(len(batch), -1), attn_mask=mask, return_hidden=True)
        span_free = (restricted * in_span[:, :, None]).sum(dim=1)
        span_full = (full * in_span[:, :, None]).sum(dim=1)
        cosine = F.cosine_similarity(span_free, span_full, dim=-1).double().cpu().numpy()
        for (i, j), value in zip(batch, cosine, strict=True):
            chart[i, j] = value
    return chart
