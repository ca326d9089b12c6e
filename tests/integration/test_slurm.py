"""Sweeps on a real SLURM cluster (`../shared/slurm/start-local-slurm.sh` brings up a single-node one).

Both routes run the 2 x 2 smoke grid, interrupt two tasks mid-run, and must still end with every run done and
the interrupted ones identical (metrics.jsonl, train_log.jsonl minus elapsed_s) to uninterrupted local runs:
  * hydra-submitit-launcher: `scontrol requeue` (SIGTERM) one task, `scancel --signal=USR2` (submitit's
    preemption signal) another; the blocking launcher must then exit 0.
  * `grok sweep emit` + scripts/array.sbatch: USR2 to the batch shell (as --signal=B:USR2 does) makes the
    script requeue its task; `scontrol requeue` (SIGTERM) is requeued by SLURM itself.
Submissions that cannot work end on one `grok: error:` line naming the launcher key to change: one that sbatch
rejects (the default gpus_per_node on this GPU-less cluster, more memory than the node has) and an array that can
never start (more CPUs than the node has: pending with reason PartitionConfig), which is also cancelled.
Skips when `sinfo` is missing or no partition answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GROK

from grokking.slurm import capacity
from grokking.status import run_status

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STEPS = 300
INTERRUPT_AT = 60  # steps; both interrupted runs are still well short of STEPS by then
TIMEOUT = 420  # seconds for a whole sweep, requeues included
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
NAME = f"grok-test-{os.getpid()}"  # SLURM job name of this session's jobs


def slurm_partition() -> str | None:
    """The default (else first) partition that is up, or None when no cluster answers."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return None
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    up = [line.split()[0] for line in result.stdout.splitlines() if line.split()[1:] == ["up"]]
    if result.returncode != 0 or not up:
        return None
    return next((p.rstrip("*") for p in up if p.endswith("*")), up[0])


@pytest.fixture(scope="module")
def partition() -> str:
    name = slurm_partition()
    if name is None:
        pytest.skip("no SLURM cluster answers (sinfo missing or no partition up)")
    return name


def overrides(data_dir: Path, runs: Path) -> list[str]:
    return [f"task.steps={STEPS}", "train.save_every=50", "deterministic=true", "probes.enabled=false",
            "train.snapshot_every=0", f"data.dir={data_dir}", f"paths.runs={runs}"]


def launcher_sweep(tmp_path: Path, data_dir: Path, partition: str, *launcher: str) -> list[str]:
    """`grok train -m` of the smoke grid as a job array through the SLURM launcher, in this test's folders."""
    return [GROK, "train", "-m", "hydra/launcher=slurm", "+sweep=smoke", *overrides(data_dir, tmp_path / "runs"),
            f"hydra.launcher.partition={partition}", f"hydra.launcher.submitit_folder={tmp_path}/submitit/%j",
            f"hydra.launcher.name={NAME}", *launcher]


def run_path(runs: Path, depth: int, seed: int) -> Path:
    return runs / "qf-smoke" / f"depth={depth}" / f"seed={seed}"


def records(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in path.read_text().splitlines()]


def last_step(run: Path) -> int:
    lines = (run / "train_log.jsonl").read_text().splitlines() if (run / "train_log.jsonl").exists() else []
    return json.loads(lines[-1])["step"] if lines else 0


def both_past(runs: Path) -> bool:
    """Tasks 0 and 1 (depth 2, seeds 0 and 1; they start together) are both past INTERRUPT_AT."""
    return all(last_step(run_path(runs, 2, seed)) >= INTERRUPT_AT for seed in (0, 1))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def slurm(*args: str) -> str:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=60).stdout


def send_usr2(target: str, *flags: str) -> None:
    """`scancel --signal=USR2`. For a task of an array that still has pending tasks, scancel (22.05) delivers at
    once, is told "Job can not be altered now" and retries every 5 s, which would signal the requeued task again;
    so it is stopped once the first delivery has had time to happen."""
    try:
        subprocess.run(["scancel", "--signal=USR2", *flags, target], capture_output=True, timeout=3)
    except subprocess.TimeoutExpired:
        pass


