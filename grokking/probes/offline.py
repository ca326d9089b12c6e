"""`grok probe`: the probes of a finished (or running) run, computed from its saved snapshots.

Reads `<run_dir>/config.yaml`, rebuilds data and model, and probes `ckpt/init.pt` (step 0) and every
`ckpt/snapshots/step_*.pt` on the run's fixed probe sample. Results go to `<run_dir>/probes.jsonl`, one object
per snapshot step sorted by step, rewritten atomically after every snapshot; steps already there are skipped
unless `force` is set. Snapshots are verified like every checkpoint: a corrupt one is moved aside and skipped
with one warning, never probed; snapshots written before content hashes are probed, with one warning per run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf

from grokking.checkpoint import SNAPSHOT_KEYS, list_snapshots, load_verified
from grokking.errors import RunDirError
from grokking.rundir import config_problem
from grokking.runfiles import atomic_write_text

log = logging.getLogger(__name__)
PROBES_FILE = "probes.jsonl"


def read_probes(path: Path) -> dict[int, dict]:
    """step -> record of an existing probes.jsonl (empty if there is none)."""
    if not path.exists():
        return {}
    records = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records[int(record["step"])] = record
        except (ValueError, KeyError, TypeError):
            raise RunDirError(f"{path} line {number} is corrupt; rerun with --force to recompute it") from None
    return records


def write_probes(path: Path, records: dict[int, dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(records[step]) + "\n" for step in sorted(records)))


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor] | None, bool]:
    """The model state of a snapshot and whether it was written before content hashes; (None, False) for a
    corrupt snapshot (moved aside) or one deleted meanwhile, with one warning."""
    loaded = load_verified(path, SNAPSHOT_KEYS)
    if loaded.state is None:
        log.warning("skipping snapshot %s", loaded.problem or f"{path.name} (deleted meanwhile)")
        return None, False
    if not isinstance(loaded.state["model"], dict):
        raise RunDirError(f"snapshot {path} holds no model state dict")
    return loaded.state["model"], loaded.legacy


def read_run_config(path: Path):
    """A run's config.yaml; RunDirError (one line, naming the file) if it holds no grok config."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        problem = f"not text: {exc.reason}"
    else:
        problem = config_problem(text)
    if problem is not None:
        raise RunDirError(f"{path} is not a valid config ({problem}); restore it, or re-run the run's grok train "
                          "command, which moves it aside and rewrites it")
    return OmegaConf.create(text)


def probe_run(run_dir: Path, device: torch.device, force: bool = False,
              echo: Callable[[str], None] = print) -> Path:
    """Probe every snapshot of `run_dir` not yet in probes.jsonl (all of them with `force`); returns its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"no run directory at {run_dir}")
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise RunDirError(f"{run_dir} has no config.yaml; is it a grok run directory?")
    snapshots = list_snapshots(run_dir / "ckpt")
    if not snapshots:
        raise RunDirError(f"{run_dir} has no snapshots (ckpt/init.pt, ckpt/snapshots/step_*.pt)")
    out = run_dir / PROBES_FILE
    records = {} if force else read_probes(out)
    todo = [(step, path) for step, path in snapshots if step not in records]
    if not todo:
        echo(f"{out}: all {len(snapshots)} snapshots already probed (--force recomputes)")
        return out

    from grokking.data import load_task_data
    from grokking.model import build_model
    from grokking.probes import Prober

    cfg = read_run_config(config_path)
    data = load_task_data(cfg)
    model = build_model(cfg.model, data.vocab.size).to(device)
    prober = Prober(cfg, data, run_dir, device)
    skipped = legacy = 0
    for step, path in todo:
        weights, unhashed = load_weights(path)
        if weights is None:
            skipped += 1
            continue
        legacy += unhashed
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise RunDirError(f"snapshot {path} does not fit the run's model ({str(exc).splitlines()[0]})") from None
        records[step] = {"step": step, **prober(model, step)}
        write_probes(out, records)
        summary = ", ".join(f"{key.removeprefix('probe/')}={records[step][key]:.4f}"
                            for key in ("probe/weight_norm_per_layer", "probe/attn_entropy", "probe/tscore")
                            if records[step].get(key) is not None)
        echo(f"step {step}: {summary}")
    if legacy:
        log.warning("%d snapshot(s) of %s written by an older grok, no content hash: probed unverified", legacy,
                    run_dir)
    echo(f"{out}: probed {len(todo) - skipped} of {len(snapshots)} snapshots"
         f"{f' ({skipped} unusable, skipped)' if skipped else ''}")
    return out
