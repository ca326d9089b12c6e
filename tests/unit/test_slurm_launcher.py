"""SLURM submissions that cannot work (grokking/slurm.py, the launcher plugin's stderr filter) on canned sinfo/squeue
output; the real cluster's behaviour is in tests/integration/test_slurm.py."""

from __future__ import annotations

import sys

import pytest

from grokking import slurm
from grokking.slurm import (
    Capacity,
    PendingWatch,
    advice,
    gpu_count,
    limit_minutes,
    never_starts,
    rejection_line,
)
from hydra_plugins.grok_launcher.slurm import without_sbatch_lines

DEFAULTS = {"cpus_per_task": 4, "tasks_per_node": 1, "mem_gb": 32, "gpus_per_node": 1, "timeout_min": 2880,
            "partition": None}  # conf/hydra/launcher/slurm.yaml
SMALL = Capacity("debug", cpus=2, mem_gb=21, gpus=0, minutes=None)
BIG = Capacity("gpu", cpus=64, mem_gb=500, gpus=8, minutes=2 * 1440)


@pytest.mark.parametrize(("gres", "count"), [("(null)", 0), ("gpu:4", 4), ("gpu:a100:4(S:0-1)", 4),
                                             ("gpu:a100:2,gpu:v100:1,mps:100", 3), ("mps:100", 0)])
def test_gpu_count(gres, count):
    assert gpu_count(gres) == count


@pytest.mark.parametrize(("text", "minutes"), [("infinite", None), ("UNLIMITED", None), ("30:00", 30),
                                               ("4:00:00", 240), ("2-00:00:00", 2880), ("1-12:30:59", 2190)])
def test_limit_minutes(text, minutes):
    assert limit_minutes(text) == minutes


def test_advice_names_every_resource_a_task_asks_more_of_than_any_node_has():
    why, fix = advice(DEFAULTS, SMALL)
    assert why == "a task asks for 4 CPUs, 32 GB memory, 1 GPU; partition 'debug' offers at most 2 CPUs, 21 GB, 0 GPUs"
    assert fix == "set hydra.launcher.cpus_per_task=2 hydra.launcher.mem_gb=21 hydra.launcher.gpus_per_node=0"
    assert advice({**DEFAULTS, "timeout_min": 4000}, BIG) == (
        "a task asks for 4000 min; partition 'gpu' offers at most 2880 min", "set hydra.launcher.timeout_min=2880")
    assert advice({**DEFAULTS, "cpus_per_task": 40, "tasks_per_node": 2}, BIG)[1] == "set hydra.launcher.cpus_per_task=32"
    assert advice(DEFAULTS, BIG, "qos") == ("", "check hydra.launcher.qos")
    assert advice(DEFAULTS, None)[1].startswith("check hydra.launcher.partition, cpus_per_task")


def test_a_rejection_keeps_sbatchs_words_and_adds_the_fix():
    gres = "sbatch: error: Invalid generic resource (gres) specification\n"
    assert rejection_line(gres, {**DEFAULTS, "cpus_per_task": 1, "mem_gb": 1}, SMALL) == (
        "sbatch rejected the submission: Invalid generic resource (gres) specification; a task asks for 1 GPU; "
        "partition 'debug' offers at most 0 GPUs; set hydra.launcher.gpus_per_node=0")
    account = ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination "
               "specified\n")
    assert rejection_line(account, DEFAULTS, BIG) == (
        "sbatch rejected the submission: Batch job submission failed: Invalid account or account/partition "
        "combination specified; check hydra.launcher.account")
    assert rejection_line("sbatch: error: Invalid qos specification", DEFAULTS, None).endswith("check hydra.launcher.qos")


def test_only_pending_reasons_that_no_wait_resolves_are_final(monkeypatch):
    monkeypatch.setattr(slurm, "capacity", lambda partition: SMALL if partition == "debug" else BIG)
    fits = {**DEFAULTS, "cpus_per_task": 1, "mem_gb": 1, "gpus_per_node": 0}
    for reason in ("Priority", "Resources", "ReqNodeNotAvail, UnavailableNodes:node7", "JobArrayTaskLimit",
                   "BeginTime", "QOSMaxJobsPerUserLimit", "AssocGrpCpuLimit"):
        assert never_starts(reason, fits, "debug") is None, reason
    assert never_starts("Resources", DEFAULTS, "debug") == advice(DEFAULTS, SMALL)  # more than any node has
    assert never_starts("ReqNodeNotAvail, UnavailableNodes:vm", DEFAULTS, "debug") == advice(DEFAULTS, SMALL)
    assert never_starts("PartitionConfig", DEFAULTS, "debug") == advice(DEFAULTS, SMALL)
    assert never_starts("PartitionConfig", fits, "debug")[1].startswith("check hydra.launcher.partition")
    assert never_starts("QOSMaxWallDurationPerJobLimit", fits, "gpu") == ("", "check hydra.launcher.timeout_min")
    assert never_starts("AssocMaxCpuPerJobLimit", fits, "gpu") == ("", "check hydra.launcher.cpus_per_task")
    assert never_starts("InvalidQOS", fits, "gpu") == ("", "check hydra.launcher.qos")


SQUEUE = ("41|PENDING|Resources|debug|grok-launch:other\n"
          "42|PENDING|PartitionConfig|debug|grok-launch:mine\n"
          "43|PENDING|PartitionConfig|debug|my note grok-launch:minex\n")


def fake_slurm(calls: list, squeue: str):
    def run(*args: str) -> str | None:
        calls.append(args)
        if args[0] == "squeue":
            return squeue
        return "" if args[0] == "scancel" else None  # sinfo fails: the generic advice

    return run


def test_the_watch_cancels_only_its_own_job_that_can_never_start_and_stops_waiting(monkeypatch):
    calls, interrupted = [], []
    monkeypatch.setattr(slurm, "slurm_output", fake_slurm(calls, SQUEUE))
    monkeypatch.setattr(PendingWatch, "first_poll_s", 0.01)
    with PendingWatch("grok-launch:mine", DEFAULTS, on_problem=lambda: interrupted.append(True)) as watch:
        watch.thread.join(timeout=10)
    assert watch.problem == ("SLURM job 42 can never start (pending reason PartitionConfig); cancelled it; check "
                             "hydra.launcher.partition, cpus_per_task, mem_gb and gpus_per_node against `sinfo -N -l`")
    assert interrupted == [True]
    assert [c for c in calls if c[0] == "scancel"] == [("scancel", "42")]


def test_the_watch_stops_once_a_task_has_started(monkeypatch):
    calls = []
    started = (SQUEUE.replace("42|PENDING|PartitionConfig", "42|RUNNING|None")
               + "42|PENDING|JobArrayTaskLimit|debug|grok-launch:mine\n")
    monkeypatch.setattr(slurm, "slurm_output", fake_slurm(calls, started))
    monkeypatch.setattr(PendingWatch, "first_poll_s", 0.01)
    with PendingWatch("grok-launch:mine", DEFAULTS, on_problem=lambda: None) as watch:
        watch.thread.join(timeout=10)
        assert not watch.thread.is_alive()
    assert watch.problem is None and len(calls) == 1  # one squeue, no scancel


def test_sbatchs_own_lines_are_held_back_from_stderr(capsys):
    with without_sbatch_lines():
        print("sbatch: error: Invalid generic resource (gres) specification\nsbatch: error: Batch job submission "
              "failed", file=sys.stderr)  # how submitit echoes a rejection
        print("a warning", file=sys.stderr)
        sys.stderr.write("no newline yet")
    assert capsys.readouterr().err == "a warning\nno newline yet"
