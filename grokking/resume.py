"""Which runs train, and where each resumes.

Which: `members_to_train` skips a finished run (refusing one whose training config changed: resume=force
continues it anyway), archives an old one (force=true, resume=never) and leaves a pack member that failed
earlier out of the pack (it is retried alone: `member_command`).

Where: the checkpoint each member of a single run or seed pack restarts from.

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

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from grokking.checkpoint import FULL_KEYS, load_resume_state, load_verified, warn_if_legacy
from grokking.console import summary
from grokking.errors import RunDirError, TrainingFailed
from grokking.loggers import attach_file_log
from grokking.member import Member
from grokking.rundir import RunDir, refuse_changed_config
from grokking.runfiles import read_metrics

log = logging.getLogger(__name__)
FULL_CHECKPOINTS = ("latest.pt", "previous.pt")

ResumePoint = tuple[dict[str, Any] | None, str]  # (checkpoint state or None for a fresh start, its file name)


@contextlib.contextmanager
def members_to_train(member_cfgs: list[DictConfig],
                     run_dirs: list[RunDir]) -> Iterator[tuple[list[Member], list[str]]]:
    """The members that train, and one line per pack member left out because it failed earlier (TrainingFailed
    if every member did). Each member's log lines go to its train.log until the `with` block ends."""
    packed = len(member_cfgs) > 1
    handlers, chosen, left_out = [], [], []
    try:
        for cfg, run_dir in zip(member_cfgs, run_dirs, strict=True):
            status = run_dir.status()
            archived = run_dir.archive() if cfg.force or cfg.resume == "never" else None
            handlers.append(attach_file_log(run_dir, cfg.seed if packed else None))
            if archived:
                log.info("%s: previous run files moved to %s", "force=true" if cfg.force else "resume=never",
                         archived, extra={"seed": cfg.seed})
            elif status and status["status"] == "done" and status["step"] >= cfg.train.steps:
                if cfg.resume != "force":
                    refuse_changed_config(run_dir, cfg)
                log.info("grok: %s is already done at step %d (force=true retrains it)\n%s", run_dir.path,
                         status["step"], summary(read_metrics(run_dir.metrics_file)[0], cfg.run_dir, status["step"]),
                         extra={"seed": cfg.seed})
                continue
            elif status and cfg.resume != "force":  # refuse before anything is written to another config's run
                refuse_changed_config(run_dir, cfg)
            if packed and not archived and status and status["status"] == "failed":
                log.warning("grok: %s failed earlier (%s); left out of the pack: retry it alone with seed=%d",
                            run_dir.path, status.get("reason"), cfg.seed, extra={"seed": cfg.seed})
                left_out.append(f"seed {cfg.seed} failed earlier, left out (retry it alone with seed={cfg.seed})")
                continue
            chosen.append(Member(cfg, run_dir, status))
        if not chosen and left_out:
            raise TrainingFailed(f"nothing trained: every member of the seed pack failed earlier "
                                 f"({', '.join(left_out)})")
        yield chosen, left_out
    finally:
        for handler in handlers:
            logging.getLogger("grokking").removeHandler(handler)
            handler.close()


def resume_points(members: list[Member]) -> list[ResumePoint]:
    """Where each member resumes (`pack_resume_points`), or a fresh start for all (resume=never)."""
    if members[0].cfg.resume == "never":
        return [(None, "")] * len(members)
    return pack_resume_points([m.run_dir.ckpt for m in members], [m.seed for m in members], member_command())


def member_command() -> str:
    """This command line without its seed/seeds overrides: with `seed=S` added, it trains member S alone."""
    kept = [a for a in sys.argv[1:] if not a.startswith("-") and not a.lstrip("+~").startswith(("seed=", "seeds="))]
    return " ".join(["grok train", *kept])


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