def array_gone(job_id: str) -> bool:
    return not slurm("squeue", "-h", "-j", job_id, "-o", "%i").strip()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir: Path) -> Path:
    """The two runs that get interrupted, trained locally without interruption."""
    runs = tmp_path_factory.mktemp("reference") / "runs"
    subprocess.run([GROK, "train", "-m", "+sweep=smoke", "depth=2", *overrides(data_dir, runs)], check=True,
                   capture_output=True, env=ENV, timeout=300)
    return runs


def check_sweep(runs: Path, reference: Path, data_dir: Path) -> None:
    for depth, seed in ((2, 0), (2, 1), (3, 0), (3, 1)):
        run = run_path(runs, depth, seed)
        assert run_status(run).state == "done", (run, (run / "status.json").read_text())
        assert [r["step"] for r in records(run / "metrics.jsonl")] == list(range(0, STEPS + 1, 30))
    for seed in (0, 1):
        run = run_path(runs, 2, seed)
        assert len(json.loads((run / "meta.json").read_text())["segments"]) == 2, run  # it really was interrupted
        for name in ("metrics.jsonl", "train_log.jsonl"):
            assert records(run / name) == records(run_path(reference, 2, seed) / name), (run, name)
    status = subprocess.run([GROK, "status", str(runs), "--sweep", "smoke", *overrides(data_dir, runs)[:-1]],
                            capture_output=True, text=True, env=ENV, timeout=120)
    assert status.returncode == 0 and status.stdout.splitlines()[-1] == "4 runs: 4 done", status.stdout + status.stderr


def test_submitit_launcher_array_survives_requeue_and_usr2(tmp_path: Path, partition: str, reference: Path, data_dir):
    runs, folder = tmp_path / "runs", tmp_path / "submitit"
    setup = f'["export PATH={Path(sys.executable).parent}:$PATH", "export OMP_NUM_THREADS=1"]'
    command = launcher_sweep(tmp_path, data_dir, partition, "hydra.launcher.gpus_per_node=0",
                             "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
                             "hydra.launcher.timeout_min=30", f"hydra.launcher.setup={setup}")
    with open(tmp_path / "launcher.log", "w") as log:
        launcher = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    job_id = ""
    try:
        wait_until(lambda: any(folder.glob("*_0")), "the array to be submitted", 120)
        job_id = next(folder.glob("*_0")).name.split("_")[0]
        wait_until(lambda: both_past(runs), "tasks 0 and 1 to make progress")
        slurm("scontrol", "requeue", f"{job_id}_0")  # SIGTERM, then SLURM requeues the task
        send_usr2(f"{job_id}_1")  # submitit checkpoints and requeues the task
        assert launcher.wait(timeout=TIMEOUT) == 0, (tmp_path / "launcher.log").read_text()[-3000:]
    finally:
        launcher.kill()
        if job_id:
            subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
    check_sweep(runs, reference, data_dir)
    assert "resuming" in (run_path(runs, 2, 0) / "train.log").read_text()


def test_emitted_jobs_run_as_a_plain_sbatch_array_with_requeues(tmp_path: Path, partition: str, reference: Path,
                                                                data_dir):
    runs = tmp_path / "runs"
    emitted = subprocess.run([GROK, "sweep", "emit", "smoke", *overrides(data_dir, runs), "--out", "jobs.txt"],
                             cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=120)
    assert emitted.returncode == 0, emitted.stderr
    job_id = slurm("sbatch", "--parsable", "--array=0-3", f"--partition={partition}", "--cpus-per-task=1", "--mem=1G",
                   f"--job-name={NAME}", f"--chdir={tmp_path}", f"--output={tmp_path}/%x-%A_%a.out",
                   str(REPO / "scripts" / "array.sbatch"), "jobs.txt").strip().split(";")[0]
    try:
        wait_until(lambda: both_past(runs), "tasks 0 and 1 to make progress")
        slurm("scontrol", "requeue", f"{job_id}_1")  # SIGTERM to the script and grok; SLURM requeues the task
        send_usr2(f"{job_id}_0", "--batch")  # what --signal=B:USR2@120 delivers; the script requeues the task
        wait_until(lambda: array_gone(job_id), f"array {job_id} to finish")
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)
    check_sweep(runs, reference, data_dir)
    log = (tmp_path / f"{NAME}-{job_id}_0.out").read_text()
    assert "received USR2" in log and "requeueing it" in log and "(restart 1)" in log


