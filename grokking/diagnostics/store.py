"""On-disk layout of a run's diagnostics (docs/diagnostics.md) and its crash/resume-safe bookkeeping.

    diagnostics/meta.json, probes.json, positions.csv, critical.npz   probe sets (written once)
    diagnostics/evals.csv                       eval_idx, step, lr, wall_time (unix s), record_s, weight_norm
    diagnostics/surprisal/<split>/<i>.npy       float16 [n_positions] per evaluation i (chunk)
    diagnostics/critical_logits/<split>/<i>.npy float16 [n_critical, n_candidates] (chunk)
    diagnostics/param_hist/<i>.npy              int32 [n_tensors, bins + 2] (chunk)
    diagnostics/param_stats.csv                 one row per (evaluation, tensor)
    diagnostics/param_edges.npz                 histogram edges fixed at the first evaluation

`consolidate()` folds the chunks into surprisal.<split>.npy [n_positions, n_evals],
critical_logits.<split>.npy [n_evals, n_critical, n_candidates] and param_hist.npy [n_evals, n_tensors, bins + 2].
evals.csv is the index: evaluation i is column i of the consolidated arrays, or chunk i if it is not yet folded
in, so a crash at any point leaves a readable store. `truncate(step)` drops every evaluation after `step` from
all of them.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from grokking.diagnostics.probesets import SPLITS, array_problem, corrupt

EVAL_COLUMNS = ("eval_idx", "step", "lr", "wall_time", "record_s", "weight_norm")
# chunk folder -> (consolidated file, axis of the evaluation index, dtype)
SERIES = {f"surprisal/{s}": (f"surprisal.{s}.npy", 1, np.float16) for s in SPLITS}
SERIES |= {f"critical_logits/{s}": (f"critical_logits.{s}.npy", 0, np.float16) for s in SPLITS}
SERIES["param_hist"] = ("param_hist.npy", 0, np.int32)


def atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    """np.load of one diagnostics array; CorruptDiagnostics naming the file if it is missing, truncated (a crash
    or a full disk mid-copy) or not an .npy at all, instead of numpy's ValueError from deep inside mmap."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise corrupt(path, "missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise corrupt(path, array_problem(exc)) from None


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, header: list[str] | tuple[str, ...], rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def append_csv(path: Path, header: list[str] | tuple[str, ...], rows: list[dict]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(header))
        if new:
            writer.writeheader()
        writer.writerows(rows)


class Store:
    def __init__(self, directory: Path):
        self.dir = Path(directory)

    # -- index -----------------------------------------------------------------------------------------
    @property
    def evals_file(self) -> Path:
        return self.dir / "evals.csv"

    def evals(self) -> list[dict[str, str]]:
        return read_csv(self.evals_file)

    def steps(self) -> np.ndarray:
        steps = []
        for line, row in enumerate(self.evals(), start=2):
            try:
                steps.append(int(row["step"]))
            except (TypeError, ValueError):
                raise corrupt(self.evals_file, f"line {line} has no integer step ({row.get('step')!r})") from None
        return np.array(steps, dtype=np.int64)

    # -- writing ---------------------------------------------------------------------------------------
    def write_eval(self, index: int, chunks: dict[str, np.ndarray], param_rows: list[dict], param_header: list[str],
                   row: dict) -> None:
        """Chunks and parameter rows first, the evals.csv row last: an evaluation exists once it is indexed."""
        for series, array in chunks.items():
            folder = self.dir / series
            folder.mkdir(parents=True, exist_ok=True)
            atomic_save(folder / f"{index}.npy", array.astype(SERIES[series][2]))
        append_csv(self.dir / "param_stats.csv", param_header, param_rows)
        append_csv(self.evals_file, EVAL_COLUMNS, [row])

    def truncate(self, step: int) -> int:
        """Forget evaluations after `step` everywhere; returns how many evaluations remain."""
        rows = self.evals()
        kept = [r for r, s in zip(rows, self.steps(), strict=True) if s <= step]
        if len(kept) < len(rows):
            write_csv(self.evals_file, EVAL_COLUMNS, kept)
        n = len(kept)
        stats = self.dir / "param_stats.csv"
        stat_rows = read_csv(stats)
        if stat_rows and any(int(r["eval_idx"]) >= n for r in stat_rows):
            write_csv(stats, list(stat_rows[0]), [r for r in stat_rows if int(r["eval_idx"]) < n])
        for series, (name, axis, _) in SERIES.items():
            self._drop_chunks(series, lambda i: i >= n)
            path = self.dir / name
            if path.exists():
                array = load_array(path)
                if array.shape[axis] > n:
                    atomic_save(path, np.take(array, np.arange(n), axis=axis))
        if n == 0:
            (self.dir / "param_edges.npz").unlink(missing_ok=True)
        return n

    def _drop_chunks(self, series: str, drop: Callable[[int], bool]) -> None:
        folder = self.dir / series
        if folder.is_dir():
            for path in folder.glob("*.npy"):
                if path.stem.isdigit() and drop(int(path.stem)):
                    path.unlink()

    # -- reading and consolidation ---------------------------------------------------------------------
    def load(self, series: str, n_evals: int | None = None) -> np.ndarray | None:
        """All `n_evals` (default: every indexed) evaluations of a series, consolidated file first, then chunks."""
        name, axis, dtype = SERIES[series]
        n = len(self.evals()) if n_evals is None else n_evals
        path = self.dir / name
        parts = []
        done = 0
        if path.exists():
            array = load_array(path, mmap=True)
            done = min(array.shape[axis], n)
            parts.append(np.take(array, np.arange(done), axis=axis))
        for i in range(done, n):
            chunk = load_array(self.dir / series / f"{i}.npy")
            parts.append(np.expand_dims(chunk, axis))
        if not parts:
            return None
        return np.concatenate(parts, axis=axis).astype(dtype, copy=False)

    def consolidate(self) -> None:
        """Fold every chunk into the consolidated arrays, then delete the chunks (idempotent)."""
        n = len(self.evals())
        for series, (name, _, _) in SERIES.items():
            if not (self.dir / series).is_dir() and not (self.dir / name).exists():
                continue
            array = self.load(series, n)
            if array is not None:
                atomic_save(self.dir / name, array)
            self._drop_chunks(series, lambda i: True)
            folder = self.dir / series
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        for parent in ("surprisal", "critical_logits"):
            folder = self.dir / parent
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
