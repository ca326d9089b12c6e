"""The paper's released per-seed training logs, read into `Run`s so that a report computes the same tables
from them as from our runs (`grok report runs/ --released DIR`). The files stay where the user keeps them.

DIR holds some of these W&B exports, shipped with the original code (MurtyShikhar/structural-grokking); other
files are ignored:

    all_val_scores_lm.csv    QF, 6 layers, 20 seeds: in-domain accuracy every 3k steps to 300k
    all_test_scores_lm.csv   the same runs' OOD accuracy
    all_scores_tense.csv     TI, 4 layers, 20 seeds: both accuracies every 3k steps to 300k
    dyck_6.csv               Dyck, 6 layers, 10 seeds: both accuracies at a different subset of every 10k
                             steps to 1M per seed (W&B sampled the history)

Each has an `iteration` column (the training step) and one column per run and key, named
`<run>_<seed>-<seed> - <key>`, where <run> names the depth (`lm_6layers_f_more_itrs`, `lm_4layers_tense`).
Keys `val_aux` (in-domain accuracy) and `test_aux` (OOD accuracy) become `val/acc` and `gen/acc`; `_step`
(W&B's own counter, not the training step) and the `__MIN` / `__MAX` twins are ignored, and an empty cell
means nothing was logged at that step. Anything else (a missing column, a cell that is not an accuracy, a run
with only one of the two accuracies) is a `ReportError` naming the file.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from grokking.report.collect import ReportError, Run

RELEASED_FILES = {
    "all_val_scores_lm.csv": "qf",
    "all_test_scores_lm.csv": "qf",
    "all_scores_tense.csv": "ti",
    "dyck_6.csv": "dyck",
}
RELEASED_KEYS = {"val_aux": "val/acc", "test_aux": "gen/acc"}
STEP_COLUMN = "iteration"
COLUMN = re.compile(r"(?P<run>.+)_(?P<seed>\d+)-(?P=seed) - (?P<key>\w+)")
DEPTH = re.compile(r"(\d+)layers")
RELEASED_VARIANT = " [released logs]"  # the experiment label of released runs: `qf [released logs]`

Records = dict[int, dict[str, float]]  # step -> {"val/acc": ..., "gen/acc": ...}


def read_released(directory: str | Path) -> list[Run]:
    """One done `Run` per released seed, with `val/acc` and `gen/acc` records, named `released/<task>/...`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f"--released: no such directory: {directory}")
    files = [directory / name for name in RELEASED_FILES if (directory / name).is_file()]
    if not files:
        raise ReportError(f"--released: {directory} holds none of the released logs "
                          f"({', '.join(RELEASED_FILES)})")
    by_run: dict[tuple[str, int, int], Records] = {}
    for path in files:
        for (depth, seed), records in read_export(path).items():
            merged = by_run.setdefault((RELEASED_FILES[path.name], depth, seed), {})
            for step, values in records.items():
                merged.setdefault(step, {}).update(values)
    runs = []
    for (task, depth, seed), records in sorted(by_run.items()):
        name = f"released/{task}/depth={depth}/seed={seed}"
        task_files = ", ".join(file for file, file_task in RELEASED_FILES.items() if file_task == task)
        for released_key, key in RELEASED_KEYS.items():
            if not any(key in values for values in records.values()):
                raise ReportError(f"--released: {directory}: {name} has no {released_key} ({key}) column; "
                                  f"is one of {task_files} missing?")
        runs.append(Run(path=directory, name=name, task=task, depth=depth, seed=seed,
                        planned_steps=max(records), status="done", variant=RELEASED_VARIANT,
                        records=[{"step": s, **records[s]} for s in sorted(records)]))
    return runs


def read_export(path: Path) -> dict[tuple[int, int], Records]:
    """(depth, seed) -> records of one W&B export (module docstring)."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise ReportError(f"--released: cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"--released: {path} is not a CSV file ({exc})") from exc
    header = rows[0] if rows else []
    if STEP_COLUMN not in header:
        raise ReportError(f"--released: {path} has no {STEP_COLUMN!r} column: not a W&B export of the "
                          "released logs")
    columns = {}  # column index -> (depth, seed, our key)
    for index, name in enumerate(header):
        match = COLUMN.fullmatch(name)
        if match and match["key"] in RELEASED_KEYS:
            depth = DEPTH.search(match["run"])
            if depth is None:
                raise ReportError(f"--released: {path}: column {name!r} does not name its depth "
                                  "(<n>layers)")
            columns[index] = (int(depth[1]), int(match["seed"]), RELEASED_KEYS[match["key"]])
    if not columns:
        raise ReportError(f"--released: {path} has no '<run>_<seed>-<seed> - val_aux' or '... - test_aux' "
                          "column")
    step_index = header.index(STEP_COLUMN)
    by_run: dict[tuple[int, int], Records] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ReportError(f"--released: {path} line {line} has {len(row)} cells, the header "
                              f"{len(header)}")
        step = _step(row[step_index], path, line)
        for index, (depth, seed, key) in columns.items():
            if row[index]:
                records = by_run.setdefault((depth, seed), {})
                if key in records.get(step, {}):
                    raise ReportError(f"--released: {path} line {line}: step {step} logged twice")
                records.setdefault(step, {})[key] = _accuracy(row[index], path, line, header[index])
    return by_run


def _step(cell: str, path: Path, line: int) -> int:
    if not cell.isdigit():
        raise ReportError(f"--released: {path} line {line}: {STEP_COLUMN} {cell!r} is not a training step")
    return int(cell)


def _accuracy(cell: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ReportError(f"--released: {path} line {line}: {cell!r} in column {column!r} is not an accuracy")
    return value
