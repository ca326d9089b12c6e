"""Probes on a briefly trained model on real QF data: every probe must move with training.

A probe that returns the same value at every checkpoint passes any hand-built case of its formula (the exact
tree search did: it always found the left-branching tree, whose F1 is fixed). Here a small LM is trained for a few
hundred steps; each probe must differ between initialisation and the trained model.
"""

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from grokking.data.generate import generate, generation_config
from grokking.data.vocab import Vocab
from grokking.evaluate import lm_batch
from grokking.model import ModelShape, TransformerLM
from grokking.probes import Prober

pytestmark = pytest.mark.slow  # trains a small LM for a few hundred steps

MOVING_PROBES = ("probe/weight_norm", "probe/attn_entropy", "probe/attn_sparsity_sg", "probe/tscore",
                 "probe/tscore_exact", "probe/tparseval")


@pytest.fixture(scope="module")
def before_and_after(tmp_path_factory):
    task = SimpleNamespace(name="qf", n_train=3000, n_val=10, n_gen=10)
    train, _, _ = generate(generation_config(task), 5)
    data = SimpleNamespace(name="qf", train=train, vocab=Vocab.from_examples(train))
    cfg = OmegaConf.create({"depth": 2, "model": {"max_len": 64},
                            "probes": {"sample_size": 60, "sample_seed": 0, "tree_projection": True,
                                       "batch_size": 64}})
    prober = Prober(cfg, data, tmp_path_factory.mktemp("run"), torch.device("cpu"))
    torch.manual_seed(0)
    model = TransformerLM(ModelShape(vocab_size=data.vocab.size, d_model=64, n_heads=4, d_ff=128, n_layers=2,
                                     dropout=0.0, attn_dropout=0.0))
    before = prober(model, step=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        batch = [train[int(i)] for i in torch.randint(len(train), (32,), generator=generator)]
        loss = model.loss(*lm_batch(batch, data.vocab, torch.device("cpu")))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return before, prober(model, step=0), loss.item()


def test_the_model_learnt_something(before_and_after):
    assert before_and_after[2] < 2.5, before_and_after[2]  # log(vocab) ~ 4.2 at initialisation


@pytest.mark.parametrize("key", MOVING_PROBES)
def test_probe_changes_with_training(before_and_after, key):
    before, after, _ = before_and_after
    assert before[key] is not None and after[key] is not None
    assert after[key] != pytest.approx(before[key], rel=1e-3, abs=1e-4), key
