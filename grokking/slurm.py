"""SLURM submissions that cannot work, explained on one line with the launcher key to change: a submission that
sbatch rejects, and a job (array) that can never start because it is pending for a reason no wait resolves.

A request is the SLURM launcher's parameters (cpus_per_task, tasks_per_node, mem_gb, gpus_per_node, timeout_min,
partition, as `hydra.launcher.<key>=` sets them); what a partition offers comes from `sinfo`. Only the SLURM
client commands are run (sinfo, squeue, scancel), so this needs neither Hydra nor submitit.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KEY = "hydra.launcher."
# Pending reasons (squeue %r) that no wait resolves, and the key each points at (None: found by comparing the
# request with the partition's nodes).
NEVER = {"PartitionConfig": None, "PartitionNodeLimit": "nodes", "PartitionTimeLimit": "timeout_min",
         "BadConstraints": "constraint", "InvalidAccount": "account", "InvalidQOS": "qos"}
# QOSMax*/AssocMax* per-job and per-node limits never pass either; the limited resource is named in the reason.
LIMITED = (("Cpu", "cpus_per_task"), ("Mem", "mem_gb"), ("GRES", "gpus_per_node"), ("WallDuration", "timeout_min"),
           ("Node", "nodes"))
# Usually a matter of waiting, but final when a task asks for more than any node of the partition has.
FINAL_IF_OVERSIZED = ("Resources", "ReqNodeNotAvail")
# Words of sbatch's rejections and the key each points at, most specific first.
REJECTIONS = (("account", "account"), ("qos", "qos"), ("feature", "constraint"), ("time limit", "timeout_min"),
              ("gres", "gpus_per_node"), ("memory", "mem_gb"), ("processors", "cpus_per_task"),
              ("partition", "partition"))


@dataclass(frozen=True)
class Capacity:
    """What the largest nodes of a partition offer (each resource on its own) and its time limit."""

    partition: str
    cpus: int
    mem_gb: int
    gpus: int
    minutes: int | None  # None: no time limit


def slurm_output(*args: str) -> str | None:
    """stdout of a SLURM client command; None when it is missing, fails or hangs."""
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def gpu_count(gres: str) -> int:
    """GPUs in a node's generic resources, e.g. `gpu:a100:4(S:0-1),mps:100` -> 4; `(null)` -> 0."""
    return sum(int(n) for n in re.findall(r"\bgpu(?::[^:,(]+)?:(\d+)", gres))


def limit_minutes(text: str) -> int | None:
    """A SLURM time limit (`infinite`, `30:00`, `4:00:00`, `2-00:00:00`) in whole minutes; None for no limit."""
    if not text[:1].isdigit():
        return None
    days, _, clock = text.rpartition("-")
    hours, minutes, _ = ([0, 0, 0] + [int(part) for part in clock.split(":")])[-3:]
    return int(days or 0) * 1440 + hours * 60 + minutes


def capacity(partition: str | None) -> Capacity | None:
    """The partition's offer (the default partition's for None) from `sinfo`; None if sinfo cannot tell."""
    output = slurm_output("sinfo", "-h", "-N", "-o", "%P|%c|%m|%G|%l", *(["-p", partition] if partition else []))
    rows = [line.split("|") for line in (output or "").splitlines() if line.count("|") == 4]
    if not partition:
        rows = [row for row in rows if row[0].endswith("*")]
    try:
        return Capacity(partition or rows[0][0].rstrip("*"), max(int(row[1]) for row in rows),
                        max(int(row[2]) for row in rows) // 1024, max(gpu_count(row[3]) for row in rows),
                        limit_minutes(rows[0][4]))
    except (IndexError, ValueError):  # no such partition, or a format this sinfo does not share
        return None


def oversized(params: dict[str, Any], offer: Capacity) -> list[tuple[str, str, str]]:
    """(what a task asks for, what the partition's nodes have at most, key=value that fits) for every resource a
    task asks more of than any node of the partition has."""
    tasks = params.get("tasks_per_node") or 1
    cpus = (params.get("cpus_per_task") or 1) * tasks
    mem, gpus, minutes = params.get("mem_gb"), params.get("gpus_per_node") or 0, params.get("timeout_min")
    found = []
    if cpus > offer.cpus:
        found.append((f"{cpus} CPUs", f"{offer.cpus} CPUs", f"cpus_per_task={max(offer.cpus // tasks, 1)}"))
    if mem and mem > offer.mem_gb:
        found.append((f"{mem:g} GB memory", f"{offer.mem_gb} GB", f"mem_gb={offer.mem_gb}"))
    if gpus > offer.gpus:
        found.append((f"{gpus} GPU{'s' * (gpus > 1)}", f"{offer.gpus} GPUs", f"gpus_per_node={offer.gpus}"))
    if offer.minutes is not None and minutes and minutes > offer.minutes:
        found.append((f"{minutes} min", f"{offer.minutes} min", f"timeout_min={offer.minutes}"))
    return found


