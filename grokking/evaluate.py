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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from grokking.data import AUXILIARIES, Example, TaskData, Vocab, pos_tag

MAX_NEW_TOKENS = 50  # greedy decoding budget (code: 50)


def pad_batch(rows: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    batch = torch.full((len(rows), int(lengths.max())), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return batch.to(device), lengths.to(device)


def lm_batch(examples: Sequence[Example], vocab: Vocab, device: torch.device) -> tuple[Tensor, Tensor]:
    """Teacher-forcing inputs [SOS] w1..wn and targets w1..wn [EOS] (ignore_index -100 on padding)."""
    ids = [vocab.encode(e.tokens) for e in examples]
    inputs, lengths = pad_batch([[vocab.sos, *row] for row in ids], vocab.pad, device)
    targets, _ = pad_batch([[*row, vocab.eos] for row in ids], -100, device)
    return inputs, targets


def by_length(items: Sequence, length) -> list:
    """Items sorted by length, so batches carry little padding (sums over items do not depend on the order)."""
    return sorted(items, key=length)


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def mean_loss(model, examples: Sequence[Example], vocab: Vocab, batch_size: int, device: torch.device) -> float:
    total, count = 0.0, 0
    for batch in chunks(by_length(examples, lambda e: len(e.tokens)), batch_size):
        inputs, targets = lm_batch(batch, vocab, device)
        logits = model(inputs)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                 ignore_index=-100, reduction="sum").item()
        count += int((targets != -100).sum())
    return total / max(count, 1)


@torch.no_grad()
def last_position_logits(model, prefixes: Sequence[Sequence[int]], vocab: Vocab, device: torch.device) -> Tensor:
    inputs, lengths = pad_batch([[vocab.sos, *p] for p in prefixes], vocab.pad, device)
    logits = model(inputs)
    return logits[torch.arange(len(prefixes), device=device), lengths - 1].float()


def qf_accuracy(model, examples: Sequence[Example], vocab: Vocab, batch_size: int, device: torch.device) -> float:
    """Main-auxiliary accuracy: argmax over {do, does, don't, doesn't} right after `quest`."""
    questions = [e for e in examples if e.tokens[e.n_input - 1] == "quest"]
    aux_ids = torch.tensor([vocab.id(a) for a in AUXILIARIES], device=device)
    correct = 0
    for batch in chunks(questions, batch_size):
        logits = last_position_logits(model, [vocab.encode(e.tokens[: e.n_input]) for e in batch], vocab, device)
        predicted = aux_ids[logits[:, aux_ids].argmax(dim=-1)].tolist()
        correct += sum(p == vocab.id(e.tokens[e.n_input]) for p, e in zip(predicted, batch, strict=True))
    return correct / max(len(questions), 1)


@torch.no_grad()
def greedy_decode(model, prefixes: Sequence[Sequence[int]], vocab: Vocab, device: torch.device,
                  max_new_tokens: int = MAX_NEW_TOKENS) -> list[list[int]]:
    """Batched greedy continuation of each prefix, every token kept up to (not including) EOS."""
    rows = [[vocab.sos, *p] for p in prefixes]
    lengths = torch.tensor([len(r) for r in rows], device=device)
    buffer = torch.full((len(rows), int(lengths.max()) + max_new_tokens), vocab.pad, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        buffer[i, : len(row)] = torch.tensor(row, device=device)
    finished = torch.zeros(len(rows), dtype=torch.bool, device=device)
    index = torch.arange(len(rows), device=device)
    for _ in range(max_new_tokens):
        logits = model(buffer[:, : int(lengths.max())])
        next_token = logits[index, lengths - 1].argmax(dim=-1)
        active = index[~finished]
        buffer[active, lengths[active]] = next_token[active]
        lengths[active] += 1
        finished[active] = next_token[active] == vocab.eos
        if bool(finished.all()):
            break
    starts = [len(r) for r in rows]
    out = []
    for i, start in enumerate(starts):
        generated = buffer[i, start:].tolist()
        out.append(generated[: generated.index(vocab.eos)] if vocab.eos in generated else generated)
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


def ti_accuracy(model, examples: Sequence[Example], vocab: Vocab, batch_size: int, device: torch.device) -> float:
    correct = 0
    for batch in chunks(examples, batch_size):
        decoded = greedy_decode(model, [vocab.encode(e.tokens[: e.n_input]) for e in batch], vocab, device)
        for ids, example in zip(decoded, batch, strict=True):
            predicted = strip_fullstop(vocab.decode(ids))
            target = strip_fullstop(list(example.tokens[example.n_input :]))
            correct += ti_main_verb_correct(target, predicted)
    return correct / max(len(examples), 1)


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
def dyck_accuracy(model, examples: Sequence[Example], vocab: Vocab, batch_size: int, device: torch.device,
                  limit: int, min_dep: int) -> tuple[float, float]:
    """(unfiltered accuracy, accuracy on positions whose opening bracket is >= min_dep tokens back)."""
    closers = [t for t in vocab.tokens if t.endswith(")")]
    closer_ids = torch.tensor([vocab.id(t) for t in closers], device=device)
    hits, far_hits, count, far_count = 0, 0, 0, 0
    for batch in chunks(by_length(dyck_positions(examples, limit), lambda item: len(item[0].tokens)), batch_size):
        inputs, _ = lm_batch([e for e, _ in batch], vocab, device)
        logits = model(inputs)
        for row, (example, closing) in enumerate(batch):
            if not closing:
                continue
            positions = torch.tensor([i for i, _ in closing], device=device)
            predicted = closer_ids[logits[row, positions][:, closer_ids].argmax(dim=-1)].tolist()
            for (index, distance), guess in zip(closing, predicted, strict=True):
                right = guess == vocab.id(example.tokens[index])
                hits += right
                count += 1
                if distance >= min_dep:
                    far_hits += right
                    far_count += 1
    return hits / max(count, 1), (far_hits / far_count if far_count else float("nan"))


def gen_subset(examples: Sequence[Example], size: int, seed: int, step: int) -> Sequence[Example]:
    if not size or size >= len(examples):
        return examples
    chosen = np.random.default_rng([seed, step, 7]).choice(len(examples), size=size, replace=False)
    return [examples[i] for i in sorted(chosen)]


def evaluate(model, data: TaskData, task_cfg, batch_size: int, device: torch.device, seed: int,
             step: int) -> dict[str, float]:
    """All accuracy and loss metrics for the in-domain (`val/`) and OOD (`gen/`) splits."""
    was_training = model.training
    model.eval()
    splits = {"val": data.val, "gen": gen_subset(data.gen, task_cfg.eval_gen_sample, seed, step)}
    metrics = {}
    try:
        for name, examples in splits.items():
            metrics[f"{name}/loss"] = mean_loss(model, examples, data.vocab, batch_size, device)
            if data.name == "qf":
                metrics[f"{name}/acc"] = qf_accuracy(model, examples, data.vocab, batch_size, device)
            elif data.name == "ti":
                metrics[f"{name}/acc"] = ti_accuracy(model, examples, data.vocab, batch_size, device)
            else:
                acc, acc_far = dyck_accuracy(model, examples, data.vocab, batch_size, device,
                                             task_cfg.dyck_eval_prefixes, task_cfg.dyck_min_dep)
                metrics[f"{name}/acc"], metrics[f"{name}/acc_mindep"] = acc, acc_far
    finally:
        model.train(was_training)
    return metrics
