"""Generated splits: every split rule line by line, determinism, and McCoy's in-domain statistics (docs/data.md)."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import pytest

from grokking.data import Example, present, question, read_original
from grokking.data.generate import generate, generation_config
from grokking.data.lexicon import AUXILIARIES, pos_tags
from grokking.data.qf import is_negated_auxiliary, is_plural_auxiliary, structure
from grokking.data.trees import parse


def make(name: str, n_train: int, n_val: int, n_gen: int, seed: int = 1234, **dyck):
    task = SimpleNamespace(name=name, n_train=n_train, n_val=n_val, n_gen=n_gen, dyck_k=dyck.get("k", 20),
                           dyck_m=dyck.get("m", 10), dyck_min_len=dyck.get("min_len", 4))
    return generate(generation_config(task), seed)


@pytest.fixture(scope="module")
def qf_splits():
    return make("qf", 4000, 500, 500)


@pytest.fixture(scope="module")
def ti_splits():
    return make("ti", 4000, 500, 500)


@pytest.fixture(scope="module")
def dyck_splits():
    return make("dyck", 4000, 500, 500)


def sentence(example: Example) -> list[str]:
    assert example.input[-2] == "."
    return list(example.input[:-2])


def assert_disjoint_inputs(train, val, gen):
    train_inputs = {e.input for e in train}
    assert len(train_inputs) == len(train)
    for split in (val, gen):
        inputs = [e.input for e in split]
        assert len(set(inputs)) == len(inputs)
        assert not train_inputs & set(inputs)
    assert not {e.input for e in val} & {e.input for e in gen}


def test_qf_splits(qf_splits):
    train, val, gen = qf_splits
    assert (len(train), len(val), len(gen)) == (4000, 500, 500)
    for example in train + val:
        words, marker = sentence(example), example.input[-1]
        if marker == "decl":
            assert list(example.output) == [*words, "."]
        else:
            assert marker == "quest" and pos_tags("qf", words)[2] != "R"
            assert question(words, "linear") == question(words, "hierarchical")
            assert list(example.output) == [*question(words, "hierarchical"), "?"]
    for example in gen:
        words = sentence(example)
        assert example.input[-1] == "quest" and pos_tags("qf", words)[2] == "R"
        auxiliaries = [w for w in words if w in AUXILIARIES]
        assert len(auxiliaries) == 2 and auxiliaries[0] != auxiliaries[1]
        assert is_plural_auxiliary(auxiliaries[0]) == is_plural_auxiliary(auxiliaries[1])
        assert is_negated_auxiliary(auxiliaries[0]) != is_negated_auxiliary(auxiliaries[1])
        assert question(words, "linear")[0] != question(words, "hierarchical")[0]
        assert list(example.output) == [*question(words, "hierarchical"), "?"]
    assert_disjoint_inputs(train, val, gen)


def test_ti_splits(ti_splits):
    train, val, gen = ti_splits
    assert (len(train), len(val), len(gen)) == (4000, 500, 500)
    for example in train + val:
        words, marker = sentence(example), example.input[-1]
        if marker == "PAST":
            assert list(example.output) == [*words, "."]
        else:
            assert marker == "PRESENT"
            assert present(words, "linear") == present(words, "hierarchical")
            assert list(example.output) == [*present(words, "hierarchical"), "."]
    for example in gen:
        words = sentence(example)
        assert example.input[-1] == "PRESENT"
        main = parse("ti", words).main_verb
        assert present(words, "linear")[main] != present(words, "hierarchical")[main]
        assert list(example.output) == [*present(words, "hierarchical"), "."]
    assert_disjoint_inputs(train, val, gen)


def excursions(tokens) -> list[str]:
    out, depth, start = [], 0, 0
    for i, token in enumerate(tokens):
        depth += 1 if token.startswith("(") else -1
        if depth == 0:
            out.append("".join("1" if t.startswith("(") else "0" for t in tokens[start:i + 1]))
            start = i + 1
    return out


def test_dyck_splits(dyck_splits):
    train, val, gen = dyck_splits
    assert (len(train), len(val), len(gen)) == (4000, 500, 500)
    for example in train + val + gen:
        stack = []
        assert example.n_input == 0 and len(example.tokens) >= 4 and "END" not in example.tokens
        for token in example.tokens:
            if token.startswith("("):
                stack.append(token[1])
                assert len(stack) <= 10
            else:
                assert stack.pop() == token[0]
        assert not stack
    seen = {x for e in train for x in excursions(e.tokens)}
    train_strings = {e.tokens for e in train}
    assert all(set(excursions(e.tokens)) <= seen and e.tokens not in train_strings for e in val)
    assert all(not set(excursions(e.tokens)) <= seen for e in gen)


@pytest.mark.parametrize("name", ["qf", "ti", "dyck"])
def test_same_seed_same_data_other_seed_other_data(name):
    first, again, other = make(name, 300, 50, 50), make(name, 300, 50, 50), make(name, 300, 50, 50, seed=7)
    assert first == again
    assert first[0] != other[0]


def tolerance(p: float, n: int, m: int) -> float:
    """Four standard deviations of the difference of two sample proportions."""
    return 4 * math.sqrt(p * (1 - p) * (1 / n + 1 / m)) + 0.005


def profile(task: str, examples: list[Example]) -> Counter:
    """Marker, subject kind and input length of every line; for QF every constituent choice too."""
    counts: Counter = Counter()
    for example in examples:
        tags = pos_tags(task, sentence(example))
        counts["marker " + example.input[-1]] += 1
        counts["subject RC"] += tags[2] == "R"
        counts["subject PP"] += tags[2] == "P"
        counts[f"length {example.n_input}"] += 1
        if task == "qf":
            counts.update(f"{slot} {choice}" for slot, choice in structure(sentence(example)).items())
    return counts


@pytest.mark.slow  # the paper-sized splits
@pytest.mark.parametrize("task,name", [("qf", "question.dev"), ("ti", "tense.dev")])
def test_in_domain_val_matches_reference_statistics(reference_data, task, name):
    reference = read_original(reference_data / name, task)
    _, val, _ = make(task, 100_000, 1_000, 10_000)
    ref, ours = profile(task, reference), profile(task, val)
    for key in ref.keys() | ours.keys():
        p, q = ref[key] / len(reference), ours[key] / len(val)
        assert abs(p - q) <= tolerance((p + q) / 2, len(reference), len(val)), key
    total_variation = sum(abs(ref[k] / len(reference) - ours[k] / len(val))
                          for k in ref.keys() | ours.keys() if k.startswith("length")) / 2
    assert total_variation < 0.1


@pytest.mark.slow  # the paper-sized splits
def test_dyck_iid_val_matches_reference(reference_data):
    reference = read_original(reference_data / "dyck-k20-d10.val", "dyck")
    _, val, _ = make("dyck", 200_000, 20_000, 20_000)

    def max_depths(examples):
        counts: Counter = Counter()
        for example in examples:
            depth = deepest = 0
            for token in example.tokens:
                depth += 1 if token.startswith("(") else -1
                deepest = max(deepest, depth)
            counts[deepest] += 1
        return counts

    def mean_length(examples):
        return sum(len(e.tokens) for e in examples) / len(examples)

    assert mean_length(reference) == pytest.approx(13.27, abs=0.01)
    assert mean_length(val) == pytest.approx(mean_length(reference), abs=0.3)
    ref, ours = max_depths(reference), max_depths(val)
    for depth in range(1, 11):
        p, q = ref[depth] / len(reference), ours[depth] / len(val)
        assert abs(p - q) <= tolerance((p + q) / 2, len(reference), len(val)), depth
