"""Fixed, hashed probe sets and their per-position metadata (docs/diagnostics.md).

Three splits, `train` (the spec's train_probe), `val` (val_id) and `gen` (gen_ood): `n_per_split` sentences each
(or the whole split), drawn without replacement with `default_rng([cfg.diagnostics.seed, split number])` only, so
they are identical across training seeds and resumes. Every target of a sentence is a scored position: the tokens
w_1..w_n and the final EOS, predicted from [SOS] w_<t.

Per-position metadata (`positions.csv`, one row per position; parquet is not available, so CSV):
- `segment`: QF/TI `input` up to and including the marker (free lexical choice), `output` after it and the EOS.
  Dyck has no input/output split: closing brackets (deterministic given the prefix) are `output`, opening
  brackets and EOS (free choices of the PFSA) are `input`;
- `pos`: the grammar's tag (`pos_tag`: D N V A P R T M), `EOS`; Dyck `open` / `close` / `EOS`;
- `role`: `critical`, else `structure-sensitive`, else `other`:
  - QF critical: the first output token after `quest` (the moved main auxiliary);
  - TI critical: the main verb of a `PRESENT` output;
  - Dyck critical: closing brackets whose dependency distance (closer index − opener index) is
    >= cfg.task.dyck_min_dep, i.e. the long-distance closers of the paper's filtered metric;
  - structure-sensitive: positions where the linear and the hierarchical rule predict different tokens
    (QF: `question(decl, "linear")` vs `"hierarchical"`; TI: `present(past, "linear")` vs `"hierarchical"`;
    Dyck, project-native: the linear rule closes the most recently *opened* bracket type, the hierarchical rule
    the top of the stack);
- `train_freq`: count of the target type among the training targets (all tokens plus one EOS per sentence);
- `linear`, `hierarchical`: the two rules' answers at critical and structure-sensitive positions ("" elsewhere).

Critical positions also carry a candidate set for the stored logits: QF the four auxiliaries, TI the singular and
plural present forms of the main verb's stem, Dyck every closing bracket.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grokking.data import Example, TaskData
from grokking.errors import GrokError
from grokking.tasks import get_task

SPLITS = ("train", "val", "gen")
ROLES = ("critical", "structure-sensitive", "other")
COLUMNS = ("pos_id", "split", "sentence", "t", "target", "segment", "pos", "role", "train_freq", "linear",
           "hierarchical")
INT_COLUMNS = ("pos_id", "sentence", "t", "train_freq")
log = logging.getLogger(__name__)


class DiagnosticsError(GrokError):
    """Saved diagnostics that do not match this run (different probe sets, schedule or model)."""


class CorruptDiagnostics(DiagnosticsError):
    """A diagnostics file that is missing, truncated or garbled (the message names it): that run's diagnostics
    cannot be read, and a report over many runs skips them with a warning."""


def corrupt(path: Path, problem: str, remedy: str = "restore it, or retrain the run with force=true to record "
                                                     "its diagnostics again") -> CorruptDiagnostics:
    return CorruptDiagnostics(f"{path}: {problem}; {remedy}")


def array_problem(exc: BaseException) -> str:
    """What np.load's exception says about a damaged .npy / .npz, on one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"truncated or corrupt ({text})"


def choose(examples: list[Example], n: int, seed: int, split_number: int, max_tokens: int) -> list[int]:
    """Sorted indices of `n` examples (all if fewer) among those short enough for the model."""
    pool = np.array([i for i, e in enumerate(examples) if len(e.tokens) <= max_tokens], dtype=np.int64)
    if len(pool) <= n:
        return pool.tolist()
    rng = np.random.default_rng([seed, split_number])
    return np.sort(rng.choice(pool, size=n, replace=False)).tolist()


