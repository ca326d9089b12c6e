"""Where every run of a sweep stands: done, running, stale, preempted, failed, unfinished or missing.

    grok status runs                       # every run directory under runs/
    grok status runs --sweep paper_qf      # the 50 runs the preset expects, missing ones included

A run directory is any directory holding `status.json`, `config.yaml` or `.lock` (hidden directories such as
`.submitit/` and a run's own sub-directories are not searched). A `running` status.json whose `.lock` no live
process holds (killed by SIGKILL, OOM or a node failure) is reported as `stale`: re-launching resumes it.
Each run shows its last logged in-domain (val/acc) and OOD (gen/acc) accuracy; a running run also an ETA: its
remaining steps at the training speed of its last evaluations (`elapsed_s` in metrics.jsonl, cumulative training
wall time).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from grokking.console import duration
from grokking.rundir import RunDir
from grokking.runfiles import find_run_dirs, moved_aside, natural_key, read_log

STATES = ("done", "running", "stale", "preempted", "failed", "unfinished", "unknown", "missing")
RATE_WINDOW = 5  # evaluations over which a running run's speed is measured for its ETA


@dataclass
class RunStatus:
    path: Path
    state: str  # one of STATES
    step: int | None = None  # the furthest step logged or checkpointed
    planned: int | None = None  # train.steps of the run's config (or of the sweep that expects it)
    val_acc: float | None = None  # last logged in-domain accuracy (val/acc)
    gen_acc: float | None = None  # last logged OOD accuracy (gen/acc)
    steps_per_s: float | None = None  # training speed over the last RATE_WINDOW evaluations
    reason: str | None = None

    def eta_s(self) -> float | None:
        """Seconds until a running run reaches its planned steps at its recent speed (None if unknown)."""
        if self.state != "running" or not self.steps_per_s or self.planned is None or self.step is None:
            return None
        return max(self.planned - self.step, 0) / self.steps_per_s


def lock_held(run_path: Path) -> bool:
    """Whether a live process holds the run's lock (grok holds an exclusive flock while it trains)."""
    try:
        handle = open(run_path / ".lock")  # noqa: SIM115 - closed below
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def planned_steps(run_path: Path) -> int | None:
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return int(yaml.safe_load((run_path / "config.yaml").read_text())["train"]["steps"])
    return None


def finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def last_value(records: list[dict], key: str) -> float | None:
    """The last finite value of `key`."""
    return next((r[key] for r in reversed(records) if finite(r.get(key))), None)


def steps_per_second(records: list[dict]) -> float | None:
    """Steps per second of training wall time over the last RATE_WINDOW evaluations that logged `elapsed_s`."""
    timed = [(r["step"], r["elapsed_s"]) for r in records if finite(r.get("elapsed_s"))][-RATE_WINDOW:]
    if len(timed) < 2:
        return None
    (first_step, first_s), (last_step, last_s) = timed[0], timed[-1]
    return (last_step - first_step) / (last_s - first_s) if last_step > first_step and last_s > first_s else None


def last_logged(run: RunDir, result: RunStatus) -> None:
    """Fill in the furthest step in metrics.jsonl / train_log.jsonl, the last val/acc and gen/acc, and the speed."""
    metrics = read_log(run.metrics_file)
    steps = [r["step"] for r in (*metrics, *read_log(run.train_log_file)[-1:])]
    result.step = max(steps) if steps else None
    result.val_acc, result.gen_acc = last_value(metrics, "val/acc"), last_value(metrics, "gen/acc")
    result.steps_per_s = steps_per_second(metrics)


def run_status(run_path: Path, planned: int | None = None) -> RunStatus:
    """Classify one run directory; `planned` (from the sweep's config) overrides the run's own config.yaml.
    Checkpoints that failed verification and were moved aside are named in the note."""
    result = classify(run_path, planned)
    corrupt = moved_aside(run_path / "ckpt")
    if corrupt:
        names = ", ".join(str(p.relative_to(run_path)) for p in corrupt[:3]) + (" ..." if len(corrupt) > 3 else "")
        note = f"{len(corrupt)} corrupt checkpoint(s) moved aside: {names}"
        result.reason = f"{result.reason}; {note}" if result.reason else note
    return result


def classify(run_path: Path, planned: int | None) -> RunStatus:
    if not run_path.is_dir():
        return RunStatus(run_path, "missing", planned=planned, reason="no run directory yet")
    run = RunDir(run_path)
    result = RunStatus(run_path, "unknown", planned=planned if planned is not None else planned_steps(run_path))
    last_logged(run, result)
    info = run.status()
    if info is None:
        if lock_held(run_path):
            result.state, result.reason = "running", "starting (no status.json yet)"
        elif (run_path / "status.json").exists():
            result.reason = ("unreadable status.json (not a status record); re-launch to resume from the last "
                             "checkpoint")
        else:
            result.state, result.reason = "stale", "started but wrote no status.json; see train.log, re-launch to retry"
        return result
    status, reason = info["status"], info.get("reason")
    result.reason = None if reason is None else str(reason)
    result.step = max(info["step"], result.step or 0)
    if status == "running":
        if lock_held(run_path):
            result.state = "running"
        else:
            result.state = "stale"
            result.reason = (f"status.json says running (pid {info.get('pid')} on {info.get('host')}) but no process "
                             "holds the lock; re-launch to resume from the last checkpoint")
    elif status == "done" and result.planned is not None and (result.step or 0) < result.planned:
        result.state = "unfinished"
        result.reason = f"done at step {result.step}, but {result.planned} steps are planned; re-launch to continue"
    else:  # done, preempted or failed (RunDir.status() returns no other record)
        result.state = status
    return result


def sweep_status(root: Path, expected: dict[Path, int | None] | None = None) -> list[RunStatus]:
    """Every run directory under `root`; with `expected` (run dir -> planned steps), exactly those runs."""
    if expected is None:
        return [run_status(path) for path in find_run_dirs(root)]
    return [run_status(path, planned) for path, planned in sorted(expected.items(), key=lambda kv: natural_key(kv[0]))]


def render(statuses: list[RunStatus], root: Path) -> str:
    """A table (run, state, step/planned, val/acc, gen/acc, eta, note) and a one-line count per state."""
    rows = [("run", "state", "step", "val/acc", "gen/acc", "eta", "note")]
    for s in statuses:
        try:
            name = str(s.path.relative_to(root)) if s.path != root else "."
        except ValueError:
            name = str(s.path)
        step = f"{'-' if s.step is None else s.step}/{'?' if s.planned is None else s.planned}"
        accs = ["-" if acc is None else f"{acc:.3f}" for acc in (s.val_acc, s.gen_acc)]
        eta = s.eta_s()
        eta_text = duration(eta) if eta is not None else "?" if s.state == "running" else "-"
        rows.append((name, s.state, step, *accs, eta_text, s.reason or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
             for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n" + summary(statuses)


def summary(statuses: list[RunStatus]) -> str:
    counts = Counter(s.state for s in statuses)
    parts = [f"{counts[state]} {state}" for state in STATES if counts[state]]
    return f"{len(statuses)} runs: {', '.join(parts) or 'none found'}"
