"""Seed packs end to end: a pack trains, resumes and reports exactly like its single runs.

    grok train experiment=smoke 'seeds=[42,52,62]'     # three members, three ordinary run directories
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import GROK, wait_for_step

SEEDS = (42, 52, 62)
PACK = "seeds=[42,52,62]"
EXACT = ["deterministic=true", "model.dropout=0", "model.attn_dropout=0"]


def smoke(data_dir: Path, *extra: str) -> list[str]:
    return ["train", "experiment=smoke", f"data.dir={data_dir}", *extra]


def run_dir(root: Path, seed: int, depth: int = 2) -> Path:
    return root / "runs" / "qf-smoke" / f"depth={depth}" / f"seed={seed}"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_metrics(ours: list[dict], reference: list[dict], rel: float = 1e-5) -> None:
    """Same steps and keys; accuracies identical; losses, norms and probes within `rel`."""
    assert [r["step"] for r in ours] == [r["step"] for r in reference]
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            if key == "elapsed_s" or value is None:
                continue
            if "acc" in key:
                assert mine[key] == value, (mine["step"], key)
            else:
                assert mine[key] == pytest.approx(value, rel=rel, abs=1e-7), (mine["step"], key)


@pytest.fixture(scope="module")
def exact_pack_and_singles(tmp_path_factory, data_dir):
    """A K=3 pack and the three single runs of the same seeds, deterministic and without dropout."""
    root = tmp_path_factory.mktemp("exact")
    result = subprocess.run([GROK, *smoke(data_dir, PACK, *EXACT)], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    singles = tmp_path_factory.mktemp("singles")
    for seed in SEEDS:
        result = subprocess.run([GROK, *smoke(data_dir, f"seed={seed}", *EXACT)], cwd=singles, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
    return root, singles, result


@pytest.mark.slow
def test_each_member_logs_what_its_single_run_logs(exact_pack_and_singles):
    root, singles, _ = exact_pack_and_singles
    for seed in SEEDS:
        for log in ("metrics.jsonl", "train_log.jsonl"):
            assert_same_metrics(records(run_dir(root, seed) / log), records(run_dir(singles, seed) / log))
        status = json.loads((run_dir(root, seed) / "status.json").read_text())
        assert status["status"] == "done" and status["step"] == 60
        meta = json.loads((run_dir(root, seed) / "meta.json").read_text())
        assert meta["seed_pack"] == list(SEEDS)


@pytest.mark.slow
def test_a_member_resumes_alone_and_status_report_see_ordinary_runs(exact_pack_and_singles, tmp_path, data_dir):
    root = tmp_path / "copy"
    shutil.copytree(exact_pack_and_singles[0], root)  # the module's pack stays as trained for the other tests
    status = subprocess.run([GROK, "status", "runs/qf-smoke"], cwd=root, capture_output=True, text=True)
    assert status.returncode == 0 and status.stdout.count("done") >= 3, status.stdout
    alone = subprocess.run([GROK, *smoke(data_dir, "seed=52", *EXACT, "task.steps=90")], cwd=root,
                           capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    assert "resuming" in alone.stdout + alone.stderr
    assert [r["step"] for r in records(run_dir(root, 52) / "metrics.jsonl")] == [0, 30, 60, 90]
    again = subprocess.run([GROK, *smoke(data_dir, PACK, *EXACT)], cwd=root, capture_output=True, text=True)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("already done") == 3


@pytest.mark.slow
def test_a_sigkilled_pack_resumes_to_the_uninterrupted_pack(exact_pack_and_singles, tmp_path, data_dir):
    reference, _, _ = exact_pack_and_singles
    args = smoke(data_dir, PACK, *EXACT, "train.save_every=10", "train.log_every=5")
    process = subprocess.Popen([GROK, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_step(run_dir(tmp_path, 62) / "train_log.jsonl", 35, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert subprocess.run([GROK, *args], cwd=tmp_path, capture_output=True, text=True).returncode == 0
    for seed in SEEDS:
        assert_same_metrics(records(run_dir(tmp_path, seed) / "metrics.jsonl"),
                            records(run_dir(reference, seed) / "metrics.jsonl"), rel=1e-6)


@pytest.mark.slow
def test_preemption_saves_every_member(tmp_path, data_dir):
    args = smoke(data_dir, PACK, "task.steps=2000", "probes.enabled=false", "train.log_every=5")
    process = subprocess.Popen([GROK, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_step(run_dir(tmp_path, 42) / "train_log.jsonl", 10, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 75
    steps = set()
    for seed in SEEDS:
        status = json.loads((run_dir(tmp_path, seed) / "status.json").read_text())
        state = torch.load(run_dir(tmp_path, seed) / "ckpt" / "latest.pt", weights_only=True)
        assert status["status"] == "preempted" and status["step"] == state["step"]
        steps.add(state["step"])
    assert len(steps) == 1


@pytest.mark.slow
def test_dropout_members_follow_their_single_runs_curves(tmp_path, data_dir):
    """With dropout, a member draws other masks than its single run, so its losses differ slightly -- and only
    slightly: the curves agree within a few percent at every logged step."""
    pack = subprocess.run([GROK, *smoke(data_dir, "seeds=[42,52]", "probes.enabled=false")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert pack.returncode == 0, pack.stderr
    single = subprocess.run([GROK, *smoke(data_dir, "seed=52", "probes.enabled=false", "paths.runs=single")],
                            cwd=tmp_path, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    ours = [r["train/loss"] for r in records(run_dir(tmp_path, 52) / "train_log.jsonl")]
    theirs = [r["train/loss"] for r in records(tmp_path / "single/qf-smoke/depth=2/seed=52/train_log.jsonl")]
    assert ours != theirs
    assert ours == pytest.approx(theirs, rel=0.03)


@pytest.mark.slow
def test_a_member_with_a_non_finite_loss_leaves_the_pack_as_failed(tmp_path, data_dir, monkeypatch):
    from cli.compose import compose_config
    from grokking import train as train_module
    from grokking.errors import TrainingFailed
    from grokking.pack import PackedLM

    real_losses, calls = PackedLM.losses_each, {"n": 0}  # the CPU pack step's loss

    def poisoned(pack, batches):
        calls["n"] += 1
        losses = real_losses(pack, batches)
        if calls["n"] > 25 and pack.size == 3:  # member 1 (seed 52) turns non-finite after step 25
            losses = losses * torch.tensor([1.0, float("nan"), 1.0])
        return losses

    monkeypatch.setattr(PackedLM, "losses_each", poisoned)
    cfg = compose_config(["experiment=smoke", f"data.dir={data_dir}", f"paths.runs={tmp_path}/runs", PACK,
                          "train.save_every=10", "probes.enabled=false"])
    with pytest.raises(TrainingFailed, match=r"1 of 3 members of the seed pack did not finish: seed 52: non-finite"):
        train_module.train(cfg)  # the others finish first; then the pack reports the failure (non-zero exit)
    failed = json.loads((run_dir(tmp_path, 52) / "status.json").read_text())
    assert failed["status"] == "failed" and "non-finite" in failed["reason"] and failed["step"] == 20
    state = torch.load(run_dir(tmp_path, 52) / "ckpt" / "latest.pt", weights_only=True)
    assert state["step"] == 20 and all(torch.isfinite(t).all() for t in state["model"].values())
    for seed in (42, 62):
        status = json.loads((run_dir(tmp_path, seed) / "status.json").read_text())
        assert status["status"] == "done" and status["step"] == 60
        assert [r["step"] for r in records(run_dir(tmp_path, seed) / "metrics.jsonl")] == [0, 30, 60]


def test_pack_seeds_groups_a_grid_into_one_job_per_cell(tmp_path):
    lines = subprocess.run([GROK, "sweep", "emit", "paper_qf", "pack=seeds"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert lines.returncode == 0, lines.stderr
    jobs = lines.stdout.splitlines()
    assert len(jobs) == 5
    assert all("'seeds=[42,52,62,72,82,92,102,112,122,132]'" in job and "seed=42" in job for job in jobs)
    assert [job.split()[1] for job in jobs] == [f"depth={d}" for d in (2, 4, 6, 8, 10)]


@pytest.mark.slow
def test_a_packed_local_sweep_trains_every_member(tmp_path, data_dir):
    result = subprocess.run([GROK, "train", "-m", "+sweep=smoke", "depth=2,3", "seed=1,2", "pack=seeds",
                             f"data.dir={data_dir}", "probes.enabled=false"], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "4 runs: 4 done" in result.stdout
    for depth in (2, 3):
        for seed in (1, 2):
            assert json.loads((run_dir(tmp_path, seed, depth) / "status.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_packs_write_only_their_members_directories(tmp_path, data_dir):
    # a swept seeds= (two packs) and a single pack: no job leaves a directory of a seed outside its pack
    args = [f"data.dir={data_dir}", "probes.enabled=false", "task.steps=2", "task.eval_every=1"]
    swept = subprocess.run([GROK, "train", "-m", "experiment=smoke", "seeds=[1,2],[3,4]", *args], cwd=tmp_path,
                           capture_output=True, text=True)
    assert swept.returncode == 0, swept.stderr
    single = subprocess.run([GROK, "train", "experiment=smoke", "seeds=[5,6]", *args], cwd=tmp_path,
                            capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    made = sorted(p.name for p in (tmp_path / "runs" / "qf-smoke" / "depth=2").iterdir())
    assert made == [f"seed={s}" for s in range(1, 7)]