def advice(params: dict[str, Any], offer: Capacity | None, key: str | None = None) -> tuple[str, str]:
    """(why, what to change): the resources a task asks more of than the partition offers, else `key`."""
    over = oversized(params, offer) if offer else []
    if over:
        asked, has = ", ".join(a for a, _, _ in over), ", ".join(h for _, h, _ in over)
        return (f"a task asks for {asked}; partition '{offer.partition}' offers at most {has}",
                "set " + " ".join(KEY + fix for _, _, fix in over))
    if key:
        return "", f"check {KEY}{key}"
    return "", f"check {KEY}partition, cpus_per_task, mem_gb and gpus_per_node against `sinfo -N -l`"


def rejection_line(stderr: str, params: dict[str, Any], offer: Capacity | None) -> str:
    """One line for a submission sbatch rejected: its own message, then the likely fix."""
    messages = list(dict.fromkeys(line.strip().removeprefix("sbatch: error: ") for line in stderr.splitlines()
                                  if line.strip()))
    text = "; ".join(messages) or "no message"
    why, fix = advice(params, offer, next((key for word, key in REJECTIONS if word in text.lower()), None))
    return f"sbatch rejected the submission: {text}{f'; {why}' if why else ''}; {fix}"


def never_starts(reason: str, params: dict[str, Any], partition: str) -> tuple[str, str] | None:
    """(why, what to change) if a job pending for `reason` on `partition` can never start; None if it may."""
    name = reason.split(",")[0].strip()  # "ReqNodeNotAvail, UnavailableNodes:node7"
    if name in FINAL_IF_OVERSIZED:
        offer = capacity(partition)
        if not (offer and oversized(params, offer)):
            return None
        key = None
    elif name in NEVER:
        offer, key = capacity(partition), NEVER[name]
    elif name.startswith(("QOSMax", "AssocMax")) and ("PerJob" in name or "PerNode" in name):
        offer, key = capacity(partition), next((key for word, key in LIMITED if word in name), None)
    else:
        return None
    return advice(params, offer, key)


def tagged(tag: str) -> list[tuple[str, str, str, str]]:
    """(job id, state, pending reason, partition) of this user's jobs whose comment carries `tag`; an array's
    pending tasks are one row under the array's id."""
    user = pwd.getpwuid(os.getuid()).pw_name
    output = slurm_output("squeue", "-h", "-u", user, "-o", "%F|%T|%r|%P|%k") or ""
    rows = [line.split("|", 4) for line in output.splitlines() if line.count("|") >= 4]
    return [(job, state, reason, partition) for job, state, reason, partition, comment in rows
            if tag in comment.split()]


class PendingWatch:
    """While a launcher waits on the jobs it submitted with `tag` in their comment, polls squeue (after 2 s, then
    at doubling intervals up to 5 minutes) until one of them has started. A job that can never start is
    cancelled (scancel), `problem` says so on one line and `on_problem` runs (the launcher stops waiting)."""

    first_poll_s, last_poll_s = 2.0, 300.0

    def __init__(self, tag: str, params: dict[str, Any], on_problem: Callable[[], None]) -> None:
        self.tag, self.params, self.on_problem = tag, params, on_problem
        self.problem: str | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.watch, name="grok-pending-watch", daemon=True)

    def __enter__(self) -> PendingWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join()

    def watch(self) -> None:
        interval = self.first_poll_s
        while not self.stopped.wait(interval):
            jobs = tagged(self.tag)
            if any(state != "PENDING" for _, state, _, _ in jobs):
                return  # a task has started, so the request fits: nothing left to watch for
            self.problem = self.check(jobs)
            if self.problem:
                self.on_problem()
                return
            interval = min(2 * interval, self.last_poll_s)

    def check(self, jobs: list[tuple[str, str, str, str]]) -> str | None:
        """Cancel the first pending job that can never start and say why on one line; None if there is none."""
        for job, _, reason, partition in jobs:
            verdict = never_starts(reason, self.params, partition)
            if verdict:
                why, fix = verdict
                cancelled = slurm_output("scancel", job) is not None
                action = "cancelled it" if cancelled else f"cancel it with `scancel {job}`"
                return f"SLURM job {job} can never start (pending reason {reason}){f': {why}' if why else ''}; {action}; {fix}"
        return None
