"""In-domain vs out-of-distribution accuracy, as the original code computes it (docs/metrics.md), plus
teacher-forced loss, for any task (`grokking.tasks`): the task says which positions its accuracy scores and over
which candidate tokens (QF, Dyck), or that its outputs are decoded greedily and judged whole (TI); a task with a
second, filtered accuracy (Dyck's long dependencies) gets it from the same pass.

Every metric scores the K members of a seed pack together (a single run is K = 1): `ScoredModels.logits` maps inputs
[K', B, T] to logits [K, B, T, V], where K' = 1 means the same rows for every member (val, and gen unless it is
subsampled per seed) and K' = K one set of rows per member. A pack on CUDA answers with one vmapped forward pass
for all members; everything after the forward pass is batched over the member dimension too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from grokking.data import Example, TaskData, Vocab
from grokking.pack import ScoredModels
from grokking.tasks import ScoredRow, Task, get_task

MAX_NEW_TOKENS = 50  # greedy decoding budget (code: 50)


def padded(rows_per_member: Sequence[Sequence[Sequence[int]]], pad: int, device: torch.device,
           extra: int = 0) -> tuple[Tensor, Tensor]:
    """Rows right-padded with `pad` (plus `extra` free columns) into [K', B, T], and their lengths [K', B]; every
    member has the same number of rows."""
    width = max(len(row) for rows in rows_per_member for row in rows) + extra
    batch = torch.full((len(rows_per_member), len(rows_per_member[0]), width), pad, dtype=torch.long)
    for k, rows in enumerate(rows_per_member):
        for i, row in enumerate(rows):
            batch[k, i, : len(row)] = torch.tensor(row, dtype=torch.long)
    lengths = torch.tensor([[len(row) for row in rows] for rows in rows_per_member])
    return batch.to(device), lengths.to(device)


def pad_batch(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """One set of rows: [B, T] and lengths [B]."""
    batch, lengths = padded([rows], pad, device)
    return batch[0], lengths[0]


def member_lm_batch(examples: Sequence[Sequence[Example]], vocab: Vocab,
                    device: torch.device) -> tuple[Tensor, Tensor]:
    """Teacher-forcing inputs [SOS] w1..wn and targets w1..wn [EOS] (ignore_index -100 on padding), [K', B, T]."""
    ids = [[vocab.encode(e.tokens) for e in rows] for rows in examples]
    inputs, _ = padded([[[vocab.sos, *row] for row in rows] for rows in ids], vocab.pad, device)
    targets, _ = padded([[[*row, vocab.eos] for row in rows] for rows in ids], -100, device)
    return inputs, targets


def lm_batch(examples: Sequence[Example], vocab: Vocab, device: torch.device) -> tuple[Tensor, Tensor]:
    """One set of examples: inputs and targets [B, T]."""
    inputs, targets = member_lm_batch([examples], vocab, device)
    return inputs[0], targets[0]


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def member_chunks(per_member: Sequence[Sequence], size: int, key=None) -> Iterator[tuple[Sequence, ...]]:
    """Chunk i of every member's items (sorted by `key` first, so batches carry little padding; sums over items
    do not depend on the order). Members evaluate the same number of items."""
    lists = [sorted(items, key=key) if key else items for items in per_member]
    if len({len(items) for items in lists}) != 1:
        raise ValueError("every member of a pack evaluates the same number of examples")
    yield from zip(*(chunks(items, size) for items in lists), strict=True)


def member_slices(per_member: Sequence) -> list[slice]:
    """The members each row set belongs to: all of them for shared rows (K' = 1), else member k alone."""
    return [slice(None)] if len(per_member) == 1 else [slice(k, k + 1) for k in range(len(per_member))]


@dataclass(frozen=True)
class TeacherForced:
    """Per-member sums of one teacher-forced pass: loss over `tokens`, and hits among the scored positions."""

    loss_sum: list[float]
    tokens: list[int]
    hits: list[int]
    positions: list[int]
    far_hits: list[int]
    far_positions: list[int]

    @property
    def mean_loss(self) -> list[float]:
        return [s / max(n, 1) for s, n in zip(self.loss_sum, self.tokens, strict=True)]

    @property
    def accuracy(self) -> list[float]:
        return [h / max(n, 1) for h, n in zip(self.hits, self.positions, strict=True)]

    @property
    def far_accuracy(self) -> list[float]:
        return [h / n if n else float("nan") for h, n in zip(self.far_hits, self.far_positions, strict=True)]


@dataclass(frozen=True)
class PreparedBatch:
    """A batch ready for the forward pass: inputs/targets [K', B, T] (loss targets -100 where not counted), and
    per row set (member_slices) the scored positions as tensors (row, position, expected id, far)."""

    inputs: Tensor
    targets: Tensor
    scored: tuple[tuple[Tensor, Tensor, Tensor, Tensor] | None, ...]


def prepare_batches(rows_per_member: Sequence[Sequence[ScoredRow]], vocab: Vocab, batch_size: int,
                    device: torch.device) -> list[PreparedBatch]:
    """Encode, sort by length (little padding; sums do not depend on the order), pad and move to the device, once:
    the trainer keeps the result of a fixed split for the whole run. Members get the same number of rows (rows
    that are neither in the loss nor scored fill a shorter list)."""
    most = max(len(rows) for rows in rows_per_member)
    if not most:
        return []
    filler = next(rows[0] for rows in rows_per_member if rows)
    rows_per_member = [list(rows) + [ScoredRow(filler.example, in_loss=False)] * (most - len(rows))
                       for rows in rows_per_member]
    prepared = []
    for batch in member_chunks(rows_per_member, batch_size, key=lambda row: len(row.example.tokens)):
        ids = [[vocab.encode(row.example.tokens) for row in rows] for rows in batch]
        inputs, _ = padded([[[vocab.sos, *row] for row in rows] for rows in ids], vocab.pad, device)
        targets, _ = padded([[[*row, vocab.eos] if scored.in_loss else [-100] * (len(row) + 1)
                              for row, scored in zip(rows, rows_scored, strict=True)]
                             for rows, rows_scored in zip(ids, batch, strict=True)], -100, device)
        scored = []
        for rows in batch:
            at = [(b, position, vocab.id(expected), far)
                  for b, row in enumerate(rows) for position, expected, far in row.positions]
            scored.append(tuple(torch.tensor(column, device=device) for column in zip(*at, strict=True))
                          if at else None)
        prepared.append(PreparedBatch(inputs, targets, tuple(scored)))
    return prepared


@torch.no_grad()
def teacher_forced(members: ScoredModels, batches: Sequence[PreparedBatch], candidates: Tensor | None) -> TeacherForced:
    """One forward pass per batch gives both the mean next-token loss and the accuracy at the scored positions
    (argmax over `candidates`): a causal LM's logits at a position depend only on the tokens up to it, so the
    logits of the full sentence hold those of every prefix."""
    size = members.size
    device = batches[0].inputs.device if batches else torch.device("cpu")
    loss_sum = torch.zeros(size, dtype=torch.float64, device=device)
    sums = {name: torch.zeros(size, dtype=torch.long, device=device)
            for name in ("tokens", "hits", "positions", "far_hits", "far_positions")}
    for batch in batches:
        logits = members.logits(batch.inputs).float()
        targets = batch.targets.expand(size, -1, -1)
        losses = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), ignore_index=-100, reduction="none")
        loss_sum += losses.view(size, -1).sum(1)
        sums["tokens"] += (targets != -100).flatten(1).sum(1)
        for which, scored in zip(member_slices(batch.scored), batch.scored, strict=True):
            if scored is None:
                continue
            row, position, expected, far = scored
            predicted = candidates[logits[which][:, row, position][..., candidates].argmax(dim=-1)]  # [K or 1, P]
            right = predicted == expected
            sums["hits"][which] += right.sum(dim=1)
            sums["far_hits"][which] += (right & far).sum(dim=1)
            sums["positions"][which] += len(row)
            sums["far_positions"][which] += far.sum()
    return TeacherForced(loss_sum.tolist(), **{name: total.tolist() for name, total in sums.items()})


