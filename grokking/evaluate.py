"""In-domain vs out-of-distribution accuracy, as the original code computes it (docs/metrics.md), plus
teacher-forced loss.

- QF: argmax over the four auxiliaries at the position after `quest` (val: quest lines only; gen: all).
- TI: greedy decoding of the output, every token kept up to EOS, "." stripped, then the POS-sequence check and
  the main verb (second V if the subject has an RC, else the first). One deliberate difference: the original's
  decoder drops the last token before EOS. That token is normally the final "." (stripped anyway: both agree),
  but an output missing its final "." loses a word there and is always wrong, while here it is scored on its
  words and can be right.
  Gen is a fresh random subset per evaluation (code: 2000 of 10k), seeded by (seed, step).
- Dyck: argmax over closing brackets at every closing position, strings in file order until
  `dyck_eval_prefixes` positions; unfiltered (what the code measured) and with the >= `dyck_min_dep`
  dependency filter (what the paper describes).

Every metric scores the K members of a seed pack together (a single run is K = 1): `Members.logits` maps inputs
[K', B, T] to logits [K, B, T, V], where K' = 1 means the same rows for every member (val, and gen unless it is
subsampled per seed) and K' = K one set of rows per member. A pack on CUDA answers with one vmapped forward pass
for all members; everything after the forward pass is batched over the member dimension too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from grokking.data import AUXILIARIES, Example, TaskData, Vocab, pos_tag

MAX_NEW_TOKENS = 50  # greedy decoding budget (code: 50)


@dataclass(frozen=True)
class Members:
    """The models scored together: `logits(inputs [K', B, T]) -> [K, B, T, V]` (K' = 1: rows shared by all), and
    `apply(fn, *args)`: fn(model, *args) -> Tensor for every member, stacked [K, ...] (the probes' forward passes)."""

    size: int
    logits: Callable[[Tensor], Tensor]
    apply: Callable[..., Tensor]

    @classmethod
    def of(cls, model) -> Members:
        """One model (in the mode its caller set) as a pack of one."""
        return cls(1, lambda inputs: model(inputs[0])[None], lambda fn, *args: fn(model, *args)[None])


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


@torch.no_grad()
def mean_loss(members: Members, per_member: Sequence[Sequence[Example]], vocab: Vocab, batch_size: int,
              device: torch.device) -> list[float]:
    total = torch.zeros(members.size, dtype=torch.float64, device=device)
    count = torch.zeros(members.size, dtype=torch.float64, device=device)
    for batch in member_chunks(per_member, batch_size, key=lambda e: len(e.tokens)):
        inputs, targets = member_lm_batch(batch, vocab, device)
        logits = members.logits(inputs).float()
        targets = targets.expand(members.size, -1, -1)
        losses = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), ignore_index=-100, reduction="none")
        total += losses.view(members.size, -1).sum(1)
        count += (targets != -100).flatten(1).sum(1)
    return (total / count.clamp(min=1)).tolist()


@torch.no_grad()
def last_position_logits(members: Members, prefixes: Sequence[Sequence[Sequence[int]]], vocab: Vocab,
                         device: torch.device) -> Tensor:
    """[K, B, V] logits after each prefix (prefixes: [K'][B] token ids, without SOS)."""
    inputs, lengths = padded([[[vocab.sos, *p] for p in rows] for rows in prefixes], vocab.pad, device)
    logits = members.logits(inputs)
    member = torch.arange(members.size, device=device)[:, None]
    row = torch.arange(inputs.shape[1], device=device)[None, :]
    return logits[member, row, lengths - 1].float()


