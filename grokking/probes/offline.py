"""`grok probe`: the probes of a finished (or running) run, computed from its saved snapshots.

Reads `<run_dir>/config.yaml`, rebuilds data and model, and probes `ckpt/init.pt` (step 0) and every
`ckpt/snapshots/step_*.pt` on the run's fixed probe sample. Results go to `<run_dir>/probes.jsonl`, one object
per snapshot step sorted by step, rewritten atomically after every snapshot; steps already there are skipped
unless `force` is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf

from grokking.checkpoint import list_snapshots
from grokking.errors import RunDirError

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
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text("".join(json.dumps(records[step]) + "\n" for step in sorted(records)))
    os.replace(tmp, path)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise RunDirError(f"snapshot {path} is unreadable ({reason})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise RunDirError(f"snapshot {path} holds no model state dict")
    return state["model"]


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

    cfg = OmegaConf.load(config_path)
    data = load_task_data(cfg)
    model = build_model(cfg.model, data.vocab.size).to(device)
    prober = Prober(cfg, data, run_dir, device)
    for step, path in todo:
        try:
            model.load_state_dict(load_weights(path))
        except RuntimeError as exc:
            raise RunDirError(f"snapshot {path} does not fit the run's model ({str(exc).splitlines()[0]})") from None
        records[step] = {"step": step, **prober(model, step)}
        write_probes(out, records)
        summary = ", ".join(f"{key.removeprefix('probe/')}={records[step][key]:.4f}"
                            for key in ("probe/weight_norm_per_layer", "probe/attn_entropy", "probe/tscore")
                            if records[step].get(key) is not None)
        echo(f"step {step}: {summary}")
    echo(f"{out}: probed {len(todo)} of {len(snapshots)} snapshots")
    return out
