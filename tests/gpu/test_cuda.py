"""CUDA-only checks (marker `gpu`; skipped without a GPU): the static-shape pack step, bf16, CUDA graphs, and a
seed pack trained end to end on the device. `scripts/gpu_check.sh` runs these first."""

import copy
import json

import pytest
import torch
from omegaconf import OmegaConf

from grokking.model import ModelShape, TransformerLM
from grokking.train import PackStep, SingleStep

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
SEEDS = (42, 52, 62)


def config(compile_model: bool = False):
    return OmegaConf.create({"optim": {"betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.0},
                             "compile": compile_model})


def models(device: str) -> list[TransformerLM]:
    out = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        out.append(TransformerLM(ModelShape(vocab_size=40, d_model=64, n_heads=4, d_ff=128, n_layers=2, dropout=0.0,
                                            attn_dropout=0.0)).to(device))
    return out


def batches(n: int):
    generator = torch.Generator().manual_seed(n)
    out = []
    for _ in SEEDS:
        length = int(torch.randint(6, 30, (1,), generator=generator))
        ids = torch.randint(1, 40, (8, length), generator=generator)
        targets = ids.roll(-1, 1)
        targets[:3, -4:] = -100
        out.append((ids, targets))
    return out


def train_steps(step, device: str, precision: str = "fp32", n: int = 6) -> torch.Tensor:
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
    return torch.stack([step(batches(i), 1e-3, 1.0, autocast, torch.device(device)).cpu() for i in range(n)])


def test_static_shape_pack_step_on_cuda_matches_the_cpu_step():
    cuda = train_steps(PackStep(models("cuda"), config(), torch.device("cuda"), pad=0), "cuda")
    cpu = train_steps(PackStep(models("cpu"), config(), torch.device("cpu"), pad=0), "cpu")
    assert torch.allclose(cuda, cpu, rtol=1e-3, atol=1e-4)


def test_bf16_pack_step_tracks_fp32():
    fp32 = train_steps(PackStep(models("cuda"), config(), torch.device("cuda"), pad=0), "cuda")
    bf16 = train_steps(PackStep(models("cuda"), config(), torch.device("cuda"), pad=0), "cuda", "bf16")
    assert torch.isfinite(bf16).all() and torch.allclose(bf16[:, :, 0], fp32[:, :, 0], rtol=5e-2)


@pytest.mark.parametrize("engine", ["single", "pack"])
def test_cuda_graph_step_matches_eager(engine):
    def make(compile_model):
        built = models("cuda")
        if engine == "single":
            return SingleStep(built[0], config(compile_model), torch.device("cuda"), pad=0)
        return PackStep(built, config(compile_model), torch.device("cuda"), pad=0)

    eager, graphed = train_steps(make(False), "cuda", n=8), train_steps(make(True), "cuda", n=8)
    assert torch.allclose(eager, graphed, rtol=1e-3, atol=1e-4)


def test_a_seed_pack_trains_end_to_end_on_cuda(tmp_path):
    from cli.compose import compose_config
    from grokking.train import train

    cfg = compose_config(["experiment=smoke", "device=cuda", "seeds=[1,2]", f"paths.runs={tmp_path}/runs",
                          f"data.dir={tmp_path}/data", "precision=bf16"])
    train(cfg)
    for seed in (1, 2):
        status = json.loads((tmp_path / f"runs/qf-smoke/depth=2/seed={seed}/status.json").read_text())
        assert status["status"] == "done"


def test_a_pack_evaluates_and_probes_its_members_in_one_batched_pass_on_cuda(tmp_path):
    """The trainer's CUDA path (vmapped logits and probe forward passes) against each member alone on the CPU."""
    from cli.compose import compose_config
    from grokking.data import load_task_data
    from grokking.evaluate import Members, evaluate
    from grokking.model import build_model
    from grokking.probes import Prober

    cfg = compose_config(["experiment=smoke", "task=ti", f"data.dir={tmp_path}/data", "task.eval_gen_sample=40",
                          "task.n_val=40", "probes.sample_size=12"])
    data = load_task_data(cfg)
    singles = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        singles.append(build_model(cfg.model, data.vocab.size).eval())
    engine = PackStep([copy.deepcopy(m).to("cuda") for m in singles], config(), torch.device("cuda"),
                      pad=data.vocab.pad)
    prober = Prober(cfg, data, tmp_path / "run", torch.device("cuda"))
    with engine.evaluating() as members:
        together = evaluate(members, data, cfg.task, 16, torch.device("cuda"), list(SEEDS), 30)
        probed = prober.probe(members, engine.model_of, 30)
    cpu_prober = Prober(cfg, data, tmp_path / "run", torch.device("cpu"))
    for k, (model, seed) in enumerate(zip(singles, SEEDS, strict=True)):
        alone = evaluate(Members.of(model), data, cfg.task, 16, torch.device("cpu"), [seed], 30)[0]
        assert together[k].keys() == alone.keys()
        for key, value in alone.items():
            assert together[k][key] == pytest.approx(value, rel=1e-3, abs=0.03), key  # a near-tie may flip
        for key, value in cpu_prober(model, 30).items():
            assert probed[k][key] == (value if value is None else pytest.approx(value, rel=1e-3, abs=1e-3)), key