def submit_in_vain(tmp_path: Path, data_dir: Path, partition: str, *launcher: str) -> subprocess.CompletedProcess:
    """Run a launcher sweep that must fail before any task starts; whatever happens, none of its jobs is left."""
    try:
        return subprocess.run(launcher_sweep(tmp_path, data_dir, partition, *launcher), cwd=tmp_path,
                              capture_output=True, text=True, env=ENV, timeout=180)
    finally:
        left = slurm("squeue", "-h", "-n", NAME, "-o", "%i").split()
        subprocess.run(["scancel", "-n", NAME], capture_output=True, timeout=60)
        assert not left, f"jobs left in the queue: {left}"


@pytest.mark.parametrize("resource", ["gpus_per_node", "mem_gb"])
def test_a_submission_sbatch_rejects_is_one_line_with_its_message_and_the_fix(tmp_path: Path, partition: str,
                                                                              data_dir, one_line_error, resource):
    offer = capacity(partition)
    launcher = {"cpus_per_task": 1, "mem_gb": 1, "gpus_per_node": 0}
    if resource == "gpus_per_node":  # the default (1) on a cluster without GPUs
        if offer.gpus:
            pytest.skip(f"partition {partition} has GPUs")
        del launcher["gpus_per_node"]
        said, fix = "Invalid generic resource (gres) specification", "gpus_per_node=0"
    else:
        launcher["mem_gb"] = offer.mem_gb + 1
        said, fix = "Memory specification can not be satisfied", f"mem_gb={offer.mem_gb}"
    result = submit_in_vain(tmp_path, data_dir, partition, *(f"hydra.launcher.{k}={v}" for k, v in launcher.items()))
    one_line_error(result, f"set hydra.launcher.{fix}")
    assert result.stderr.startswith(f"grok: error: sbatch rejected the submission: {said}"), result.stderr


def test_an_array_that_can_never_start_is_cancelled_on_one_line_naming_the_resource(tmp_path: Path, partition: str,
                                                                                     data_dir, one_line_error):
    offer = capacity(partition)
    result = submit_in_vain(tmp_path, data_dir, partition, f"hydra.launcher.cpus_per_task={offer.cpus + 1}",
                            "hydra.launcher.mem_gb=1", "hydra.launcher.gpus_per_node=0")
    one_line_error(result, f"set hydra.launcher.cpus_per_task={offer.cpus}")
    assert "can never start (pending reason PartitionConfig): a task asks for" in result.stderr
    assert "; cancelled it; " in result.stderr


def test_a_packed_grid_is_one_array_task_per_depth(tmp_path: Path, partition: str, data_dir):
    """`pack=seeds`: the 2 x 2 smoke grid becomes a 2-task array (one seed pack per depth), four ordinary runs."""
    setup = f'["export PATH={Path(sys.executable).parent}:$PATH", "export OMP_NUM_THREADS=1"]'
    command = [*launcher_sweep(tmp_path, data_dir, partition, "hydra.launcher.gpus_per_node=0",
                               "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
                               f"hydra.launcher.setup={setup}"), "pack=seeds", "task.steps=60"]
    try:
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=TIMEOUT)
    finally:
        subprocess.run(["scancel", "-n", NAME], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "4 runs: 4 done" in result.stdout
    tasks = {p.name.split("_", 1)[1] for p in (tmp_path / "submitit").glob("*_*") if p.is_dir()}
    assert tasks == {"0", "1"}, tasks
    for depth, seed in ((2, 0), (2, 1), (3, 0), (3, 1)):
        run = run_path(tmp_path / "runs", depth, seed)
        assert run_status(run).state == "done" and json.loads((run / "meta.json").read_text())["seed_pack"] == [0, 1]
