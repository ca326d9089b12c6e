"""Checkpoints: `latest.pt` (full training state, rotated to `previous.pt`), `init.pt` and weights-only
analysis snapshots `snapshots/step_XXXXXXXXX.pt`.

Every write goes to a temporary file, is fsynced and renamed into place, so a SIGKILL or submitit's
SystemExit mid-save never leaves a truncated checkpoint under a real name. Loads use `weights_only=True`:
the training state holds only tensors and plain Python values.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)
SNAPSHOT_PATTERN = re.compile(r"step_(\d{9})\.pt$")


def atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_latest(state: dict[str, Any], ckpt_dir: Path) -> None:
    """Write the full state as latest.pt, keeping the one before as previous.pt (a fallback if latest breaks)."""
    latest = ckpt_dir / "latest.pt"
    tmp = ckpt_dir / f".latest.pt.tmp{os.getpid()}"
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    if latest.exists():
        os.replace(latest, ckpt_dir / "previous.pt")
    os.replace(tmp, latest)


def snapshot_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / "snapshots" / f"step_{step:09d}.pt"


def save_snapshot(model_state: dict[str, torch.Tensor], step: int, path: Path) -> None:
    atomic_save({"step": step, "model": model_state}, path)


def list_snapshots(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every analysis snapshot, init.pt as step 0, oldest first."""
    found = [(0, ckpt_dir / "init.pt")] if (ckpt_dir / "init.pt").exists() else []
    for path in (ckpt_dir / "snapshots").glob("step_*.pt"):
        match = SNAPSHOT_PATTERN.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def try_load(path: Path, required: tuple[str, ...]) -> dict[str, Any] | None:
    """Load a checkpoint, or return None (with a warning) if it is missing pieces, truncated or corrupt."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for broken files
        log.warning("checkpoint %s is unreadable (%s); ignoring it", path, str(exc).splitlines()[0][:120])
        return None
    if not isinstance(state, dict) or any(key not in state for key in required):
        log.warning("checkpoint %s is incomplete; ignoring it", path)
        return None
    return state


def load_resume_state(ckpt_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """The newest usable state and where it came from: latest.pt, else previous.pt (full state), else the
    newest weights-only snapshot (optimizer moments are then re-initialised: not an exact resume)."""
    full_keys = ("model", "optimizer", "step", "rng")
    for name in ("latest.pt", "previous.pt"):
        state = try_load(ckpt_dir / name, full_keys)
        if state is not None:
            if name != "latest.pt" and (ckpt_dir / "latest.pt").exists():
                log.warning("latest.pt is corrupt; resuming from previous.pt (step %d)", state["step"])
            return state, name
    for step, path in reversed(list_snapshots(ckpt_dir)):
        state = try_load(path, ("model", "step"))
        if state is not None and step > 0:
            log.warning("no usable full checkpoint; resuming from weights-only snapshot %s (step %d): optimizer "
                        "state is re-initialised, so this segment is not bit-identical to an uninterrupted run",
                        path.name, step)
            return state, path.name
    return None, ""
