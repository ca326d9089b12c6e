"""The Prober on hand-built stand-in data: fixed probe sample, all metric keys, model state restored."""

import json
from types import SimpleNamespace

import nltk
import pytest
import torch
from omegaconf import OmegaConf

from grokking.data import Example
from grokking.model import ModelShape, TransformerLM
from grokking.probes import Prober
from grokking.probes.sample import SAMPLE_FILE, probe_inputs
from grokking.tasks import get_task

WORDS = ["the", "a", "cat", "dog", "saw", "ran", "near", "does", "do"]
TOKENS = ["<pad>", *WORDS, ".", "quest", "decl", "?"]


class StandInVocab:
    def __init__(self):
        self.pad, self.eos, self.sos, self.size = 0, len(TOKENS), len(TOKENS) + 1, len(TOKENS) + 2

    def encode(self, tokens):
        return [TOKENS.index(t) for t in tokens]


def qf_example(decl: list[str], marker: str):
    output = decl if marker == "decl" else ["does", *decl, "?"]
    tokens = (*decl, ".", marker, *output)
    return Example(tokens, len(decl) + 2)


def stand_in_qf(n: int = 60) -> SimpleNamespace:
    generator = torch.Generator().manual_seed(0)
    train = []
    for i in range(n):
        length = 2 + int(torch.randint(0, 6, (1,), generator=generator))
        decl = [WORDS[int(j)] for j in torch.randint(0, len(WORDS), (length,), generator=generator)]
        train.append(qf_example(decl, "quest" if i % 3 else "decl"))
    return SimpleNamespace(name="qf", train=train, vocab=StandInVocab())


def right_branching_tree(words):
    return words[0] if len(words) == 1 else nltk.Tree("X", [words[0], right_branching_tree(words[1:])])


@pytest.fixture
def gold_trees(monkeypatch):
    """QF with a right-branching gold_tree (the stand-in words are not the grammar's), so
    tparseval_right_branching must be 1."""
    monkeypatch.setattr(get_task("qf"), "gold_tree", lambda words: right_branching_tree(list(words)))


def config(**probes):
    return OmegaConf.create({"depth": 2, "model": {"max_len": 64}, "probes": {"enabled": True, "sample_size": 15, "sample_seed": 3,
                                                     "tree_projection": True, "batch_size": 8, **probes}})


def small_model() -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(ModelShape(vocab_size=len(TOKENS) + 2, d_model=16, n_heads=2, d_ff=32, n_layers=2))


def test_qf_probe_inputs_are_quest_declaratives_without_period_and_marker():
    data = stand_in_qf(6)
    inputs = probe_inputs("qf", data.train, max_words=100)
    assert inputs == [tuple(ex.tokens[: ex.n_input - 2]) for ex in data.train if ex.tokens[ex.n_input - 1] == "quest"]
    assert all("." not in words and "quest" not in words for words in inputs)


def test_probe_sample_is_identical_across_re_creation(tmp_path, gold_trees):
    data = stand_in_qf()
    first = Prober(config(), data, tmp_path, torch.device("cpu"))
    saved = (tmp_path / SAMPLE_FILE).read_text()
    assert len(first.sentences) == 15
    again = Prober(config(), data, tmp_path, torch.device("cpu"))
    assert again.sentences == first.sentences and (tmp_path / SAMPLE_FILE).read_text() == saved
    elsewhere = Prober(config(), data, tmp_path / "other", torch.device("cpu"))
    assert elsewhere.sentences == first.sentences  # same seed, same data: same draw
    changed = Prober(config(sample_seed=4), data, tmp_path, torch.device("cpu"))
    assert changed.sentences == first.sentences  # an existing file is reused as is
    assert json.loads(saved)["sentences"] == [list(words) for words in first.sentences]


def test_prober_reports_every_key_and_restores_training_mode(tmp_path, gold_trees):
    prober = Prober(config(), stand_in_qf(), tmp_path, torch.device("cpu"))
    model = small_model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = prober(model, step=3000)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    expected = {"probe/weight_norm", "probe/weight_norm_per_layer", "probe/norm/embedding", "probe/norm/layer0",
                "probe/norm/layer1", "probe/norm/output", "probe/attn_entropy", "probe/attn_sparsity",
                "probe/attn_entropy/layer0", "probe/attn_entropy/layer1/head1", "probe/tscore", "probe/tscore_exact",
                "probe/tparseval", "probe/tparseval_right_branching", "probe/attn_sparsity_sg"}
    assert expected <= metrics.keys()
    assert metrics["probe/tparseval_right_branching"] == 1.0
    assert 0.0 <= metrics["probe/tparseval"] <= 1.0 and metrics["probe/attn_sparsity_sg"] > 0.0
    assert metrics["probe/tscore_exact"] >= 0.0
    assert prober(model.eval(), step=3000) == metrics  # seeded by (sample_seed, step): reproducible
    assert not model.training


def test_dyck_has_no_parseval_and_tree_projection_can_be_switched_off(tmp_path):
    strings = [("(a", "(b", "b)", "a)"), ("(c", "c)"), ("(a", "a)", "(b", "(c", "c)", "b)")]
    data = SimpleNamespace(name="dyck", train=[Example(s, 0) for s in strings],
                           vocab=SimpleNamespace(pad=0, sos=9, encode=lambda ts: [1 + "(a (b (c a) b) c)".split().index(t)
                                                                                   for t in ts]))
    model = TransformerLM(ModelShape(vocab_size=10, d_model=16, n_heads=2, d_ff=32, n_layers=2))
    metrics = Prober(config(), data, tmp_path, torch.device("cpu"))(model, 10)
    assert metrics["probe/tparseval"] is None and metrics["probe/tparseval_right_branching"] is None
    assert metrics["probe/tscore"] is not None
    off = Prober(config(tree_projection=False), data, tmp_path, torch.device("cpu"))(model, 10)
    assert off["probe/tscore"] is None and off["probe/attn_entropy"] is not None
