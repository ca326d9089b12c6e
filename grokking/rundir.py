"""The run directory: one per config, derived from it (`runs/<task>/depth=<d>/seed=<s>`).

It holds the resolved `config.yaml`, `meta.json` (provenance), `status.json`, the append-only
`metrics.jsonl` (source of truth) and `train_log.jsonl`, `train.log`, and `ckpt/`. A lock file keeps a
second process out of a busy run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import math
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from grokking.errors import RunDirError
from grokking.runfiles import (
    append_line,
    atomic_write_text,
    move_aside,
    read_log,
    remove_stale_temp_files,
    write_error,
)

log = logging.getLogger(__name__)

STATUSES = ("running", "done", "failed", "preempted")
RUN_FILES = ("ckpt", "metrics.jsonl", "train_log.jsonl", "status.json", "meta.json", "config.yaml", "train.log",
             "probe_sample.json", "probes.jsonl", "diagnostics")
# Config keys that may change between segments of one run without changing what is trained.
NOT_HASHED = ("logger", "paths", "run_dir", "device", "force", "resume", "tag", "export", "probes", "diagnostics",
              "eval", "seeds")  # a pack member trains what its seed's single run trains
NOT_HASHED_TRAIN = ("steps", "eval_every", "log_every", "probe_every", "save_every", "snapshot_every", "eval_batch_size")
NOT_HASHED_TASK = ("steps", "eval_every", "eval_gen_sample", "eval_gen_fixed", "dyck_eval_prefixes", "dyck_min_dep")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def training_config(cfg: DictConfig) -> dict[str, Any]:
    """Everything that determines the trained weights (not cadences, paths or loggers), flattened."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    for key in NOT_HASHED:
        tree.pop(key, None)
    for key in NOT_HASHED_TRAIN:
        tree["train"].pop(key, None)
    for key in NOT_HASHED_TASK:
        tree["task"].pop(key, None)

    def flat(node: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(node, dict):
            return {k: v for key, value in node.items() for k, v in flat(value, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): node}

    return flat(tree)


def config_hash(cfg: DictConfig) -> str:
    return hashlib.sha256(json.dumps(training_config(cfg), sort_keys=True).encode()).hexdigest()[:16]


def changed_training_keys(saved: DictConfig, current: DictConfig) -> list[str]:
    old, new = training_config(saved), training_config(current)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def config_problem(text: str) -> str | None:
    """Why `text` is not a grok config.yaml (not YAML, not a mapping, no training config), or None if it is one."""
    try:
        cfg = OmegaConf.create(text) if text.strip() else None
        if not isinstance(cfg, DictConfig):
            return "not a YAML mapping"
        training_config(cfg)
    except yaml.YAMLError as exc:
        return f"not YAML: {str(exc).splitlines()[0]}"
    except KeyError as exc:
        return f"not a grok config: no key {exc}"
    except (OmegaConfBaseException, TypeError, AttributeError, ValueError) as exc:
        return f"not a grok config: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.ckpt = self.path / "ckpt"
        self.snapshots = self.ckpt / "snapshots"
        self._lock_handle = None

    # -- files -----------------------------------------------------------------------------------------
    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def train_log_file(self) -> Path:
        return self.path / "train_log.jsonl"

    def status(self) -> dict[str, Any] | None:
        """status.json as a record (a known status and an integer step), or None if it is missing or is no such
        record (not JSON, a list, a string, a hand edit): then the checkpoints decide where the run stands."""
        path = self.path / "status.json"
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(record, dict) or record.get("status") not in STATUSES:
            return None
        step = record.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            return None
        return record

    def write_status(self, status: str, step: int, reason: str | None = None) -> None:
        assert status in STATUSES, status
        record = {"status": status, "reason": reason, "step": step, "updated": now(), "pid": os.getpid(),
                  "host": socket.gethostname()}
        atomic_write_text(self.path / "status.json", json.dumps(record, indent=1) + "\n")

    def append_jsonl(self, path: Path, record: dict[str, Any]) -> None:
        append_line(path, json.dumps({k: json_safe(v) for k, v in record.items()}))

    def truncate_after(self, step: int) -> None:
        """Drop log records past `step` (written after the checkpoint we resume from; they will be redone) and
        malformed lines (skipped with one warning)."""
        for path in (self.metrics_file, self.train_log_file):
            if path.exists():
                kept = [r for r in read_log(path) if r["step"] <= step]
                atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def archive(self) -> Path | None:
        """Move the files of the run in this directory to archive/<time>/ (never delete what a run wrote)."""
        present = [n for n in RUN_FILES if (self.path / n).exists()]
        if not present:
            return None
        target = self.path / "archive" / now().replace(":", "-")
        try:
            target.mkdir(parents=True)
            for name in present:
                os.replace(self.path / name, target / name)
        except OSError as exc:
            raise write_error(target, exc) from None
        return target

    # -- lifecycle -------------------------------------------------------------------------------------
    def create(self) -> None:
        """Make the directory (and check it is writable)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"cannot write run directory {self.path}: {exc.strerror or exc}") from None

    def remove_if_unused(self) -> None:
        """Remove the directory if nothing but its lock and an empty train.log is in it (a command that created
        it and then refused to train leaves nothing behind)."""
        with contextlib.suppress(OSError):
            names = {p.name for p in self.path.iterdir()}
            log_file = self.path / "train.log"
            if names <= {".lock", "train.log"} and (not log_file.exists() or log_file.stat().st_size == 0):
                for name in names:
                    (self.path / name).unlink()
                self.path.rmdir()

    def lock(self) -> None:
        """Take an exclusive lock for this process's lifetime; a second process is refused."""
        handle = open(self.path / ".lock", "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirError(f"run directory {self.path} is busy (held by {holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._lock_handle = handle
        # with the lock held no other trainer writes here: a temporary file of a dead writer is a SIGKILL's leftover
        removed = remove_stale_temp_files(self.path, self.ckpt, self.snapshots)
        if removed:
            log.info("grok: removed %d stale temporary file(s) of killed processes: %s", len(removed),
                     ", ".join(str(p.relative_to(self.path)) for p in removed))

    def release(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def save_config(self, cfg: DictConfig) -> None:
        atomic_write_text(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    def saved_config(self) -> DictConfig | None:
        """The run's config.yaml, or None if there is none. One that holds no grok config (not YAML, a torn write,
        a hand edit) says nothing about the run: it is moved aside to `config.yaml.corrupt-<time>` (never deleted)
        with one warning and None is returned, so the checkpoint's config hash decides whether a command's config
        matches the run; the next training segment rewrites config.yaml from its command's config."""
        path = self.path / "config.yaml"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            problem = f"not text: {exc.reason}"
        except OSError as exc:
            raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
        else:
            problem = config_problem(text)
        if problem is None:
            return OmegaConf.create(text)
        target = move_aside(path)
        log.warning("grok: %s is not a valid config (%s); moved aside to %s; the run's checkpoint decides whether "
                    "this command's config matches, and config.yaml is rewritten from it", path, problem, target.name)
        return None

    def saved_config_hash(self) -> str | None:
        """The training-config hash meta.json recorded for the last segment (None if unknown)."""
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads((self.path / "meta.json").read_text())
            value = meta.get("config_hash") if isinstance(meta, dict) else None
            return value if isinstance(value, str) else None
        return None

    def write_meta(self, cfg: DictConfig, device: str, extra: dict[str, Any]) -> str | None:
        """Record this segment in meta.json (the segments before it are kept as start times). Returns how this
        segment's arithmetic (`extra["arithmetic"]`: the device, and on the CPU its thread count) differs from the
        previous segment's, or None: a resumed run then continues correctly, but not bit for bit as an
        uninterrupted run would (another reduction order, and grokking curves amplify the difference)."""
        meta = {"started": now(), "config_hash": config_hash(cfg), "command": " ".join(sys.argv),
                "host": socket.gethostname(), "python": platform.python_version(), "device": device,
                "packages": package_versions(), "git": git_state(), "slurm": slurm_ids(), **extra}
        history_path = self.path / "meta.json"
        previous: dict[str, Any] = {}
        if history_path.exists():
            with contextlib.suppress(OSError, json.JSONDecodeError):
                loaded = json.loads(history_path.read_text())
                previous = loaded if isinstance(loaded, dict) else {}
        segments = previous.get("segments") if isinstance(previous.get("segments"), list) else []
        atomic_write_text(history_path, json.dumps({**meta, "segments": [*segments, meta["started"]]}, indent=1) + "\n")
        before, after = previous.get("arithmetic"), meta.get("arithmetic")
        if not extra.get("resumed_at_step") or not isinstance(before, dict) or not after or before == after:
            return None
        return f"{describe_arithmetic(before)}, now {describe_arithmetic(after)}"


def describe_arithmetic(arithmetic: dict[str, Any]) -> str:
    """`cpu, 2 threads` or `cuda (NVIDIA H100 80GB HBM3)`."""
    device = arithmetic.get("device", "?")
    if "threads" in arithmetic:
        return f"{device}, {arithmetic['threads']} thread{'s' if arithmetic['threads'] != 1 else ''}"
    return f"{device} ({arithmetic['gpu']})" if arithmetic.get("gpu") else str(device)


def refuse_changed_config(run_dir: RunDir, cfg: DictConfig, saved_hash: str | None = None) -> None:
    """RunDirError naming the changed training keys if the run in `run_dir` was trained with another config
    (by its checkpoint's config hash when given, else by its config.yaml)."""
    saved_cfg = run_dir.saved_config()  # None if missing, or not a config (then moved aside, with one warning)
    diff = changed_training_keys(saved_cfg, cfg) if saved_cfg is not None else []
    if saved_cfg is None and saved_hash is None:
        saved_hash = run_dir.saved_config_hash()  # meta.json's record of the last segment, when there is one
    if diff or (saved_hash is not None and saved_hash != config_hash(cfg)):
        shown = 8  # every changed key up to this many, then a count
        keys = ", ".join(diff[:shown]) + (f", and {len(diff) - shown} more" if len(diff) > shown else "")
        raise RunDirError(f"{run_dir.path} holds a run with a different training config "
                          f"({keys or 'config hash differs'}); use resume=force to continue it "
                          f"anyway, force=true to start over, or another tag=/run_dir=")
    if saved_cfg is None and saved_hash is not None and not (run_dir.path / "config.yaml").exists():
        run_dir.save_config(cfg)  # moved aside or lost, and the run's hash says this config is the run's


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("grok", "torch", "numpy", "hydra-core", "omegaconf", "nltk", "submitit", "wandb"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def git_state() -> dict[str, Any] | None:
    """SHA and dirty flag of the source checkout, when grok runs from one."""
    source = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha, "dirty": bool(dirty)}


def slurm_ids() -> dict[str, str]:
    keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT", "SLURM_JOB_NODELIST")
    return {k: os.environ[k] for k in keys if k in os.environ}