def candidate_ids(task: Task, vocab: Vocab, device: torch.device) -> Tensor | None:
    """The ids of the tokens a task's teacher-forced accuracy ranks (None: it decodes instead)."""
    candidates = task.candidates(vocab)
    return None if candidates is None else torch.tensor([vocab.id(t) for t in candidates], device=device)


@torch.no_grad()
def greedy_decode(members: ScoredModels, prefixes: Sequence[Sequence[Sequence[int]]], vocab: Vocab,
                  device: torch.device, max_new_tokens: int = MAX_NEW_TOKENS,
                  sync_every: int = 8) -> list[list[list[int]]]:
    """Batched greedy continuation of each prefix ([K'][B] token ids, without SOS) by every member, every token
    kept up to (not including) EOS: [K][B] token lists.

    One host sync every `sync_every` tokens (has every row finished? how long is the longest?), not one per
    token: in between, each pass reads the widest the rows can have grown to (the longest known plus one column
    per token since), and a finished row stays as it is, so the tokens are the per-token loop's (a row's logits
    do not depend on columns right of it under the causal mask); at most `sync_every` - 1 passes run after
    the last row finished."""
    buffer, lengths = padded([[[vocab.sos, *p] for p in rows] for rows in prefixes], vocab.pad, device,
                             extra=max_new_tokens)
    buffer = buffer.expand(members.size, -1, -1).clone()  # members continue shared prefixes differently
    lengths = lengths.expand(members.size, -1).clone()
    starts = lengths.clone()
    finished = torch.zeros_like(lengths, dtype=torch.bool)
    member = torch.arange(members.size, device=device)[:, None]
    row = torch.arange(buffer.shape[1], device=device)[None, :]
    longest = buffer.shape[2] - max_new_tokens  # the longest prompt (with SOS), known without a sync
    for step in range(1, max_new_tokens + 1):
        logits = members.logits(buffer[:, :, :longest])
        next_token = logits[member, row, lengths - 1].argmax(dim=-1)
        active = ~finished
        buffer[member, row, lengths] = torch.where(active, next_token, buffer[member, row, lengths])
        lengths += active
        finished |= active & (next_token == vocab.eos)
        longest += 1
        if step % sync_every == 0 and step < max_new_tokens:
            longest, done = torch.stack([lengths.max(), finished.all().long()]).tolist()  # the one sync
            if done:
                break
    out = []
    for tokens, begin, end in zip(buffer.tolist(), starts.tolist(), lengths.tolist(), strict=True):
        rows = [t[b:e] for t, b, e in zip(tokens, begin, end, strict=True)]
        out.append([r[: r.index(vocab.eos)] if vocab.eos in r else r for r in rows])
    return out


