"""Checkpoints: `latest.pt` (full training state, rotated to `previous.pt`), `init.pt` and weights-only
analysis snapshots `snapshots/step_XXXXXXXXX.pt`.

What a member's latest.pt holds is said in one place, `training_state`, and how it is restored in another,
`restore_training_state`; their key names are the file format (checkpoints of older grok load by them).

Every write goes to a temporary file, is fsynced and renamed into place, so a SIGKILL or submitit's
SystemExit mid-save never leaves a truncated checkpoint under a real name; a failed write removes its
temporary file and names the path on one line. Loads use `weights_only=True`: the training state holds only
tensors and plain Python values.

Integrity: torch's zip container has no checksum on tensor data, so a flipped bit would load silently. Every
checkpoint therefore carries `content_sha256`, a SHA-256 of everything else in it (tensor dtypes, shapes and
bytes, plain values), and every load recomputes it. A file that fails (hash mismatch, truncated, unreadable,
a directory) is moved aside to `<name>.corrupt-<time>` (never deleted, never rotated into previous.pt), the
fallback is logged on one line and `grok status` lists it. Rotation demotes latest.pt only once it verifies.
A checkpoint written before the hash existed (no `content_sha256`) is accepted if it loads and has the required
keys: resuming from one says so on one line, and the next save writes latest.pt with a hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from grokking.model import build_model
from grokking.rundir import refuse_changed_config
from grokking.runfiles import atomic_write, move_aside

if TYPE_CHECKING:
    from grokking.ema import WeightAverages
    from grokking.member import Member
    from grokking.step import PackStep, SingleStep

log = logging.getLogger(__name__)
SNAPSHOT_PATTERN = re.compile(r"step_(\d{9})\.pt$")
DIGEST_KEY = "content_sha256"
FULL_KEYS = ("model", "optimizer", "step", "rng")
SNAPSHOT_KEYS = ("model", "step")


def content_digest(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's content: dict keys and order, tensor dtypes, shapes and bytes, plain values."""
    digest = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            tensor = obj.detach().cpu().contiguous().reshape(-1)
            digest.update(f"T{tensor.dtype}{tuple(obj.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy())
        elif isinstance(obj, dict):
            digest.update(f"D{len(obj)}".encode())
            for key, value in obj.items():
                feed(key)
                feed(value)
        elif isinstance(obj, list | tuple):
            digest.update(f"L{len(obj)}".encode())
            for value in obj:
                feed(value)
        else:
            digest.update(f"V{type(obj).__name__}:{obj!r};".encode())

    feed(state)
    return digest.hexdigest()


def save(state: dict[str, Any], path: Path, before_replace=None) -> None:
    """Atomically write `state` with its content hash (`before_replace` runs just before the rename)."""
    stamped = {**state, DIGEST_KEY: content_digest(state)}
    atomic_write(path, lambda handle: torch.save(stamped, handle), before_replace)


class Verified(NamedTuple):
    state: dict[str, Any] | None  # None for a missing or a bad file
    problem: str | None = None  # why a file is unusable (None for a good or a missing one)
    legacy: bool = False  # written by an older grok, before content hashes: loaded unverified


def verify(path: Path, required: tuple[str, ...]) -> Verified:
    """Load and check a checkpoint: readable, a dict, its content hash (if it has one) and the required keys."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return Verified(None)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, IsADirectoryError, ...
        return Verified(None, f"unreadable: {(str(exc).splitlines() or [type(exc).__name__])[0][:100]}")
    if not isinstance(state, dict):
        return Verified(None, "not a checkpoint")
    digest = state.pop(DIGEST_KEY, None)
    if digest is not None and digest != content_digest(state):
        return Verified(None, "content hash mismatch")
    missing = [key for key in required if key not in state]
    if missing:
        return Verified(None, f"incomplete (no {', '.join(missing)})")
    return Verified(state, legacy=digest is None)


def load_verified(path: Path, required: tuple[str, ...]) -> Verified:
    """Like verify(), but a bad file is moved aside; `problem` then says so, for the caller's one log line."""
    loaded = verify(path, required)
    if loaded.problem is not None:
        return loaded._replace(problem=f"{path.name} ({loaded.problem}) -> {move_aside(path).name}")
    return loaded


def save_latest(state: dict[str, Any], ckpt_dir: Path) -> None:
    """Write the full state as latest.pt, keeping the one before as previous.pt (a fallback if latest breaks).
    The old latest.pt is demoted only if it verifies; a corrupt one is moved aside and previous.pt stays."""
    latest = ckpt_dir / "latest.pt"

    def demote() -> None:
        if not (latest.exists() or latest.is_symlink()):
            return
        problem = load_verified(latest, FULL_KEYS).problem
        if problem is None:
            os.replace(latest, ckpt_dir / "previous.pt")
        else:
            log.warning("latest.pt is corrupt, so previous.pt is kept; moved aside: %s", problem)

    save(state, latest, before_replace=demote)


def snapshot_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / "snapshots" / f"step_{step:09d}.pt"


def save_snapshot(model_state: dict[str, torch.Tensor], step: int, path: Path) -> None:
    save({"step": step, "model": model_state}, path)


def list_snapshots(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every analysis snapshot, init.pt as step 0, oldest first."""
    found = [(0, ckpt_dir / "init.pt")] if (ckpt_dir / "init.pt").exists() else []
    for path in (ckpt_dir / "snapshots").glob("step_*.pt"):
        match = SNAPSHOT_PATTERN.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def load_resume_state(ckpt_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """The newest verified state and where it came from: latest.pt, else previous.pt (full state), else the
    newest weights-only snapshot (optimizer moments are then re-initialised: not an exact resume). Files that
    fail verification are moved aside; a fallback, or a file without a content hash, is logged on one line."""
    corrupt = []
    for name in ("latest.pt", "previous.pt"):
        loaded = load_verified(ckpt_dir / name, FULL_KEYS)
        if loaded.problem:
            corrupt.append(loaded.problem)
        if loaded.state is not None:
            if corrupt:
                log.warning("latest.pt is corrupt; resuming from %s (step %d); moved aside: %s", name,
                            loaded.state["step"], "; ".join(corrupt))
            warn_if_legacy(loaded, name)
            return loaded.state, name
    for step, path in reversed(list_snapshots(ckpt_dir)):
        loaded = load_verified(path, SNAPSHOT_KEYS)
        if loaded.problem:
            corrupt.append(loaded.problem)
        if loaded.state is not None and step > 0:
            log.warning("no usable full checkpoint%s; resuming from weights-only snapshot %s (step %d): optimizer "
                        "state is re-initialised, so this segment is not bit-identical to an uninterrupted run",
                        f" (moved aside: {'; '.join(corrupt)})" if corrupt else "", path.name, step)
            warn_if_legacy(loaded, path.name)
            return loaded.state, path.name
    if corrupt:
        log.warning("no usable checkpoint; starting from step 0; moved aside: %s", "; ".join(corrupt))
    return None, ""


def warn_if_legacy(loaded: Verified, name: str) -> None:
    if loaded.legacy:
        log.warning("%s was written by an older grok, no content hash; re-saved with one at the next save", name)


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def training_state(step_fn: SingleStep | PackStep, k: int, member: Member, step: int, device: torch.device,
                   elapsed_s: float, averages: WeightAverages | None,
                   window_sums: list[list[float]]) -> dict[str, Any]:
    """Member k's full training state at `step`, in the single-run layout: its weights, AdamW state and the RNG
    states (for an exact resume), its weight averages, and its bookkeeping (epoch, run id, config hash, training
    time so far, `window_sums`: the sums of its open log and evaluation loss windows)."""
    state = {"model": step_fn.model_of(k).state_dict(), "optimizer": step_fn.optimizer_state(k),
             "step": step, "epoch": member.batches.epoch_of(step), "rng": rng_state(device),
             "run_id": member.run_id, "config_hash": member.hash, "elapsed_s": elapsed_s,
             "window_sums": window_sums}
    if averages is not None:
        state["ema"] = averages.member_state(k)
    return state


def restore_training_state(members: list[Member], found: list[tuple[dict[str, Any], str]],
                           step_fn: SingleStep | PackStep, averages: WeightAverages | None, model_cfg,
                           vocab_size: int, device: torch.device) -> None:
    """Every member from its checkpoint state (`found`: state and file name, all at one step): weights and
    AdamW state (fresh AdamW state if any is a weights-only snapshot), the RNG states, weight averages and the
    bookkeeping; each run's logs are cut back to that step. RunDirError if a checkpoint was saved with another
    training config (resume=force continues it anyway)."""
    models, optimizer_states = [], []
    for member, (state, source) in zip(members, found, strict=True):
        saved_hash = state.get("config_hash")
        if saved_hash is not None and saved_hash != member.hash and member.cfg.resume != "force":
            refuse_changed_config(member.run_dir, member.cfg, saved_hash)
        model = build_model(model_cfg, vocab_size).to(device)
        model.load_state_dict(state["model"])
        models.append(model)
        optimizer_states.append(state.get("optimizer"))
        member.saved_step = int(state["step"])
        member.elapsed_before = float(state.get("elapsed_s", 0.0))
        member.run_id = state.get("run_id", member.run_id)
        member.resumed_sums = state.get("window_sums")
        member.run_dir.truncate_after(member.saved_step)
        if member.diagnostics is not None:
            member.diagnostics.truncate_after(member.saved_step)
        member.resumed_from = source
        log.info("resuming %s from %s at step %d", member.run_dir.path, source, member.saved_step,
                 extra={"seed": member.seed})
    if all(s is not None for s in optimizer_states):
        step_fn.load(models, optimizer_states)
        restore_rng(found[0][0]["rng"], device)
    else:  # weights-only checkpoints: fresh optimizer state
        step_fn.load(models, [step_fn.optimizer_state(k) for k in range(len(models))])
    if averages is not None:
        for k, (member, (state, source)) in enumerate(zip(members, found, strict=True)):
            averages.load_member(k, state.get("ema"), f"{member.run_dir.ckpt / source}")
