"""`grok train` end to end through the console script: run dir anatomy, resume, faults, bad input."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import GROK, wait_for_step

TIME_KEYS = ("elapsed_s",)


def metrics_without_time(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


def smoke(data_dir: Path, *extra: str) -> list[str]:
    return ["train", "experiment=smoke", f"data.dir={data_dir}", *extra]


def run_dir(root: Path, task: str = "qf", depth: int = 2, seed: int = 42) -> Path:
    return root / "runs" / f"{task}-smoke" / f"depth={depth}" / f"seed={seed}"


# qf is the quick loop's one end-to-end training run; the other tasks train in the full suite
@pytest.mark.parametrize("task", ["qf", pytest.param("ti", marks=pytest.mark.slow),
                                  pytest.param("dyck", marks=pytest.mark.slow)])
def test_smoke_run_writes_the_run_directory(tmp_path, grok, data_dir, task):
    result = grok(*smoke(data_dir, f"task={task}"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = run_dir(tmp_path, task)
    assert json.loads((run / "status.json").read_text())["status"] == "done"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 30, 60]
    assert {"val/acc", "gen/acc", "probe/weight_norm"} <= set(records[0]) and "train/loss" not in records[0]
    out = result.stdout
    assert out.count("grok: training") == 1 and "  parameters  " in out and "  start       step 0 (fresh run)" in out
    best = max(r["val/acc"] for r in records)
    assert f"grok: summary of runs/{task}-smoke/depth=2/seed=42 (60 steps" in out
    assert f"best in-domain val/acc {best:.3f} at step {next(r['step'] for r in records if r['val/acc'] == best)}" in out
    assert out.strip().endswith(f"next: grok report runs/{task}-smoke")
    for key in ("train/loss", "train/lr", "train/grad_norm", "val/acc", "gen/acc", "val/loss", "gen/loss",
                "probe/weight_norm", "probe/tscore"):
        assert key in records[-1], key
    assert 0.0 <= records[-1]["val/acc"] <= 1.0
    if task == "dyck":
        assert "val/acc_mindep" in records[-1]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["device"] == "cpu" and "torch" in meta["packages"] and meta["config_hash"]
    assert (run / "config.yaml").exists() and (run / "train.log").exists()
    assert {p.name for p in (run / "ckpt").iterdir()} >= {"latest.pt", "init.pt", "snapshots"}
    assert sorted(p.name for p in (run / "ckpt" / "snapshots").iterdir()) == ["step_000000030.pt", "step_000000060.pt"]
    train_log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in train_log] == [10, 20, 30, 40, 50, 60]


@pytest.mark.slow
def test_finished_run_is_skipped_extended_or_forced(tmp_path, grok, data_dir):
    assert grok(*smoke(data_dir), cwd=tmp_path).returncode == 0
    run = run_dir(tmp_path)
    before = (run / "metrics.jsonl").read_text()
    again = grok(*smoke(data_dir), cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("already done") == 1 and "grok: summary of" in again.stdout
    assert (run / "metrics.jsonl").read_text() == before

    longer = grok(*smoke(data_dir, "task.steps=90"), cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 30, 60, 90]

    forced = grok(*smoke(data_dir, "force=true"), cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    archived = list((run / "archive").iterdir())
    assert len(archived) == 1 and (archived[0] / "metrics.jsonl").read_text().count("\n") == 4
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 30, 60]


@pytest.mark.slow
def test_resuming_with_another_cpu_thread_count_is_recorded_and_warned_about(tmp_path, grok, data_dir):
    """Another intra-op thread count sums in another order: the run resumes, and says it is no longer bit-exact."""
    def extend(steps: int, threads: int) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        result = grok(*smoke(data_dir, f"task.steps={steps}"), cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
        return result

    first = extend(30, threads=1)
    same = extend(60, threads=1)
    other = extend(90, threads=2)
    meta = json.loads((run_dir(tmp_path) / "meta.json").read_text())
    assert meta["arithmetic"] == {"device": "cpu", "threads": 2} and meta["resumed_at_step"] == 60
    assert len(meta["segments"]) == 3
    assert "other arithmetic" not in first.stdout + same.stdout
    warning = [line for line in other.stdout.splitlines() if "other arithmetic" in line]
    assert len(warning) == 1 and "seed 42 at step 60" in warning[0] and "(cpu, 1 thread, now cpu, 2 threads)" in warning[0]
    assert warning[0] in (run_dir(tmp_path) / "train.log").read_text()  # kept with the run


@pytest.mark.slow
def test_resuming_with_a_different_training_config_is_refused_unless_forced(tmp_path, grok, data_dir, one_line_error):
    assert grok(*smoke(data_dir, "task.steps=30"), cwd=tmp_path).returncode == 0
    changed = grok(*smoke(data_dir, "optim.lr=3e-4"), cwd=tmp_path)
    one_line_error(changed, "different training config (optim.lr)")
    forced = grok(*smoke(data_dir, "optim.lr=3e-4", "resume=force"), cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr


def start_in_background(tmp_path: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([GROK, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


RESUME = ["task.steps=150", "train.save_every=10", "train.log_every=5", "deterministic=true"]


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_matches_an_uninterrupted_run(tmp_path, grok, data_dir):
    reference_root, killed_root = tmp_path / "reference", tmp_path / "killed"
    reference_root.mkdir()
    killed_root.mkdir()
    assert grok(*smoke(data_dir, *RESUME), cwd=reference_root).returncode == 0
    rng = random.Random(1)
    args = smoke(data_dir, *RESUME)
    log_file = run_dir(killed_root) / "train_log.jsonl"
    for lower in (15, 70):  # two kills at random steps, each after some progress
        process = start_in_background(killed_root, args)
        wait_for_step(log_file, lower + rng.randrange(0, 30), process)
        time.sleep(rng.random() * 0.3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert grok(*args, cwd=killed_root).returncode == 0
    reference = metrics_without_time(run_dir(reference_root) / "metrics.jsonl")
    assert metrics_without_time(run_dir(killed_root) / "metrics.jsonl") == reference
    assert [r["step"] for r in reference] == [0, 30, 60, 90, 120, 150]  # step 0: the untrained model


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2])
def test_preemption_signal_saves_marks_preempted_and_resume_completes(tmp_path, grok, data_dir, sig):
    args = smoke(data_dir, "task.steps=400", "train.save_every=1000", "train.log_every=5", "probes.enabled=false")
    process = start_in_background(tmp_path, args)
    run = run_dir(tmp_path)
    wait_for_step(run / "train_log.jsonl", 20, process)
    process.send_signal(sig)
    assert process.wait(timeout=60) == 75
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "preempted" and signal.Signals(sig).name in status["reason"]
    saved = torch.load(run / "ckpt" / "latest.pt", weights_only=True)["step"]
    assert saved == status["step"] and 20 <= saved < 400
    assert grok(*args, cwd=tmp_path).returncode == 0
    assert json.loads((run / "status.json").read_text())["status"] == "done"


@pytest.mark.slow
def test_corrupt_latest_falls_back_to_previous_with_a_warning(tmp_path, grok, data_dir):
    args = smoke(data_dir, "task.steps=40", "train.save_every=10", "probes.enabled=false")
    assert grok(*args, cwd=tmp_path).returncode == 0
    ckpt = run_dir(tmp_path) / "ckpt"
    latest = ckpt / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated
    result = grok(*smoke(data_dir, "task.steps=60", "train.save_every=10", "probes.enabled=false"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "latest.pt is corrupt; resuming from previous.pt (step 30)" in result.stdout + result.stderr
    steps = [json.loads(line)["step"] for line in (run_dir(tmp_path) / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 30, 60]


@pytest.mark.slow
def test_nan_loss_stops_the_run_as_failed_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, monkeypatch):
    from cli.compose import compose_config
    from grokking import train as train_module
    from grokking.errors import TrainingFailed
    from grokking.model import TransformerLM

    real_loss, calls = TransformerLM.loss, {"n": 0}

    def poisoned(model, ids, targets):
        calls["n"] += 1
        loss = real_loss(model, ids, targets)
        return loss * float("nan") if calls["n"] > 25 else loss

    monkeypatch.setattr(TransformerLM, "loss", poisoned)
    cfg = compose_config(["experiment=smoke", f"data.dir={data_dir}", f"run_dir={tmp_path}/run",
                          "train.save_every=10", "probes.enabled=false"])
    with pytest.raises(TrainingFailed, match="non-finite training loss"):
        train_module.train(cfg)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "failed" and "non-finite" in status["reason"]
    state = torch.load(tmp_path / "run" / "ckpt" / "latest.pt", weights_only=True)
    assert state["step"] == 20
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_a_second_process_on_a_busy_run_directory_is_refused(tmp_path, grok, data_dir, one_line_error):
    run = run_dir(tmp_path)
    run.mkdir(parents=True)
    with open(run / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write("pid 1234 on elsewhere\n")
        handle.flush()
        one_line_error(grok(*smoke(data_dir), cwd=tmp_path), "is busy")
    assert sorted(p.name for p in run.iterdir()) == [".lock"]


@pytest.mark.parametrize(("override", "message"), [
    ("depth=0", "depth must be positive"),
    ("depth=abc", "could not be converted to Integer"),
    ("task=xyz", "Could not find 'task/xyz'; choose one of dyck, qf, ti"),
    ("train.steps=-5", "train.steps must be >= 0"),
    ("train.batch_size=5000", "larger than the training set"),
    ("dpeth=6", "Key 'dpeth' not in"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, grok, data_dir, one_line_error, override, message):
    one_line_error(grok(*smoke(data_dir, override), cwd=tmp_path), message)
    assert not (tmp_path / "runs").exists()


def test_unwritable_run_directory(tmp_path, grok, data_dir, one_line_error):
    (tmp_path / "blocker").write_text("a file")
    one_line_error(grok(*smoke(data_dir, "run_dir=blocker/run"), cwd=tmp_path), "cannot write run directory")
    assert (tmp_path / "blocker").read_text() == "a file"


@pytest.mark.slow
def test_runs_from_a_non_editable_install_in_another_directory(tmp_path, data_dir):
    """The console script finds its configs when the package is installed as a wheel, not from the checkout."""
    source = tmp_path / "source"  # a copy, so the build leaves nothing (build/, egg-info) in the checkout
    repo = Path(__file__).resolve().parents[2]
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "cli", "conf", "grokking"):
        copy = shutil.copytree if (repo / name).is_dir() else shutil.copy
        copy(repo / name, source / name)
    target = tmp_path / "site"
    subprocess.run([os.sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run([os.sys.executable, "-c", "import sys, cli.main; sys.exit(cli.main.main())",
                             *smoke(data_dir, "task.steps=5", "probes.enabled=false")],
                            cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    probe = subprocess.run([os.sys.executable, "-c", "import conf; print(conf.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
    assert str(target) in probe.stdout
    assert (run_dir(work) / "metrics.jsonl").exists()


@pytest.mark.slow  # three CLI start-ups (~7 s)
def test_version_and_an_unusable_device_leave_no_run_directory(tmp_path, grok, one_line_error):
    for args in (["--version"], ["train", "--version"]):
        result = grok(*args, cwd=tmp_path)
        assert result.returncode == 0 and result.stdout.startswith("grok "), (args, result.stderr)
    if not torch.cuda.is_available():
        one_line_error(grok("train", "experiment=smoke", "device=cuda", cwd=tmp_path), "CUDA is not available")
    helped = grok("train", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and len(helped.stdout.splitlines()) < 40
    assert "experiment: cpu, demo, paper_dyck, paper_qf, paper_ti, smoke" in helped.stdout and "resume=auto" in helped.stdout
    assert list(tmp_path.iterdir()) == []
