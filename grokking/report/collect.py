"""Find run directories under a runs/sweep directory and read them: identity, status and metrics.jsonl.

A run directory is any directory holding `metrics.jsonl`, `status.json` or `config.yaml` (the given directory may
itself be one), so a run preempted before its first evaluation is listed too. Identity (task, tag, depth, seed,
planned steps, training config) comes from `config.yaml` when it parses, else from the path
`<task><tag>/depth=<d>/seed=<s>`. Nothing is dropped silently: every oddity lands in `Run.problems`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grokking.errors import GrokError
from grokking.paperconfig import paper_differences
from grokking.report.configs import label_variants, training_of
from grokking.runfiles import RUN_MARKERS, as_int, find_run_dirs, number, read_metrics
from grokking.tasks import TASKS

METRICS_FILE = "metrics.jsonl"
ACCURACY_KEYS = ("val/acc", "gen/acc")
LEADING_COLUMNS = ("task", "depth", "seed", "step", "tag", "status", "run")
PREFERRED_KEY_ORDER = ("elapsed_s", "epoch", "train/loss", "train/lr", "train/grad_norm", "val/acc", "gen/acc",
                       "val/loss", "gen/loss", "val/acc_mindep", "gen/acc_mindep")


class ReportError(GrokError):
    """Nothing to report on: a missing directory, no run directories, or an unwritable report directory."""


@dataclass
class Run:
    path: Path
    name: str  # path relative to the reported directory ("." when it is the run itself)
    task: str | None = None
    tag: str = ""
    depth: int | None = None
    seed: int | None = None
    planned_steps: int | None = None
    status: str = "unknown"  # running | done | failed | preempted | unknown (no or unreadable status.json)
    reason: str | None = None
    updated: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # one per step, sorted by step
    problems: list[str] = field(default_factory=list)
    training: dict[str, Any] | None = None  # training config without seed and depth (report.configs); None: unknown
    variant: str = ""  # " [key=value, ...]" when its task and tag hold several training configs

    @property
    def paper_config(self) -> bool:
        """Trained with the paper's config (any depth and seed), so the paper's numbers apply to it."""
        return self.training is not None and not paper_differences(self.training)

    @property
    def identified(self) -> bool:
        return self.task is not None and self.depth is not None and self.seed is not None

    @property
    def experiment(self) -> str:
        """Task name, run-directory tag and config variant: runs with different tags or training configs are
        never averaged together."""
        return f"{self.task}{self.tag}{self.variant}"

    @property
    def last_step(self) -> int | None:
        return self.records[-1]["step"] if self.records else None

    @property
    def state(self) -> str:
        """done | failed | unfinished. A run without status.json that reached its planned steps counts as done."""
        if self.status in ("done", "failed"):
            return self.status
        reached = self.planned_steps is not None and self.last_step is not None and self.last_step >= self.planned_steps
        return "done" if self.status == "unknown" and reached else "unfinished"


def collect_runs(root: str | Path, accuracy_keys: tuple[str, str] = ACCURACY_KEYS) -> list[Run]:
    """Every run directory under `root`, read; `accuracy_keys` are the (in-domain, OOD) keys whose gaps become
    problems."""
    root = Path(root)
    if not root.is_dir():
        raise ReportError(f"no such directory: {root}")
    dirs = find_run_dirs(root)
    if not dirs:
        raise ReportError(f"no run directories (holding {' or '.join(RUN_MARKERS)}) under {root}")
    runs = [read_run(d, root, accuracy_keys) for d in dirs]
    label_variants(runs)
    return runs


def read_run(path: Path, root: Path, accuracy_keys: tuple[str, str]) -> Run:
    run = Run(path=path, name=str(path.relative_to(root)))
    _identify_from_config(run)
    _identify_from_path(run)
    if not run.identified:
        run.problems.append("cannot tell task/depth/seed (no usable config.yaml, path not <task>/depth=<d>/seed=<s>)")
    _read_status(run)
    try:
        run.records, problems = read_metrics(path / METRICS_FILE)
        run.problems.extend(problems)
    except OSError as exc:
        run.problems.append(f"unreadable {METRICS_FILE}: {exc.strerror}")
    run.problems.extend(missing_accuracy_problems(run.records, accuracy_keys))
    return run


def missing_accuracy_problems(records: list[dict[str, Any]], accuracy_keys: tuple[str, str]) -> list[str]:
    """Evaluations (records with any val/ or gen/ key) that lack an accuracy key (val/acc, gen/acc), or hold
    null (NaN) there."""
    evaluations = [r for r in records if any(k.startswith(("val/", "gen/")) for k in r)]
    if not evaluations:
        return ["no evaluations logged yet"]
    problems = []
    for key in accuracy_keys:
        missing = sum(not math.isfinite(number(r.get(key))) for r in evaluations)
        if missing:
            problems.append(f"{key} missing or NaN at {missing} of {len(evaluations)} evaluations")
    return problems


def _identify_from_config(run: Run) -> None:
    config_path = run.path / "config.yaml"
    if not config_path.exists():
        run.problems.append("no config.yaml; identity taken from the path")
        return
    try:
        cfg = yaml.safe_load(config_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        run.problems.append(f"unreadable config.yaml ({type(exc).__name__}); identity taken from the path")
        return
    if not isinstance(cfg, dict):
        run.problems.append("config.yaml is not a mapping; identity taken from the path")
        return
    task = cfg.get("task") if isinstance(cfg.get("task"), dict) else {}
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    if isinstance(task.get("name"), str):
        run.task = task["name"]
    if isinstance(cfg.get("tag"), str):
        run.tag = cfg["tag"]
    run.training = training_of(cfg)
    run.depth = as_int(cfg.get("depth"))
    run.seed = as_int(cfg.get("seed"))
    run.planned_steps = as_int(train.get("steps"))
    if run.planned_steps is None:
        run.planned_steps = as_int(task.get("steps"))


def _identify_from_path(run: Run) -> None:
    parts = run.path.resolve().parts
    for i, part in enumerate(parts):
        if m := re.fullmatch(r"depth=(\d+)", part):
            run.depth = int(m[1]) if run.depth is None else run.depth
            if run.task is None and i > 0:
                run.task, run.tag = split_task_tag(parts[i - 1])
        if (m := re.fullmatch(r"seed=(\d+)", part)) and run.seed is None:
            run.seed = int(m[1])


def split_task_tag(directory_name: str) -> tuple[str, str]:
    """`qf_smoke` -> ("qf", "_smoke"); a name that starts with no known task is all task."""
    for task in sorted(TASKS, key=len, reverse=True):
        if directory_name.startswith(task):
            return task, directory_name[len(task):]
    return directory_name, ""


def _read_status(run: Run) -> None:
    status_path = run.path / "status.json"
    if not status_path.exists():
        return
    try:
        status = json.loads(status_path.read_text())
    except (OSError, ValueError) as exc:
        run.problems.append(f"unreadable status.json ({type(exc).__name__})")
        return
    if not isinstance(status, dict):
        run.problems.append("status.json is not an object")
        return
    run.status = str(status.get("status") or "unknown")
    run.reason = status.get("reason")
    run.updated = status.get("updated")
    if run.status == "done" and run.planned_steps and (as_int(status.get("step")) or 0) < run.planned_steps:
        run.problems.append(f"status done at step {status.get('step')} before the planned {run.planned_steps}")


def metric_keys(runs: list[Run]) -> list[str]:
    """Every key seen in any record except step: the usual ones first, then the rest alphabetically."""
    seen = {key for run in runs for record in run.records for key in record if key != "step"}
    preferred = [k for k in PREFERRED_KEY_ORDER if k in seen]
    return preferred + sorted(seen - set(preferred))


def write_tidy_csv(runs: list[Run], path: Path) -> int:
    """One row per run x logged step; returns the number of rows. Missing values are empty cells."""
    keys = metric_keys(runs)
    rows = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*LEADING_COLUMNS, *keys])
        for run in runs:
            for record in run.records:
                identity = [run.task, run.depth, run.seed, record["step"], run.tag, run.status, run.name]
                writer.writerow([_cell(v) for v in identity] + [_cell(record.get(k)) for k in keys])
                rows += 1
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
