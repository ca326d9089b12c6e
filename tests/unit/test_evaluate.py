"""The paper's accuracy metrics (docs/metrics.md) on hand-built examples, scored with an oracle LM whose every
next-token prediction is scripted, so each expected accuracy is known exactly."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from grokking.data import Example, Vocab
from grokking.evaluate import greedy_decode, score_split
from grokking.pack import ScoredModels
from grokking.tasks import get_task
from grokking.tasks.dyck import closing_positions as dyck_positions
from grokking.tasks.ti import main_verb_correct as ti_main_verb_correct
from grokking.tasks.ti import strip_fullstop

CPU = torch.device("cpu")


def qf_accuracy(members, per_member, vocab, batch_size, device) -> list[float]:
    return [m["acc"] for m in score_split(members, get_task("qf"), None, per_member, vocab, batch_size, device)]


def ti_accuracy(members, per_member, vocab, batch_size, device) -> list[float]:
    return [m["acc"] for m in score_split(members, get_task("ti"), None, per_member, vocab, batch_size, device)]


def dyck_accuracy(members, per_member, vocab, batch_size, device, limit, min_dep) -> list[tuple[float, float]]:
    task_cfg = SimpleNamespace(dyck_eval_prefixes=limit, dyck_min_dep=min_dep)
    return [(m["acc"], m["acc_mindep"])
            for m in score_split(members, get_task("dyck"), task_cfg, per_member, vocab, batch_size, device)]


class ScriptedLM(nn.Module):
    """logits[b, t] favour script[tuple(ids[b, :t+1])] (default: EOS), like a perfectly predictable LM."""

    def __init__(self, vocab: Vocab, script: dict[tuple[int, ...], int]):
        super().__init__()
        self.vocab, self.script = vocab, script

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*ids.shape, self.vocab.size)
        for b, row in enumerate(ids.tolist()):
            for t in range(len(row)):
                logits[b, t, self.script.get(tuple(row[: t + 1]), self.vocab.eos)] = 5.0
        return logits


def pack_of(*models: ScriptedLM) -> ScoredModels:
    """Scripted LMs scored together as a seed pack's members (inputs [K', B, T], K' = 1 for shared rows)."""
    return ScoredModels(len(models), lambda inputs: torch.stack([m(inputs[0 if len(inputs) == 1 else k])
                                                            for k, m in enumerate(models)]),
                   lambda fn, *args: torch.stack([fn(m, *args) for m in models]))


def vocab_of(*sentences: str) -> Vocab:
    tokens = sorted({w for s in sentences for w in s.split()})
    return Vocab(["<pad>", *tokens])


def example(text: str, marker: str) -> Example:
    words = tuple(text.split())
    return Example(words, words.index(marker) + 1 if marker else 0)


def continuation_script(vocab: Vocab, prefix: list[str], output: list[str]) -> dict[tuple[int, ...], int]:
    """Script an LM that continues `prefix` with `output` and then EOS."""
    ids = [vocab.sos, *vocab.encode(prefix)]
    script = {}
    for word in output:
        script[tuple(ids)] = vocab.id(word)
        ids.append(vocab.id(word))
    return script


def test_qf_accuracy_ranks_only_the_four_auxiliaries_after_quest():
    right = "the yak does smile . quest does the yak smile ?"
    wrong = "my newts do read . quest do my newts read ?"
    declarative = "her zebra doesn't eat . decl her zebra doesn't eat ."
    vocab = vocab_of(right, wrong, declarative, "don't doesn't")
    # the LM answers "doesn't" for the first question, and a non-auxiliary ("the") for the second: the restricted
    # argmax over auxiliaries then falls back to the highest-scoring auxiliary, "do" (index order), which is right.
    script = {tuple([vocab.sos, *vocab.encode(right.split()[:6])]): vocab.id("doesn't"),
              tuple([vocab.sos, *vocab.encode(wrong.split()[:6])]): vocab.id("the")}
    model = ScriptedLM(vocab, script)
    examples = [example(right, "quest"), example(wrong, "quest"), example(declarative, "decl")]
    assert qf_accuracy(ScoredModels.of(model), [examples], vocab, batch_size=2, device=CPU) == [pytest.approx(1 / 2)]
    # a pack: the second member answers "does" to the first question as well; then each member its own examples
    fixed = ScriptedLM(vocab, {**script, tuple([vocab.sos, *vocab.encode(right.split()[:6])]): vocab.id("does")})
    assert qf_accuracy(pack_of(model, fixed), [examples], vocab, 2, CPU) == [pytest.approx(1 / 2), 1.0]
    own = [examples[1:], examples[:2]]  # member 0: the second question only; member 1: both
    assert qf_accuracy(pack_of(model, fixed), own, vocab, 2, CPU) == [1.0, 1.0]
    assert qf_accuracy(pack_of(fixed, model), own, vocab, 2, CPU) == [1.0, pytest.approx(1 / 2)]


