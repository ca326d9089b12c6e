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

from grokking.model import TransformerLM, causal_mask
from grokking.pack import ScoredModels
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
    """Position ids [rows, n+1] and segment ids [rows, n+1] of one sentence's rows."""
    positions = torch.as_tensor(np.where(template.word >= 0, template.word + 1, 0), device=device)
    return positions, torch.as_tensor(template.segment, device=device)


def _row_masks(segment: Tensor) -> Tensor:
    """The boolean attention masks [rows, 1, n+1, n+1] of rows with these segment ids [rows, n+1]: causal within
    each segment, and every slot sees the shared SOS (column 0)."""
    width = segment.shape[1]
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, None, :] >= 0)
    allowed = (same & causal_mask(width, segment.device)) | (torch.arange(width, device=segment.device) == 0)
    return allowed[:, None]


@torch.no_grad()
def _charts_of_length(members: ScoredModels, sentences: Tensor, sos: int, pad: int, batch_size: int) -> np.ndarray:
    """SCI charts [K, S, n, n] of S sentences with n words each ([S, n] ids, no SOS), for every member.

    Memory is bounded by the chunk, one forward pass of at most `rows_per_pass` rows, not by n^2: each pass's
    states are turned into chart cells at once, member by member, and never stacked for the whole sentence. A
    span's sums are differences of running sums (float64): the span-restricted sum over the running sum along its
    row, the full-context sum over the prefix sums [K, S, n+1, d] of the normal pass (template row 0, run first)."""
    count, n = sentences.shape
    device = sentences.device
    template = packing_template(n)
    positions, segments = _template_tensors(template, device)
    word = torch.as_tensor(template.word, device=device)
    rows = torch.where(word >= 0, sentences[:, word.clamp(min=0)], torch.where(word == -1, sos, pad))
    rows = rows.reshape(-1, n + 1)  # [S * rows, n+1], sentence-major
    per_pass = rows_per_pass(batch_size, n + 1)
    # every slot of a row that holds a word of a segment: the span (g, j) it ends, and the column before g's first
    slot_row, slot_col = np.nonzero(template.segment >= 0)
    slot_start = template.segment[slot_row, slot_col]
    slot_end = template.word[slot_row, slot_col]
    slot_before = template.col_of[slot_start, 0] - 1
    by_row = [np.flatnonzero(slot_row == r) for r in range(template.rows)]
    charts = np.zeros((members.size, count, n, n))

    def states_of(indices: np.ndarray) -> Tensor:
        """Last-layer states [K, len(indices), n+1, d] of these rows of `rows`, one forward pass per chunk."""
        index = torch.as_tensor(indices, device=device)
        template_rows = index % template.rows
        return members.apply(hidden_states, rows[index], positions[template_rows], _row_masks(segments[template_rows]))

    def fill(indices: np.ndarray, states: Tensor, prefix: Tensor) -> None:
        """Chart cells of the slots in these rows (their states [K, rows, n+1, d])."""
        chunk_row = np.concatenate([np.full(len(by_row[i % template.rows]), c) for c, i in enumerate(indices)])
        slots = np.concatenate([by_row[i % template.rows] for i in indices])
        sentence = indices[chunk_row] // template.rows
        chunk_row_t, sentence_t = (torch.as_tensor(a, device=device) for a in (chunk_row, sentence))
        col, before, start, end = (torch.as_tensor(a[slots], device=device)
                                   for a in (slot_col, slot_before, slot_start, slot_end))
        cosines = []
        for k in range(members.size):
            running = states[k].double().cumsum(dim=1)  # [rows, n+1, d]
            restricted = running[chunk_row_t, col] - running[chunk_row_t, before]
            full = prefix[k, sentence_t, end + 1] - prefix[k, sentence_t, start]
            cosines.append(F.cosine_similarity(restricted, full, dim=-1))
        charts[:, sentence, slot_start[slots], slot_end[slots]] = torch.stack(cosines).cpu().numpy()

    normal = np.arange(count) * template.rows  # template row 0: segment 0 alone, the normal forward pass
    states = torch.cat([states_of(normal[i : i + per_pass]) for i in range(0, count, per_pass)], dim=1)
    prefix = F.pad(states[:, :, 1:].double().cumsum(dim=2), (0, 0, 1, 0))  # [K, S, n+1, d]: sums of words < m
    fill(normal, states, prefix)
    del states
    others = np.flatnonzero(np.arange(count * template.rows) % template.rows)
    for i in range(0, len(others), per_pass):
        chunk = others[i : i + per_pass]
        fill(chunk, states_of(chunk), prefix)
    return charts


def sci_charts(members: ScoredModels, sentences: Sequence[Sequence[int]], sos: int, pad: int, batch_size: int,
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
