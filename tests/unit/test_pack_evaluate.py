"""A seed pack's evaluation: every member scored together (one vmapped forward pass on CUDA, member by member on
the CPU) gives the metrics its single run computes, including TI's OOD subset drawn per member seed."""

import pytest
import torch

from cli.compose import compose_config
from grokking.data import load_task_data
from grokking.evaluate import evaluate
from grokking.model import build_model
from grokking.pack import PackedLM, ScoredModels

CPU = torch.device("cpu")
SEEDS = [42, 52, 62]


def members_of(pack: PackedLM, batched: bool) -> ScoredModels:
    """A pack's members as the trainer hands them over: vmapped (CUDA's path) or one after another (the CPU's)."""
    return ScoredModels(pack.size, lambda inputs: pack.logits(inputs, batched=batched),
                   lambda fn, *args: pack.apply(fn, *args, batched=batched))


def models_and_pack(cfg):
    """The task's data, one untrained model per seed (eval mode) and the pack of those models."""
    data = load_task_data(cfg)
    models = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        models.append(build_model(cfg.model, data.vocab.size).eval())
    return data, models, PackedLM(models)


@pytest.mark.parametrize("task", ["qf", "ti", "dyck"])
def test_a_pack_evaluates_each_member_as_its_single_run(task, data_dir):
    cfg = compose_config(["experiment=smoke", f"task={task}", f"data.dir={data_dir}", "task.eval_gen_sample=20",
                          "task.n_val=40"])
    data, models, pack = models_and_pack(cfg)
    step, batch_size = 30, 16
    singles = [evaluate(ScoredModels.of(model), data, cfg.task, batch_size, CPU, [seed], step)[0]
               for model, seed in zip(models, SEEDS, strict=True)]
    looped = evaluate(members_of(pack, batched=False), data, cfg.task, batch_size, CPU, SEEDS, step)
    batched = evaluate(members_of(pack, batched=True), data, cfg.task, batch_size, CPU, SEEDS, step)
    # the CPU path runs each member's own arithmetic (rows of its own OOD subset padded to the pack's widest:
    # float noise in the losses only); the vmapped path batched matmuls
    for path, tolerance in ((looped, 1e-6), (batched, 1e-5)):
        for single, member in zip(singles, path, strict=True):
            assert member.keys() == single.keys()
            for key, value in single.items():
                expected = pytest.approx(value, rel=tolerance) if "loss" in key else value
                assert member[key] == expected or (value != value and member[key] != member[key]), key
    if task == "ti":  # the OOD subsets differ between members, so their scores (almost surely) do too
        assert len({round(s["gen/loss"], 6) for s in singles}) == 3


def test_a_pack_probes_each_member_as_its_single_run(data_dir, tmp_path):
    from grokking.probes import Prober

    cfg = compose_config(["experiment=smoke", f"data.dir={data_dir}", "probes.sample_size=12", "probes.batch_size=7"])
    data, models, pack = models_and_pack(cfg)
    probers = [Prober(cfg, data, tmp_path / str(seed), CPU) for seed in SEEDS]
    assert all(probers[0].shares_sample_with(p) for p in probers)
    singles = [prober(model, 30) for prober, model in zip(probers, models, strict=True)]
    assert len({s["probe/tscore"] for s in singles}) == 3  # three different models
    for batched in (False, True):
        together = probers[0].probe(members_of(pack, batched), lambda k: models[k], 30)
        for single, member in zip(singles, together, strict=True):
            assert list(member) == list(single)
            for key, value in single.items():
                assert member[key] == (value if value is None else pytest.approx(value, rel=1e-5, abs=1e-6)), key
