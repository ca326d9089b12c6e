"""Where a run resumes: the checkpoint each member of a single run or seed pack restarts from.

A single run resumes from its newest checkpoint that verifies (checkpoint.load_resume_state: latest.pt, else
previous.pt, else the newest weights-only snapshot). A seed pack's members must restart at one step, and a crash
can land between two members' saves (seed 1 at step 80, seeds 2 and 3 still at 60) or corrupt one member's
latest.pt. Every member keeps two full checkpoints (latest.pt and previous.pt), so the pack resumes from the latest
step that every member can restore exactly; a member that is ahead goes back to that step from its previous.pt
(said on one line: it redoes those steps exactly as before). If the members share no such step, the resume is
refused on one line naming each member's steps and the command that brings them together, before any member's
files change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from grokking.checkpoint import FULL_KEYS, load_resume_state, load_verified, warn_if_legacy
from grokking.errors import RunDirError

log = logging.getLogger(__name__)
FULL_CHECKPOINTS = ("latest.pt", "previous.pt")

ResumePoint = tuple[dict[str, Any] | None, str]  # (checkpoint state or None for a fresh start, its file name)


def full_checkpoint_steps(ckpt_dir: Path, seed: int) -> dict[int, str]:
    """step -> file name of the member's full checkpoints that verify (latest.pt first); a bad file is moved
    aside and said on one line."""
    steps: dict[int, str] = {}
    for name in FULL_CHECKPOINTS:
        loaded = load_verified(ckpt_dir / name, FULL_KEYS)
        if loaded.problem:
            log.warning("seed %d: checkpoint moved aside: %s", seed, loaded.problem, extra={"seed": seed})
        if loaded.state is not None:
            steps.setdefault(int(loaded.state["step"]), name)
    return steps


def pack_resume_points(ckpt_dirs: list[Path], seeds: list[int], fix_command: str) -> list[ResumePoint]:
    """Each member's resume point, all at the latest step every member can restore exactly (see the module
    docstring); RunDirError when there is none. `fix_command` is the pack's command line, for the refusal."""
    if len(ckpt_dirs) == 1:
        return [load_resume_state(ckpt_dirs[0])]
    steps = [full_checkpoint_steps(d, s) for d, s in zip(ckpt_dirs, seeds, strict=True)]
    if not any(steps):  # nothing to resume from, or only weights-only snapshots: each member's fallback
        points = [load_resume_state(d) for d in ckpt_dirs]
        found = {int(state["step"]) if state else 0 for state, _ in points}
        if len(found) > 1:
            refuse(seeds, [{int(s["step"]): n} if s else {} for s, n in points], fix_command)
        return points
    common = set.intersection(*(set(s) for s in steps))
    if not common:
        refuse(seeds, steps, fix_command)
    step = max(common)
    points = []
    for ckpt_dir, seed, available in zip(ckpt_dirs, seeds, steps, strict=True):
        name = available[step]
        loaded = load_verified(ckpt_dir / name, FULL_KEYS)
        if loaded.state is None:  # changed on disk since it was checked: nothing is resumed from a guess
            raise RunDirError(f"{ckpt_dir / name} changed while the seed pack was resuming ({loaded.problem or 'gone'}); "
                              "re-run the same command")
        warn_if_legacy(loaded, name)
        newest = max(available)
        if newest > step:
            log.warning("seed %d: %s is at step %d, ahead of the pack; it resumes from %s at step %d with the "
                        "others (the steps in between are redone exactly)", seed, available[newest], newest, name,
                        step, extra={"seed": seed})
        points.append((loaded.state, name))
    return points


def refuse(seeds: list[int], steps: list[dict[int, str]], fix_command: str) -> None:
    """RunDirError naming each member's restorable steps and how to bring the members to one step."""
    listed = "; ".join(f"seed {seed}: {', '.join(str(s) for s in sorted(found, reverse=True)) or 'none'}"
                       for seed, found in zip(seeds, steps, strict=True))
    target = max((max(found) for found in steps if found), default=0)
    behind = [seed for seed, found in zip(seeds, steps, strict=True) if target not in found]
    raise RunDirError(f"the members of this seed pack share no checkpoint step ({listed}); train "
                      f"{'each of seeds ' + ', '.join(map(str, behind)) if len(behind) > 1 else f'seed {behind[0]}'} "
                      f"alone to step {target} ({fix_command} seed=SEED task.steps={target}), then re-run the pack")