@dataclass
class SplitProbe:
    """One split's probe sentences, its flat positions and its critical positions."""

    name: str
    indices: list[int]
    examples: list[Example]
    columns: dict[str, list]  # COLUMNS -> per-position values (pos_id is filled in by ProbeSet)
    critical_rows: np.ndarray  # [n_critical] row of each critical position in this split's positions
    candidates: np.ndarray  # [n_critical, n_candidates] token ids, -1 where the vocabulary lacks the token
    candidate_tokens: list[list[str]]
    linear_choice: np.ndarray  # [n_critical] column of the linear-rule answer in `candidates`, -1 if absent
    hier_choice: np.ndarray  # [n_critical] column of the hierarchical answer

    @property
    def n_positions(self) -> int:
        return len(self.columns["t"])


def build_split(name: str, number: int, data: TaskData, cfg, train_freq: Counter) -> SplitProbe:
    dcfg = cfg.diagnostics
    source = getattr(data, name)
    indices = choose(source, int(dcfg.n_per_split), int(dcfg.seed), number, int(cfg.model.max_len) - 1)
    examples = [source[i] for i in indices]
    task = get_task(data.name)
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    critical_rows, cand_tokens, lin, hier = [], [], [], []
    for sentence, example in enumerate(examples):
        roles = task.roles(example, cfg.task, data.vocab)
        segments, tags = task.segments_and_tags(example)
        targets = [*example.tokens, "<eos>"]
        for t, target in enumerate(targets):
            if t in roles.candidates:
                critical_rows.append(len(columns["t"]))
                cands = roles.candidates[t]
                cand_tokens.append(cands)
                lin.append(cands.index(roles.linear[t]) if roles.linear[t] in cands else -1)
                hier.append(cands.index(roles.hierarchical[t]) if roles.hierarchical[t] in cands else -1)
            row = (-1, name, sentence, t, target, segments[t], tags[t], roles.role[t], train_freq[target],
                   roles.linear[t], roles.hierarchical[t])
            for column, value in zip(COLUMNS, row, strict=True):
                columns[column].append(value)
    width = max((len(c) for c in cand_tokens), default=0)
    known = set(data.vocab.tokens)
    candidates = np.full((len(cand_tokens), width), -1, dtype=np.int64)
    for i, cands in enumerate(cand_tokens):
        candidates[i, : len(cands)] = [data.vocab.id(c) if c in known else -1 for c in cands]
    return SplitProbe(name, indices, examples, columns, np.array(critical_rows, dtype=np.int64), candidates,
                      cand_tokens, np.array(lin, dtype=np.int64), np.array(hier, dtype=np.int64))


def probe_hash(task: str, splits: dict[str, SplitProbe]) -> str:
    """sha256 over the task and every probe sentence's tokens, split by split."""
    payload = {"task": task, **{name: [" ".join(e.tokens) for e in s.examples] for name, s in splits.items()}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class ProbeSet:
    """The three probe splits of one run; `save` writes probes.json, positions.csv and critical.npz."""

    def __init__(self, cfg, data: TaskData):
        counts = Counter(t for e in data.train for t in e.tokens)
        counts["<eos>"] = len(data.train)
        self.task = data.name
        self.splits = {name: build_split(name, i, data, cfg, counts) for i, name in enumerate(SPLITS)}
        offset = 0
        for split in self.splits.values():
            split.columns["pos_id"] = list(range(offset, offset + split.n_positions))
            offset += split.n_positions
        self.hash = probe_hash(self.task, self.splits)

    def save(self, directory: Path) -> None:
        """Write the probe files; if they exist, check that they hold these very probe sets."""
        probes_file = directory / "probes.json"
        if probes_file.exists():
            saved = json.loads(probes_file.read_text())["hash"]
            if saved != self.hash:
                raise DiagnosticsError(f"{probes_file} holds different probe sets (hash {saved[:12]} vs "
                                       f"{self.hash[:12]}); the data or diagnostics.seed changed")
            return
        directory.mkdir(parents=True, exist_ok=True)
        write_positions(directory / "positions.csv", [s.columns for s in self.splits.values()])
        arrays = {}
        for name, s in self.splits.items():
            arrays |= {f"{name}/rows": s.critical_rows, f"{name}/candidates": s.candidates,
                       f"{name}/linear": s.linear_choice, f"{name}/hierarchical": s.hier_choice,
                       f"{name}/candidate_tokens": np.array(s.candidate_tokens, dtype=str).reshape(s.candidates.shape)}
        np.savez(directory / "critical.npz", **arrays)
        splits = {name: {"indices": s.indices, "sentences": [" ".join(e.tokens) for e in s.examples]}
                  for name, s in self.splits.items()}
        tmp = probes_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"hash": self.hash, "task": self.task, "splits": splits}))
        tmp.replace(probes_file)  # written last: its presence means the probe files are complete