def test_greedy_decode_keeps_every_token_up_to_eos_for_rows_finishing_at_different_times():
    vocab = vocab_of("a b c d .")
    script = {**continuation_script(vocab, ["a"], ["b", "c", "."]), **continuation_script(vocab, ["d", "d"], ["."])}
    model = ScriptedLM(vocab, script)
    prefixes = [vocab.encode(["a"]), vocab.encode(["d", "d"])]
    (decoded,) = greedy_decode(ScoredModels.of(model), [prefixes], vocab, CPU, max_new_tokens=6)
    assert [vocab.decode(row) for row in decoded] == [["b", "c", "."], ["."]]
    # two members continue the same prefixes differently, and stop at different times
    other = ScriptedLM(vocab, {**continuation_script(vocab, ["a"], ["."]),
                               **continuation_script(vocab, ["d", "d"], ["a", "b", "c", "d", "."])})
    first, second = greedy_decode(pack_of(model, other), [prefixes], vocab, CPU, max_new_tokens=6)
    assert first == decoded
    assert [vocab.decode(row) for row in second] == [["."], ["a", "b", "c", "d", "."]]


def test_greedy_decode_stops_at_the_token_budget_without_eos():
    vocab = vocab_of("a")
    model = ScriptedLM(vocab, {(vocab.sos,) + (vocab.id("a"),) * n: vocab.id("a") for n in range(1, 10)})
    assert greedy_decode(ScoredModels.of(model), [[vocab.encode(["a"])]], vocab, CPU, max_new_tokens=4) == [
        [[vocab.id("a")] * 4]]


def test_strip_fullstop_drops_only_a_final_period():
    assert strip_fullstop(["a", "b", "."]) == ["a", "b"]
    assert strip_fullstop(["a", "."]) == ["a"] and strip_fullstop(["a"]) == ["a"] and strip_fullstop([]) == []


SUBJECT_RC = "the yak that the newts admire eats".split()  # D N R D N V V: the main verb is the second V


def test_ti_main_verb_is_the_second_verb_after_a_subject_relative_clause():
    assert ti_main_verb_correct(SUBJECT_RC, SUBJECT_RC)
    agreeing_with_the_attractor = "the yak that the newts admire eat".split()
    assert not ti_main_verb_correct(SUBJECT_RC, agreeing_with_the_attractor)
    wrong_rc_verb_only = "the yak that the newts admires eats".split()
    assert ti_main_verb_correct(SUBJECT_RC, wrong_rc_verb_only)  # only the main verb is scored


def test_ti_main_verb_is_the_first_verb_otherwise_and_pos_sequences_must_match():
    target = "the yak near the newts eats".split()
    assert ti_main_verb_correct(target, target)
    assert not ti_main_verb_correct(target, "the yak near the newts eat".split())
    assert not ti_main_verb_correct(target, "the yak eats".split())  # POS sequence differs
    assert not ti_main_verb_correct(target, "the yak near the newts <eos>".split())  # a non-word