def decoded_accuracy(members: ScoredModels, task: Task, per_member: Sequence[Sequence[Example]], vocab: Vocab,
                     batch_size: int, device: torch.device) -> list[float]:
    """Greedy continuation of each example's input by every member, judged by `task.decoded_correct`."""
    correct = [0] * members.size
    for batch in member_chunks(per_member, batch_size):
        decoded = greedy_decode(members, [[vocab.encode(e.input) for e in rows] for rows in batch], vocab, device)
        for k, outputs in enumerate(decoded):
            for ids, example in zip(outputs, batch[k if len(batch) > 1 else 0], strict=True):
                correct[k] += task.decoded_correct(example.output, vocab.decode(ids))
    return [c / max(len(per_member[0]), 1) for c in correct]


def split_metrics(members: ScoredModels, task: Task, batches: Sequence[PreparedBatch],
                  per_member: Sequence[Sequence[Example]], vocab: Vocab, batch_size: int, device: torch.device,
                  candidates: Tensor | None) -> list[dict[str, float]]:
    """Per member: `loss`, the task's second accuracy if it has one, and `acc` on one split, from the split's
    prepared rows (`batches`, from `task.scored_rows`) and, for a decoding task, its examples."""
    scores = teacher_forced(members, batches, candidates)
    if task.decodes:
        accuracies = decoded_accuracy(members, task, per_member, vocab, batch_size, device)
    else:
        accuracies = scores.accuracy
    metrics = []
    for k in range(members.size):
        metrics.append({"loss": scores.mean_loss[k]})
        if task.far_metric:
            metrics[k][task.far_metric] = scores.far_accuracy[k]
        metrics[k]["acc"] = accuracies[k]
    return metrics