def write_positions(path: Path, tables: list[dict[str, list]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for table in tables:
            writer.writerows(zip(*(table[c] for c in COLUMNS), strict=True))


POSITIONS_REMEDY = ("copy it from another seed's run of the same task, data and diagnostics.seed (the probe sets "
                    "are identical)")


def read_positions(path: Path) -> dict[str, np.ndarray]:
    """positions.csv as column arrays (integers for INT_COLUMNS, strings otherwise). Malformed lines at the end
    (a torn write, a hand edit) are skipped with one warning; one before a good line would shift every later
    position against the recorded surprisal rows, so it is a CorruptDiagnostics error, as is a missing file."""
    try:
        with path.open(newline="", errors="replace") as f:
            rows = _numbered_rows(f)
    except FileNotFoundError:
        raise corrupt(path, "missing", POSITIONS_REMEDY) from None
    except (OSError, csv.Error) as exc:
        raise corrupt(path, f"unreadable ({exc})", POSITIONS_REMEDY) from None
    if not rows or tuple(rows[0][1]) != COLUMNS:
        raise corrupt(path, f"no {','.join(COLUMNS[:3])},... header", POSITIONS_REMEDY)
    good, bad = [], []
    for line, row in rows[1:]:
        try:
            if len(row) != len(COLUMNS):
                raise ValueError(f"{len(row)} fields, not {len(COLUMNS)}")
            good.append([int(v) if name in INT_COLUMNS else v for name, v in zip(COLUMNS, row, strict=True)])
        except ValueError as exc:
            bad.append((line, str(exc)))
            continue
        if bad:  # a good line after a bad one
            raise corrupt(path, f"line {bad[0][0]} is malformed ({bad[0][1]})", POSITIONS_REMEDY)
    if bad:
        log.warning("grok: warning: %s: skipped %d malformed line(s) at the end (line %d: %s)", path, len(bad),
                    bad[0][0], bad[0][1])
    columns = {name: np.array([r[j] for r in good], dtype=np.int64 if name in INT_COLUMNS else str)
               for j, name in enumerate(COLUMNS)}
    if not np.array_equal(columns["pos_id"], np.arange(len(good))):
        raise corrupt(path, "pos_id does not count 0, 1, 2, ... (lines missing or out of order)", POSITIONS_REMEDY)
    return columns


def _numbered_rows(handle) -> list[tuple[int, list[str]]]:
    """The non-empty CSV rows of `handle` with the line number each starts on."""
    reader = csv.reader(handle)
    out, line = [], 1
    for row in reader:
        if row:
            out.append((line, row))
        line = reader.line_num + 1
    return out


def read_critical(directory: Path) -> dict[str, dict[str, np.ndarray]]:
    """critical.npz as {split: {rows, candidates, linear, hierarchical, candidate_tokens}}; CorruptDiagnostics if
    it is missing or damaged."""
    path = directory / "critical.npz"
    try:
        with np.load(path) as z:
            out: dict[str, dict[str, np.ndarray]] = {}
            for key in z.files:
                split, name = key.split("/")
                out.setdefault(split, {})[name] = z[key]
    except FileNotFoundError:
        raise corrupt(path, "missing", POSITIONS_REMEDY) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise corrupt(path, array_problem(exc), POSITIONS_REMEDY) from None
    return out
