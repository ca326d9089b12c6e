"""The original files: reading, writing and exporting McCoy's and Hewitt/Murty's splits, one line per example in
each task's own line format (`Task.to_line`/`Task.from_line`: QF/TI `<input words> . <marker><TAB><output words>`,
Dyck space-separated brackets ending in `END`) under its original names (`Task.original_names`).
"""

from __future__ import annotations

import os
from pathlib import Path

from grokking import tasks  # a module, not its names: the task modules import grokking.data
from grokking.data.examples import Example, TaskData
from grokking.errors import DataError

SPLITS = ("train", "val", "gen")


def read_original(path, task: str) -> list[Example]:
    """Every line of one original-format file; DataError names the file and line of the first malformed one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"missing data file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    examples = []
    from_line = tasks.get_task(task).from_line
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            examples.append(from_line(line))
        except ValueError as exc:
            raise DataError(f"{path}:{number}: malformed line: {exc}") from None
    return examples


def write_lines(path: Path, task: str, examples: list[Example]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(tasks.get_task(task).to_line(e) + "\n" for e in examples)


def export_original(data: TaskData, out_dir) -> list[Path]:
    """Write the splits under their original names (question.*, tense.*, k-K_d-M_*.txt); returns the paths."""
    out = Path(out_dir)
    names = tasks.get_task(data.name).original_names(data.params)
    try:
        os.makedirs(out, exist_ok=True)
        written = []
        for split in SPLITS:
            path = out / names[split][0]
            write_lines(path, data.name, getattr(data, split))
            written.append(path)
    except OSError as exc:
        raise DataError(f"cannot write export directory {out}: {exc.strerror or exc}") from None
    return written
