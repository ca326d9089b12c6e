"""The evaluation's one teacher-forced pass (loss and QF/Dyck accuracy from the same logits, splits encoded once per
run) gives the numbers of the definitions: each sentence scored alone, its accuracy read from a forward pass over
the prefix that ends where the prediction is made, as the original code does. On a briefly trained model, so the
accuracies are neither 0 nor 1 and a misplaced position would show."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cli.compose import compose_config
from grokking.data import AUXILIARIES, load_task_data
from grokking.evaluate import Evaluator, gen_subsets, lm_batch
from grokking.model import build_model
from grokking.pack import ScoredModels
from grokking.tasks.dyck import closing_positions as dyck_positions

CPU = torch.device("cpu")


def briefly_trained(task: str, data_dir, steps: int = 120):
    cfg = compose_config(["experiment=smoke", f"task={task}", f"data.dir={data_dir}", "task.n_val=60",
                          "task.n_gen=60", "task.dyck_eval_prefixes=300"])
    data = load_task_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, data.vocab.size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = [data.train[int(i)] for i in torch.randint(len(data.train), (16,), generator=generator)]
        loss = model.loss(*lm_batch(batch, data.vocab, CPU))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return cfg, data, model.eval()


@torch.no_grad()
def next_token_logits(model, vocab, tokens) -> torch.Tensor:
    """Logits after [SOS, *tokens], the sentence alone: [V]."""
    return model(torch.tensor([[vocab.sos, *vocab.encode(tokens)]]))[0, -1]


@torch.no_grad()
def reference_loss(model, vocab, examples) -> float:
    total, count = 0.0, 0
    for e in examples:
        ids = vocab.encode(e.tokens)
        logits = model(torch.tensor([[vocab.sos, *ids]]))[0]
        total += F.cross_entropy(logits, torch.tensor([*ids, vocab.eos]), reduction="sum").item()
        count += len(ids) + 1
    return total / count


def reference_qf_accuracy(model, vocab, examples) -> float:
    aux = [vocab.id(a) for a in AUXILIARIES]
    questions = [e for e in examples if e.tokens[e.n_input - 1] == "quest"]
    right = sum(aux[int(next_token_logits(model, vocab, e.tokens[: e.n_input])[aux].argmax())]
                == vocab.id(e.tokens[e.n_input]) for e in questions)
    return right / len(questions)


def reference_dyck_accuracy(model, vocab, examples, limit: int, min_dep: int) -> tuple[float, float]:
    closers = [vocab.id(t) for t in vocab.tokens if t.endswith(")")]
    hits = far_hits = count = far_count = 0
    for e, closing in dyck_positions(examples, limit):
        for index, distance in closing:
            right = closers[int(next_token_logits(model, vocab, e.tokens[:index])[closers].argmax())] == vocab.id(
                e.tokens[index])
            hits, count = hits + right, count + 1
            if distance >= min_dep:
                far_hits, far_count = far_hits + right, far_count + 1
    return hits / count, (far_hits / far_count if far_count else math.nan)


@pytest.mark.parametrize("task", ["qf", "dyck"])
def test_one_pass_gives_the_metrics_of_each_sentence_scored_alone(task, data_dir):
    cfg, data, model = briefly_trained(task, data_dir)
    evaluator = Evaluator(data, cfg.task, batch_size=16, device=CPU)
    [metrics] = evaluator(ScoredModels.of(model), [0], step=0)
    for split, examples in (("val", data.val), ("gen", data.gen)):
        assert metrics[f"{split}/loss"] == pytest.approx(reference_loss(model, data.vocab, examples), rel=1e-5)
        if task == "qf":
            expected = reference_qf_accuracy(model, data.vocab, examples)
        else:
            expected, far = reference_dyck_accuracy(model, data.vocab, examples, cfg.task.dyck_eval_prefixes,
                                                    cfg.task.dyck_min_dep)
            assert metrics[f"{split}/acc_mindep"] == pytest.approx(far) or math.isnan(far)
        assert metrics[f"{split}/acc"] == pytest.approx(expected), split
    accuracies = [metrics["val/acc"], metrics["gen/acc"]]
    assert any(0.0 < a < 1.0 for a in accuracies), accuracies  # a trained-but-imperfect model: the test can fail
    # the encoded splits are kept: a second evaluation reuses them and agrees exactly
    kept = dict(evaluator.prepared)
    assert set(kept) == {"val", "gen"}
    assert evaluator(ScoredModels.of(model), [0], step=30) == [metrics]
    assert all(evaluator.prepared[name] is kept[name] for name in kept)


def test_a_suffix_names_the_keys_of_another_set_of_weights(data_dir):
    cfg, data, model = briefly_trained("qf", data_dir, steps=1)
    evaluator = Evaluator(data, cfg.task, batch_size=16, device=CPU)
    [raw] = evaluator(ScoredModels.of(model), [0], 0)
    [averaged] = evaluator(ScoredModels.of(model), [0], 0, suffix="_ema0.99")
    assert averaged == {f"{key}_ema0.99": value for key, value in raw.items()}


def test_a_fixed_gen_subset_is_one_subset_for_every_seed_and_step(data_dir):
    cfg, data, _ = briefly_trained("qf", data_dir, steps=0)
    fixed = gen_subsets(data.gen, 20, seeds=[1, 2, 3], step=100, fixed=True)
    assert len(fixed) == 1 and len(fixed[0]) == 20 and len(set(fixed[0])) == 20
    assert gen_subsets(data.gen, 20, seeds=[7], step=5, fixed=True) == fixed
    redrawn = gen_subsets(data.gen, 20, seeds=[1, 2], step=100)
    assert len(redrawn) == 2 and redrawn[0] != redrawn[1]
    assert gen_subsets(data.gen, 20, seeds=[1], step=200)[0] != redrawn[0]
    # the fixed subset is what the evaluator scores, shared by every member and kept for the run
    evaluator = Evaluator(data, compose_config(["experiment=smoke", f"data.dir={data_dir}", "task.eval_gen_sample=20",
                                                "task.eval_gen_fixed=true"]).task, 16, CPU)
    assert evaluator.splits([1, 2], 0)["gen"] == fixed == evaluator.splits([5], 99)["gen"]
