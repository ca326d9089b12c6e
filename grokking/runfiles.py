"""Reading and writing a run directory's files, below both `grokking.report` and `grokking.diagnostics`.

Readers are tolerant: a line of `metrics.jsonl` / `train_log.jsonl` that is not JSON, not an object or has no
integer step (a torn last line after a crash, a hand edit) is skipped and counted, never fatal. Writers are
atomic (temporary file, fsync, rename; the temporary file is removed on any failure) and turn an OSError into
one `WriteError` naming the path. The grokking step is defined here once for the report and the diagnostics.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from grokking.errors import WriteError

log = logging.getLogger(__name__)
CORRUPT_MARK = ".corrupt-"


def as_int(value: Any) -> int | None:
    """An integer (or integral float) as int; anything else (bool, text, 1.5) as None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def number(value: Any) -> float:
    """A metric value as float; null (NaN on the writer's side), text and lists become NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def read_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records (JSON objects with an integer step) of a JSON-lines file in file order, and one problem per
    skipped line. A missing file has no records."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return [], []
    while lines and not lines[-1].strip():
        lines.pop()
    records, problems = [], []
    for number_, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            torn = number_ == len(lines)
            problems.append(f"{path.name}: {'trailing partial line (crash mid-write?)' if torn else f'line {number_} is not JSON'}, ignored")
            continue
        step = as_int(record.get("step")) if isinstance(record, dict) else None
        if step is None:
            problems.append(f"{path.name}: line {number_} has no integer step, ignored")
            continue
        records.append({**record, "step": step})
    return records, problems


def warn_skipped(path: Path, problems: list[str]) -> None:
    """One warning for all the lines of `path` that were skipped."""
    if problems:
        log.warning("%s: skipped %d malformed line(s) (%s%s)", path, len(problems), problems[0],
                    "; ..." if len(problems) > 1 else "")


def read_log(path: Path) -> list[dict[str, Any]]:
    """The well-formed records of a JSON-lines file, with one warning if any line was skipped."""
    records, problems = read_lines(path)
    warn_skipped(path, problems)
    return records


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records merged per step (a later line wins key by key) and sorted by step, plus what went wrong."""
    lines, problems = read_lines(path)
    by_step: dict[int, dict[str, Any]] = {}
    relogged: set[int] = set()
    for record in lines:
        merged = by_step.setdefault(record["step"], {})
        if set(merged) & (set(record) - {"step"}):
            relogged.add(record["step"])
        merged.update(record)
    if relogged:
        problems.append(f"{len(relogged)} step(s) logged twice (resumed run?), later values kept: "
                        f"{', '.join(str(s) for s in sorted(relogged)[:5])}{' ...' if len(relogged) > 5 else ''}")
    return [by_step[s] for s in sorted(by_step)], problems


@dataclass(frozen=True)
class Curve:
    steps: np.ndarray  # int, increasing
    values: np.ndarray  # float, finite

    def __len__(self) -> int:
        return len(self.steps)


def curve(records: list[dict[str, Any]], key: str) -> Curve:
    """The finite values of `key` over steps (records are sorted by step)."""
    pairs = [(r["step"], number(r.get(key))) for r in records]
    pairs = [(s, v) for s, v in pairs if math.isfinite(v)]
    return Curve(np.array([s for s, _ in pairs], dtype=np.int64), np.array([v for _, v in pairs], dtype=float))


def first_argmax(values: np.ndarray) -> int | None:
    return int(np.argmax(values)) if len(values) else None


def grokking_step(steps: np.ndarray, gen: np.ndarray, threshold: float) -> int | None:
    """First step from which gen >= threshold at every later evaluation, or None."""
    below = np.flatnonzero(gen < threshold)
    if len(gen) == 0 or (len(below) and below[-1] == len(gen) - 1):
        return None
    return int(steps[below[-1] + 1]) if len(below) else int(steps[0])


def write_error(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write(path: Path, write: Callable[[IO[bytes]], None],
                 before_replace: Callable[[], None] | None = None) -> None:
    """`write(handle)` into a temporary file next to `path`, fsync, run `before_replace` (checkpoint rotation),
    rename over `path`. On any failure (disk full, read-only, a signal) the temporary file is removed and `path`
    is untouched; an OSError becomes WriteError."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        cause = None if isinstance(exc, WriteError) else os_error_in(exc)
        if cause is not None:
            raise write_error(path, cause) from None
        raise


def os_error_in(exc: BaseException | None) -> OSError | None:
    """The OSError behind `exc` (torch.save wraps a full disk's OSError in a RuntimeError), if any."""
    while exc is not None and not isinstance(exc, OSError):
        exc = exc.__cause__ or exc.__context__
    return exc


TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")  # atomic_write's `.<name>.tmp<pid>`


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def remove_stale_temp_files(*directories: Path) -> list[Path]:
    """Remove atomic_write's temporary files (`.<name>.tmp<pid>`) in `directories` whose writer is dead: a
    SIGKILL or a node failure mid-write leaves one behind, and nothing else ever removes it. A temporary file of
    a live process (this one, or another writer) is kept. Returns the removed paths."""
    removed = []
    for directory in directories:
        try:
            candidates = [p for p in directory.iterdir() if TEMP_NAME.match(p.name)]
        except OSError:
            continue
        for path in candidates:
            pid = int(TEMP_NAME.match(path.name)["pid"])
            if pid == os.getpid() or pid_alive(pid) or not path.is_file():
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def move_aside(path: Path) -> Path:
    """Rename a file that failed verification to `<name>.corrupt-<UTC time>` next to it (never delete it)."""
    target = path.with_name(f"{path.name}{CORRUPT_MARK}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S.%f}")
    try:
        os.replace(path, target)
    except OSError as exc:
        raise write_error(path, exc) from None
    return target


def moved_aside(directory: Path) -> list[Path]:
    """Files under `directory` that were moved aside as corrupt, oldest name first."""
    return sorted(directory.rglob(f"*{CORRUPT_MARK}*")) if directory.is_dir() else []


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (the JSON-lines logs are append-only)."""
    try:
        with open(path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise write_error(path, exc) from None


RUN_MARKERS = ("metrics.jsonl", "status.json", "config.yaml", ".lock")  # any of them makes a directory a run's


def natural_key(path: Path) -> list:
    """depth=10 after depth=8."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories under `root` (which may itself be one), naturally sorted: the one directory walk behind
    `grok status` and `grok report`. A run's own subdirectories (ckpt/, archive/, diagnostics/, wandb/) are not
    searched, nor hidden ones (.submitit/, .git/)."""
    found = []
    for directory, subdirs, files in os.walk(root):
        if any(marker in files for marker in RUN_MARKERS):
            found.append(Path(directory))
            subdirs.clear()
        else:
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
    return sorted(found, key=natural_key)
