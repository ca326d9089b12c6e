"""The original line formats: reading, writing and exporting McCoy's and Hewitt/Murty's files.

QF/TI: `<input words> . <marker><TAB><output words>`; Dyck: space-separated brackets ending in `END`.
"""

from __future__ import annotations

import os
from pathlib import Path

from grokking.data.dyck import END
from grokking.data.examples import Example, TaskData
from grokking.data.lexicon import MARKERS
from grokking.errors import DataError

SPLITS = ("train", "val", "gen")
_OUTPUT_ENDS = {"decl": ".", "quest": "?", "PAST": ".", "PRESENT": "."}


def original_names(task: str, dyck_k: int = 20, dyck_m: int = 10) -> dict[str, tuple[str, ...]]:
    """Split -> accepted file names in a source directory, the export name first (SG's val/test names also accepted)."""
    if task == "dyck":
        stem = f"k-{dyck_k}_d-{dyck_m}"
        return {"train": (f"{stem}_train.txt",), "val": (f"{stem}_val.txt",), "gen": (f"{stem}_test.txt",)}
    stem = {"qf": "question", "ti": "tense"}[task]
    return {"train": (f"{stem}.train",), "val": (f"{stem}.dev", f"{stem}.val"), "gen": (f"{stem}.gen", f"{stem}.test")}


def to_line(task: str, example: Example) -> str:
    if task == "dyck":
        return " ".join((*example.tokens, END))
    return " ".join(example.input) + "\t" + " ".join(example.output)


def from_line(task: str, line: str, check_brackets: bool = True) -> Example:
    """Parse one line (without its newline); ValueError says what is wrong. A checksummed cache skips the
    (slow) Dyck well-nestedness check."""
    if task == "dyck":
        tokens = line.split(" ")
        if tokens[-1] != END:
            raise ValueError("line does not end in END")
        if check_brackets:
            _check_brackets(tokens[:-1])
        return Example(tuple(tokens[:-1]), 0)
    parts = line.split("\t")
    if len(parts) != 2:
        raise ValueError(f"expected 2 tab-separated fields, found {len(parts)}")
    source, target = parts[0].split(" "), parts[1].split(" ")
    if len(source) < 3 or source[-2] != "." or source[-1] not in MARKERS[task]:
        raise ValueError(f"input must end in '. {'|'.join(MARKERS[task])}'")
    if "" in source or "" in target or target[-1] != _OUTPUT_ENDS[source[-1]]:
        raise ValueError(f"output must be words ending in {_OUTPUT_ENDS[source[-1]]!r}")
    return Example((*source, *target), len(source))


def _check_brackets(tokens: list[str]) -> None:
    stack = []
    for token in tokens:
        if len(token) == 2 and token[0] == "(":
            stack.append(token[1])
        elif len(token) == 2 and token[1] == ")":
            if not stack or stack.pop() != token[0]:
                raise ValueError(f"unmatched closing bracket {token!r}")
        else:
            raise ValueError(f"not a bracket token: {token!r}")
    if stack or not tokens:
        raise ValueError("brackets are not balanced" if stack else "empty string")


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
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            examples.append(from_line(task, line))
        except ValueError as exc:
            raise DataError(f"{path}:{number}: malformed line: {exc}") from None
    return examples


def write_lines(path: Path, task: str, examples: list[Example]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(to_line(task, e) + "\n" for e in examples)


def export_original(data: TaskData, out_dir) -> list[Path]:
    """Write the splits under their original names (question.*, tense.*, k-K_d-M_*.txt); returns the paths."""
    out = Path(out_dir)
    k = data.params.get("dyck_k", 20)
    m = data.params.get("dyck_m", 10)
    names = original_names(data.name, k, m)
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