def score_split(members: ScoredModels, task: Task, task_cfg, per_member: Sequence[Sequence[Example]], vocab: Vocab,
                batch_size: int, device: torch.device) -> list[dict[str, float]]:
    """`split_metrics` of examples prepared on the spot (the trainer's Evaluator prepares a fixed split once)."""
    batches = prepare_batches([task.scored_rows(examples, task_cfg) for examples in per_member], vocab, batch_size,
                              device)
    return split_metrics(members, task, batches, per_member, vocab, batch_size, device,
                         candidate_ids(task, vocab, device))


def gen_subsets(examples: Sequence[Example], size: int, seeds: Sequence[int], step: int,
                fixed: bool = False) -> list[Sequence[Example]]:
    """The OOD examples each member scores: all of them (one shared set); one subset drawn once, the same for every
    member, run and evaluation (`fixed`); or a fresh random subset per member and evaluation, seeded by
    (seed, step) as its single run draws it (the original TI code's)."""
    if not size or size >= len(examples):
        return [examples]
    if fixed:
        chosen = np.random.default_rng([size, 7]).choice(len(examples), size=size, replace=False)
        return [[examples[i] for i in sorted(chosen)]]
    subsets = []
    for seed in seeds:
        chosen = np.random.default_rng([seed, step, 7]).choice(len(examples), size=size, replace=False)
        subsets.append([examples[i] for i in sorted(chosen)])
    return subsets


class Evaluator:
    """All accuracy and loss metrics of the in-domain (`val/`) and OOD (`gen/`) splits, one dict per member.

    Loss and the ranked accuracies come from one teacher-forced pass; a decoding task adds greedy decoding. Splits
    every member shares every time (val; gen unless it is redrawn per evaluation) are encoded, padded and moved to
    the device once, at the first evaluation, and kept for the run."""

    def __init__(self, data: TaskData, task_cfg, batch_size: int, device: torch.device):
        self.data, self.task_cfg, self.batch_size, self.device = data, task_cfg, batch_size, device
        self.task = get_task(data.name)
        self.candidates = candidate_ids(self.task, data.vocab, device)
        self.prepared: dict[str, list[PreparedBatch]] = {}

    def batches(self, name: str, per_member: Sequence[Sequence[Example]]) -> list[PreparedBatch]:
        shared = len(per_member) == 1
        if shared and name in self.prepared:
            return self.prepared[name]
        batches = prepare_batches([self.task.scored_rows(examples, self.task_cfg) for examples in per_member],
                                  self.data.vocab, self.batch_size, self.device)
        if shared:
            self.prepared[name] = batches
        return batches

    def splits(self, seeds: Sequence[int], step: int) -> dict[str, list[Sequence[Example]]]:
        return {"val": [self.data.val],
                "gen": gen_subsets(self.data.gen, self.task_cfg.eval_gen_sample, seeds, step,
                                   fixed=self.task_cfg.eval_gen_fixed)}

    def __call__(self, members: ScoredModels, seeds: Sequence[int], step: int, suffix: str = "") -> list[dict[str, float]]:
        """The metrics of `members` (in eval mode: the caller's job) at `step`, keys ending in `suffix`."""
        metrics: list[dict[str, float]] = [{} for _ in range(members.size)]
        for name, examples in self.splits(seeds, step).items():
            scores = split_metrics(members, self.task, self.batches(name, examples), examples,
                                   self.data.vocab, self.batch_size, self.device, self.candidates)
            for k, member_scores in enumerate(scores):
                metrics[k].update({f"{name}/{key}{suffix}": value for key, value in member_scores.items()})
        return metrics


def evaluate(members: ScoredModels, data: TaskData, task_cfg, batch_size: int, device: torch.device,
             seeds: Sequence[int], step: int) -> list[dict[str, float]]:
    """One evaluation of `members` (see Evaluator; the trainer keeps one Evaluator for the whole run)."""
    return Evaluator(data, task_cfg, batch_size, device)(members, seeds, step)