def qf_accuracy(members: Members, per_member: Sequence[Sequence[Example]], vocab: Vocab, batch_size: int,
                device: torch.device) -> list[float]:
    """Main-auxiliary accuracy: argmax over {do, does, don't, doesn't} right after `quest`."""
    questions = [[e for e in examples if e.tokens[e.n_input - 1] == "quest"] for examples in per_member]
    counts = [len(rows) for rows in questions]  # may differ between members' own subsets
    filler = next((rows[0] for rows in questions if rows), None)
    if filler is None:
        return [0.0] * members.size
    questions = [rows + [filler] * (max(counts) - len(rows)) for rows in questions]  # scored, never counted
    aux_ids = torch.tensor([vocab.id(a) for a in AUXILIARIES], device=device)
    correct = torch.zeros(members.size, dtype=torch.long, device=device)
    for start, batch in zip(range(0, max(counts), batch_size), member_chunks(questions, batch_size), strict=True):
        logits = last_position_logits(members, [[vocab.encode(e.tokens[: e.n_input]) for e in rows]
                                                for rows in batch], vocab, device)
        predicted = aux_ids[logits[..., aux_ids].argmax(dim=-1)]  # [K, B]
        expected = torch.tensor([[vocab.id(e.tokens[e.n_input]) for e in rows] for rows in batch], device=device)
        counted = torch.tensor([[start + i < n for i in range(len(rows))] for n, rows in zip(counts, batch,
                                                                                            strict=True)],
                               device=device)
        correct += (predicted == expected).logical_and(counted).sum(dim=1)
    return [c / max(n, 1) for c, n in zip(correct.tolist(), counts * (members.size // len(counts)), strict=True)]


@torch.no_grad()
def greedy_decode(members: Members, prefixes: Sequence[Sequence[Sequence[int]]], vocab: Vocab,
                  device: torch.device, max_new_tokens: int = MAX_NEW_TOKENS) -> list[list[list[int]]]:
    """Batched greedy continuation of each prefix ([K'][B] token ids, without SOS) by every member, every token
    kept up to (not including) EOS: [K][B] token lists."""
    buffer, lengths = padded([[[vocab.sos, *p] for p in rows] for rows in prefixes], vocab.pad, device,
                             extra=max_new_tokens)
    buffer = buffer.expand(members.size, -1, -1).clone()  # members continue shared prefixes differently
    lengths = lengths.expand(members.size, -1).clone()
    starts = lengths.clone()
    finished = torch.zeros_like(lengths, dtype=torch.bool)
    member = torch.arange(members.size, device=device)[:, None]
    row = torch.arange(buffer.shape[1], device=device)[None, :]
    for _ in range(max_new_tokens):
        logits = members.logits(buffer[:, :, : int(lengths.max())])
        next_token = logits[member, row, lengths - 1].argmax(dim=-1)
        active = ~finished
        buffer[member, row, lengths] = torch.where(active, next_token, buffer[member, row, lengths])
        lengths += active
        finished |= active & (next_token == vocab.eos)
        if bool(finished.all()):
            break
    out = []
    for tokens, begin, end in zip(buffer.tolist(), starts.tolist(), lengths.tolist(), strict=True):
        rows = [t[b:e] for t, b, e in zip(tokens, begin, end, strict=True)]
        out.append([r[: r.index(vocab.eos)] if vocab.eos in r else r for r in rows])
    return out


def strip_fullstop(words: list[str]) -> list[str]:
    return words[:-1] if words and words[-1] == "." else words


def ti_main_verb_correct(target: list[str], predicted: list[str]) -> bool:
    """`main_right_tense`: identical POS sequences, then the main verb (2nd V after a subject RC, else 1st)."""
    target_pos = [pos_tag("ti", w) for w in target]
    try:
        predicted_pos = [pos_tag("ti", w) for w in predicted]
    except Exception:  # a decoded non-word (pad, SOS, a marker) cannot match the target's POS sequence
        return False
    if predicted_pos != target_pos:
        return False
    verbs = [i for i, tag in enumerate(target_pos) if tag == "V"]
    needed = 2 if len(target_pos) > 2 and target_pos[2] == "R" else 1
    if len(verbs) < needed:
        return False
    main = verbs[needed - 1]
    return predicted[main] == target[main]


def ti_accuracy(members: Members, per_member: Sequence[Sequence[Example]], vocab: Vocab, batch_size: int,
                device: torch.device) -> list[float]:
    correct = [0] * members.size
    for batch in member_chunks(per_member, batch_size):
        decoded = greedy_decode(members, [[vocab.encode(e.tokens[: e.n_input]) for e in rows] for rows in batch],
                                vocab, device)
        for k, outputs in enumerate(decoded):
            for ids, example in zip(outputs, batch[k if len(batch) > 1 else 0], strict=True):
                predicted = strip_fullstop(vocab.decode(ids))
                target = strip_fullstop(list(example.tokens[example.n_input :]))
                correct[k] += ti_main_verb_correct(target, predicted)
    return [c / max(len(per_member[0]), 1) for c in correct]


def dyck_positions(examples: Sequence[Example], limit: int) -> list[tuple[Example, list[tuple[int, int]]]]:
    """Strings in file order with their (closing index, dependency length) pairs, until >= limit positions."""
    taken, total = [], 0
    for example in examples:
        stack, closing = [], []
        for i, token in enumerate(example.tokens):
            if token.startswith("("):
                stack.append(i)
            else:
                closing.append((i, i - stack.pop()))
        taken.append((example, closing))
        total += len(closing)
        if limit and total >= limit:
            break
    return taken


@torch.no_grad()
def dyck_accuracy(members: Members, per_member: Sequence[Sequence[Example]], vocab: Vocab, batch_size: int,
                  device: torch.device, limit: int, min_dep: int) -> list[tuple[float, float]]:
    """Per member: (unfiltered accuracy, accuracy on positions whose opening bracket is >= min_dep tokens back)."""
    closer_ids = torch.tensor([vocab.id(t) for t in vocab.tokens if t.endswith(")")], device=device)
    hits, far_hits, count, far_count = (torch.zeros(members.size, dtype=torch.long, device=device) for _ in range(4))
    taken = [dyck_positions(examples, limit) for examples in per_member]  # as many strings as reach the limit
    most = max(len(items) for items in taken)
    taken = [items + [(items[0][0], [])] * (most - len(items)) for items in taken]  # fillers: no positions scored
    for batch in member_chunks(taken, batch_size, key=lambda item: len(item[0].tokens)):
        inputs, _ = member_lm_batch([[e for e, _ in rows] for rows in batch], vocab, device)
        logits = members.logits(inputs)
        for which, rows in zip(member_slices(batch), batch, strict=True):
            at = [(b, index, vocab.id(e.tokens[index]), distance >= min_dep)
                  for b, (e, closing) in enumerate(rows) for index, distance in closing]
            if not at:
                continue
            b, index, expected, far = (torch.tensor(column, device=device) for column in zip(*at, strict=True))
            predicted = closer_ids[logits[which][:, b, index][..., closer_ids].argmax(dim=-1)]  # [K or 1, P]
            right = predicted == expected
            hits[which] += right.sum(dim=1)
            far_hits[which] += (right & far).sum(dim=1)
            count[which] += len(at)
            far_count[which] += int(far.sum())
    return [(h / max(c, 1), fh / fc if fc else float("nan"))
            for h, fh, c, fc in zip(hits.tolist(), far_hits.tolist(), count.tolist(), far_count.tolist(), strict=True)]


def gen_subsets(examples: Sequence[Example], size: int, seeds: Sequence[int], step: int) -> list[Sequence[Example]]:
    """The OOD examples each member scores: all of them (one shared set), or a fresh random subset per member and
    evaluation, seeded by (seed, step) as its single run draws it."""
    if not size or size >= len(examples):
        return [examples]
    subsets = []
    for seed in seeds:
        chosen = np.random.default_rng([seed, step, 7]).choice(len(examples), size=size, replace=False)
        subsets.append([examples[i] for i in sorted(chosen)])
    return subsets


def evaluate(members: Members, data: TaskData, task_cfg, batch_size: int, device: torch.device,
             seeds: Sequence[int], step: int) -> list[dict[str, float]]:
    """All accuracy and loss metrics for the in-domain (`val/`) and OOD (`gen/`) splits, one dict per member
    (the models in eval mode: the caller's job)."""
    splits = {"val": [data.val], "gen": gen_subsets(data.gen, task_cfg.eval_gen_sample, seeds, step)}
    metrics: list[dict[str, float]] = [{} for _ in range(members.size)]
    for name, examples in splits.items():
        for k, loss in enumerate(mean_loss(members, examples, data.vocab, batch_size, device)):
            metrics[k][f"{name}/loss"] = loss
        if data.name == "qf":
            accuracies = qf_accuracy(members, examples, data.vocab, batch_size, device)
        elif data.name == "ti":
            accuracies = ti_accuracy(members, examples, data.vocab, batch_size, device)
        else:
            pairs = dyck_accuracy(members, examples, data.vocab, batch_size, device, task_cfg.dyck_eval_prefixes,
                                  task_cfg.dyck_min_dep)
            accuracies = [acc for acc, _ in pairs]
            for k, (_, far) in enumerate(pairs):
                metrics[k][f"{name}/acc_mindep"] = far
        for k, accuracy in enumerate(accuracies):
            metrics[k][f"{name}/acc"] = accuracy
    return metrics
