"""CUDA-only checks (marker `gpu`; skipped without a GPU): the static-shape pack step, bf16, tf32, CUDA graphs
(compile=true with dropout over several padded widths), and a seed pack trained end to end on the device.
`scripts/gpu_check.sh` runs these; its CPU rehearsal (GROK_GPU_REHEARSAL=1, the hook in tests/conftest.py) runs each one
up to its first CUDA call. tests/unit/test_compile.py has the CPU twins of the compile checks."""

import copy
import json
import os

import pytest
import torch
from conftest import mostly_padding_batches, seeded_models
from omegaconf import OmegaConf

from grokking.model import TransformerLM
from grokking.step import PackStep, SingleStep

REHEARSAL = os.environ.get("GROK_GPU_REHEARSAL") == "1"  # the CPU rehearsal: run up to the first CUDA call
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available() and not REHEARSAL,
                                                  reason="needs a CUDA device")]
SEEDS = (42, 52, 62)


def config(compile_model: bool = False, precision: str = "fp32"):
    return OmegaConf.create({"optim": {"betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.0},
                             "compile": compile_model, "precision": precision})


def models(device: str, dropout: float = 0.0) -> list[TransformerLM]:
    return [model.to(device) for model in seeded_models(SEEDS, vocab_size=40, d_model=64, n_heads=4, d_ff=128,
                                                         n_layers=2, dropout=dropout, attn_dropout=dropout)]


def batches(n: int, length: int | None = None):
    generator = torch.Generator().manual_seed(n)
    out = []
    for _ in SEEDS:
        length = length or int(torch.randint(6, 30, (1,), generator=generator))
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


def test_tf32_pack_step_tracks_fp32():
    fp32 = train_steps(PackStep(models("cuda"), config(), torch.device("cuda"), pad=0), "cuda")
    try:
        tf32 = train_steps(PackStep(models("cuda"), config(precision="tf32"), torch.device("cuda"), pad=0), "cuda")
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")
    assert torch.isfinite(tf32).all() and torch.allclose(tf32[:, :, 0], fp32[:, :, 0], rtol=1e-2)


def repeated_losses(step, widths=(10, 20, 30)) -> torch.Tensor:
    """[widths, repeats, K] losses of unchanged weights (lr 0) on one batch per width: each a new dropout draw."""
    torch.manual_seed(0)
    off = torch.autocast("cuda", enabled=False)
    return torch.stack([torch.stack([step(batches(n, w), 0.0, 1.0, off, torch.device("cuda"))[:, 0].cpu()
                                     for _ in range(16)]) for n, w in enumerate(widths)])


@pytest.mark.parametrize("engine", ["single", "pack"])
def test_compiled_step_with_dropout_over_three_widths_matches_eager(engine):
    """compile=true (CUDA graphs) with dropout 0.1 on batches of three padded widths (16, 24, 32): finite losses
    whose mean per width and member matches eager's within 5 standard errors (compiled code draws its own masks)."""
    def make(compile_model):
        built = models("cuda", dropout=0.1)
        if engine == "single":
            return SingleStep(built[0], config(compile_model), torch.device("cuda"), pad=0)
        return PackStep(built, config(compile_model), torch.device("cuda"), pad=0)

    eager, compiled = repeated_losses(make(False)), repeated_losses(make(True))
    assert torch.isfinite(compiled).all(), compiled
    error = ((compiled.var(dim=1) + eager.var(dim=1)) / compiled.shape[1]).sqrt()
    assert ((compiled.mean(dim=1) - eager.mean(dim=1)).abs() <= 5 * error + 1e-4).all()


def dyck_like(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches that are mostly padding, as a Dyck pack's are: short strings and one of 200 tokens in one member."""
    return mostly_padding_batches(n, len(SEEDS), vocab_size=40, long=200)


@pytest.mark.parametrize("engine", ["single", "pack"])
def test_padding_free_step_on_cuda_matches_the_cpu_step(engine):
    """On mostly-padding batches the eager CUDA step skips the padding (its index computed on the host) and trains
    as the CPU's padding-free loss does. (No compiled twin here: each inductor graph costs the device run seconds;
    test_cuda_graph_step_matches_eager covers the padded layout a compiled step keeps.)"""
    def make(device: str):
        built = models(device)
        if engine == "single":
            return SingleStep(built[1], config(), torch.device(device), pad=0)
        return PackStep(built, config(), torch.device(device), pad=0)

    def run(step, device: str) -> torch.Tensor:
        off = torch.autocast(torch.device(device).type, enabled=False)
        return torch.stack([step(dyck_like(n)[slice(1, 2) if engine == "single" else slice(None)], 1e-3, 1.0,
                                 off, torch.device(device)).cpu() for n in range(6)])

    cuda = make("cuda")
    assert cuda.skip_padding
    assert torch.allclose(run(cuda, "cuda"), run(make("cpu"), "cpu"), rtol=1e-3, atol=1e-4)


def test_a_seed_pack_trains_end_to_end_on_cuda(tmp_path):
    from cli.compose import compose_config
    from grokking.train import train

    cfg = compose_config(["experiment=smoke", "device=cuda", "seed=1", "seeds=[1,2]", f"paths.runs={tmp_path}/runs",
                          f"data.dir={tmp_path}/data", "precision=bf16"])
    train(cfg)
    for seed in (1, 2):
        status = json.loads((tmp_path / f"runs/qf-smoke/depth=2/seed={seed}/status.json").read_text())
        assert status["status"] == "done"


def test_a_pack_evaluates_and_probes_its_members_in_one_batched_pass_on_cuda(tmp_path):
    """The trainer's CUDA path (vmapped logits and probe forward passes) against each member alone on the CPU."""
    from cli.compose import compose_config
    from grokking.data import load_task_data
    from grokking.evaluate import evaluate
    from grokking.model import build_model
    from grokking.pack import ScoredModels
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
        alone = evaluate(ScoredModels.of(model), data, cfg.task, 16, torch.device("cpu"), [seed], 30)[0]
        assert together[k].keys() == alone.keys()
        for key, value in alone.items():
            assert together[k][key] == pytest.approx(value, rel=1e-3, abs=0.03), key  # a near-tie may flip
        for key, value in cpu_prober(model, 30).items():
            assert probed[k][key] == (value if value is None else pytest.approx(value, rel=1e-3, abs=1e-3)), key
