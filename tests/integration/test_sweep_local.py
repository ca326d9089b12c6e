"""Sweeps without SLURM: presets, `grok sweep emit`, local multiruns (basic and submitit-local launchers),
re-launching, a failing job, and preemption + resume through the console script."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import GROK, wait_for_step

from cli.sweep import sweep_jobs
from grokking.loggers import stable_run_id
from grokking.rundir import RunDir

QUICK = ["probes.enabled=false", "train.snapshot_every=0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: extra threads only fight over the CI's 2 cores


def run_path(root: Path, depth: int, seed: int) -> Path:
    return root / "qf-smoke" / f"depth={depth}" / f"seed={seed}"


def status_of(path: Path) -> dict:
    return json.loads((path / "status.json").read_text())


def records(path: Path, drop: tuple[str, ...] = ("elapsed_s",)) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("preset", "depths", "n_jobs"), [("paper_qf", {2, 4, 6, 8, 10}, 50),
                                                          ("paper_ti", {2, 4, 6, 8, 10}, 50),
                                                          ("paper_dyck", {6}, 10)])
def test_paper_presets_expand_to_the_papers_grids_as_self_contained_lines(preset, depths, n_jobs):
    jobs = sweep_jobs(preset, [])
    assert len(jobs) == n_jobs
    values = [dict(o.split("=", 1) for o in job) for job in jobs]
    assert {v["experiment"] for v in values} == {preset}
    assert {int(v["depth"]) for v in values} == depths
    assert sorted({int(v["seed"]) for v in values}) == list(range(42, 142, 10))
    assert all(set(v) == {"experiment", "depth", "seed"} for v in values)  # no +sweep=, no launcher keys


def test_emit_writes_shell_quoted_lines_and_the_sbatch_command(tmp_path: Path):
    result = subprocess.run([GROK, "sweep", "emit", "smoke", "hydra/launcher=slurm", "optim.betas=[0.9,0.98]",
                             "--out", "jobs.txt"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "jobs.txt").read_text().splitlines()
    assert [shlex.split(line) for line in lines] == [
        ["experiment=smoke", f"depth={d}", f"seed={s}", "optim.betas=[0.9,0.98]"] for d in (2, 3) for s in (0, 1)]
    assert "sbatch --array=0-3%32 scripts/array.sbatch jobs.txt" in result.stderr
    bad = subprocess.run([GROK, "sweep", "emit", "smoke", "depth=0,2"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env=ENV)
    assert bad.returncode == 2 and bad.stderr.strip() == "grok: error: depth must be positive, got 0 (job: experiment=smoke depth=0 seed=0)"


@pytest.mark.slow
def test_relaunched_sweep_skips_done_runs_resumes_unfinished_ones_and_survives_a_failing_run(tmp_path: Path, data_dir):
    common = ["paths.runs=runs", f"data.dir={data_dir}", *QUICK]
    runs = tmp_path / "runs"

    def grok(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([GROK, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=ENV)

    # d2/s1 trained half-way under the same command line (emitted), d3/s1 holds a run with another config
    line = next(job for job in sweep_jobs("smoke", common) if "depth=2" in job and "seed=1" in job)
    assert grok("train", *line, "task.steps=30").returncode == 0
    assert grok("train", "experiment=smoke", "depth=3", "seed=1", "model.d_model=16", "task.steps=10", *common).returncode == 0
    foreign = (run_path(runs, 3, 1) / "metrics.jsonl").read_bytes()

    first = grok("train", "-m", "+sweep=smoke", *common)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    assert "runs/qf-smoke/depth=3/seed=1 holds a run with a different training config (model.d_model" in output
    assert "Traceback" not in output and "grok: sweep: 4 runs: 3 done, 1 unfinished" in first.stdout
    for depth, seed in ((2, 0), (2, 1), (3, 0)):
        path = run_path(runs, depth, seed)
        assert status_of(path)["status"] == "done" and status_of(path)["step"] == 60
        assert [r["step"] for r in records(path / "metrics.jsonl")] == [0, 30, 60]
    assert "resuming runs/qf-smoke/depth=2/seed=1 from latest.pt at step 30" in (run_path(runs, 2, 1) / "train.log").read_text()
    assert (run_path(runs, 3, 1) / "metrics.jsonl").read_bytes() == foreign

    finished = [run_path(runs, d, s) for d, s in ((2, 0), (2, 1), (3, 0))]
    before = {p: ((p / "metrics.jsonl").read_bytes(), (p / "ckpt" / "latest.pt").stat().st_mtime_ns) for p in finished}
    again = grok("train", "-m", "+sweep=smoke", *common)
    assert again.returncode == 1
    assert again.stdout.count("is already done at step 60") == 3
    assert {p: ((p / "metrics.jsonl").read_bytes(), (p / "ckpt" / "latest.pt").stat().st_mtime_ns) for p in finished} == before

    status = grok("status", "runs", "--sweep", "smoke")
    assert status.returncode == 0, status.stderr
    states = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[1:5]}
    assert states == {"qf-smoke/depth=2/seed=0": "done", "qf-smoke/depth=2/seed=1": "done", "qf-smoke/depth=3/seed=0": "done",
                      "qf-smoke/depth=3/seed=1": "unfinished"}


@pytest.mark.slow
def test_local_launcher_runs_each_job_in_its_own_process(tmp_path: Path, data_dir):
    result = subprocess.run([GROK, "train", "-m", "hydra/launcher=local", "hydra.sweeper.max_batch_size=2", "+sweep=smoke",
                             "depth=2", "paths.runs=runs", f"data.dir={data_dir}", *QUICK],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    for seed in (0, 1):
        assert status_of(run_path(tmp_path / "runs", 2, seed))["status"] == "done"
    logs = sorted((tmp_path / "runs" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2 and all("done at step 60" in log.read_text() for log in logs)


@pytest.mark.slow
def test_usr2_then_term_resume_to_the_uninterrupted_metrics_under_one_wandb_run_id(tmp_path: Path, data_dir):
    args = ["train", "experiment=smoke", "task.steps=300", "deterministic=true", f"data.dir={data_dir}", *QUICK]
    subprocess.run([GROK, *args, "paths.runs=reference"], cwd=tmp_path, check=True, capture_output=True, timeout=300,
                   env=ENV)
    interrupted = [*args, "paths.runs=runs", "logger=wandb", "logger.mode=offline"]
    path = run_path(tmp_path / "runs", 2, 42)
    for sig, after_step in ((signal.SIGUSR2, 60), (signal.SIGTERM, 170)):
        with open(tmp_path / "segment.log", "a") as log:
            process = subprocess.Popen([GROK, *interrupted], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        try:
            wait_for_step(path / "train_log.jsonl", after_step, process)
            process.send_signal(sig)
            assert process.wait(timeout=120) == 75
        finally:
            process.kill()
        status = status_of(path)
        assert status["status"] == "preempted" and f"{sig.name} received; saved step {status['step']}" in status["reason"]
    subprocess.run([GROK, *interrupted], cwd=tmp_path, check=True, capture_output=True, timeout=300, env=ENV)

    reference = run_path(tmp_path / "reference", 2, 42)
    for name in ("metrics.jsonl", "train_log.jsonl"):
        assert records(path / name) == records(reference / name), name
    segments = sorted((path / "wandb").glob("offline-run-*"))
    run_id = stable_run_id(RunDir(path))
    assert len(segments) == 3 and all(s.name.endswith(f"-{run_id}") for s in segments)
    history = next(segments[-1].glob("run-*.wandb")).read_bytes()
    assert b"qf-smoke-d2-s42" in history and b"qf-smoke-d2" in history  # run name and group (<task><tag>-d<depth>)