def test_ti_accuracy_decodes_and_scores_each_line():
    good = "the yak ate . PRESENT the yak eats ."
    bad = "the newts near the yak read . PRESENT the newts near the yak read ."
    vocab = vocab_of(good, bad, "reads")
    script = {**continuation_script(vocab, good.split()[:5], "the yak eats .".split()),
              **continuation_script(vocab, bad.split()[:8], "the newts near the yak reads .".split())}
    examples = [example(good, "PRESENT"), example(bad, "PRESENT")]
    assert ti_accuracy(ScoredModels.of(ScriptedLM(vocab, script)), [examples], vocab, batch_size=2, device=CPU) == [0.5]
    # per-member rows: member 0 scores the good line only, member 1 the bad one only
    pack = pack_of(ScriptedLM(vocab, script), ScriptedLM(vocab, script))
    assert ti_accuracy(pack, [examples[:1], examples[1:]], vocab, batch_size=2, device=CPU) == [1.0, 0.0]


DYCK = ["(a (b b) a)", "(c c)", "(d (b (c (e (f (g (h (i (j j) i) h) g) f) e) c) b) d)"]  # no shared prefixes


def test_dyck_positions_in_file_order_with_dependency_lengths_until_the_limit():
    examples = [example(s, "") for s in DYCK]
    taken = dyck_positions(examples, limit=3)
    assert [len(closing) for _, closing in taken] == [2, 1]
    assert taken[0][1] == [(2, 1), (3, 3)] and taken[1][1] == [(1, 1)]
    assert len(dyck_positions(examples, limit=0)) == 3


def test_dyck_accuracy_unfiltered_and_with_the_min_dependency_filter():
    vocab = vocab_of(*DYCK)
    script = {}
    for text in DYCK:
        tokens = text.split()
        for i in range(1, len(tokens)):
            script[tuple([vocab.sos, *vocab.encode(tokens[:i])])] = vocab.id(tokens[i])
    long_string = DYCK[2].split()
    wrong_at = long_string.index("d)")  # the outermost closer: distance 17, inside the >= 10 filter
    script[tuple([vocab.sos, *vocab.encode(long_string[:wrong_at])])] = vocab.id("b)")
    examples = [example(s, "") for s in DYCK]
    [(acc, acc_far)] = dyck_accuracy(ScoredModels.of(ScriptedLM(vocab, script)), [examples], vocab, batch_size=2,
                                     device=CPU, limit=0, min_dep=10)
    assert acc == pytest.approx(11 / 12)  # 2 + 1 + 9 closers, one wrong
    far = [d for _, closing in dyck_positions(examples, 0) for _, d in closing if d >= 10]
    assert sorted(far) == [11, 13, 15, 17] and acc_far == pytest.approx(3 / 4)
    [(_, none_far)] = dyck_accuracy(ScoredModels.of(ScriptedLM(vocab, script)), [examples[:2]], vocab, 2, CPU, limit=0,
                                    min_dep=10)
    assert math.isnan(none_far)
    # a pack: a perfect member next to the one with the far mistake, on shared rows, then on rows of their own
    perfect = {**script, tuple([vocab.sos, *vocab.encode(long_string[:wrong_at])]): vocab.id("d)")}
    pack = pack_of(ScriptedLM(vocab, script), ScriptedLM(vocab, perfect))
    assert dyck_accuracy(pack, [examples], vocab, 2, CPU, limit=0, min_dep=10) == [
        (pytest.approx(11 / 12), pytest.approx(3 / 4)), (1.0, 1.0)]
    own = dyck_accuracy(pack, [examples[:2], examples[1:]], vocab, 2, CPU, limit=0, min_dep=10)
    assert own[0][0] == 1.0 and math.isnan(own[0][1]) and own[1] == (1.0, 1.0)
    # members reaching the position limit after different numbers of strings (2 strings vs 1)
    limited = dyck_accuracy(pack_of(ScriptedLM(vocab, perfect), ScriptedLM(vocab, script)), [examples, examples[2:]],
                            vocab, 2, CPU, limit=3, min_dep=10)
    assert limited[0][0] == 1.0 and math.isnan(limited[0][1])
    assert limited[1] == (pytest.approx(8 / 9), pytest.approx(3 / 4))
