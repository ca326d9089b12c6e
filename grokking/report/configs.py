"""Which runs share a training config, so a report never averages runs trained differently.

A run's training config is what `grokking.rundir.training_config` hashes (everything that determines the trained
weights, not cadences, paths or loggers), read from its `config.yaml`, without the seed and the depth: seeds are
what a report averages over and depths are its rows. Runs of one task and tag with different training configs
become different experiments, each labelled with its values of the keys in which they differ
(`qf-smoke [model.d_model=32]` vs `qf-smoke [model.d_model=64]`); a run without a readable config is its own
`[config unknown]` experiment. Whether a config is the paper's is `grokking.paperconfig.paper_differences`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any

from omegaconf import OmegaConf

from grokking.paperconfig import IGNORED
from grokking.rundir import training_config

UNKNOWN = "config unknown"
MAX_LABEL_KEYS = 4  # keys named in a label; further differences show as "+N more"


def training_of(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The flattened training config of a parsed `config.yaml`, without seed and depth; None if it has no task
    and train sections (not a config grok wrote)."""
    if not isinstance(cfg.get("task"), dict) or not isinstance(cfg.get("train"), dict):
        return None
    try:
        flat = training_config(OmegaConf.create(cfg))
    except Exception:  # an odd hand-edited config.yaml: treat the config as unknown, never fail the report
        return None
    return {k: v for k, v in flat.items() if k not in IGNORED}


def config_id(training: dict[str, Any] | None) -> str | None:
    if training is None:
        return None
    return hashlib.sha256(json.dumps(training, sort_keys=True, default=str).encode()).hexdigest()[:12]


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1]


def variant_label(training: dict[str, Any] | None, keys: list[str]) -> str:
    if training is None:
        return f" [{UNKNOWN}]"
    shown = [f"{k}={json.dumps(training.get(k), default=str)}" for k in keys[:MAX_LABEL_KEYS]]
    more = len(keys) - MAX_LABEL_KEYS
    return " [" + ", ".join(shown) + (f", +{more} more" if more > 0 else "") + "]"


def label_variants(runs: list[Any]) -> None:
    """Set `run.variant` for every run whose task and tag hold more than one training config."""
    by_experiment: dict[tuple[Any, str], dict[str | None, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        by_experiment[(run.task, run.tag)][config_id(run.training)].append(run)
    for variants in by_experiment.values():
        if len(variants) < 2:
            continue
        known = [members[0].training for cid, members in variants.items() if cid is not None]
        keys = differing_keys(known)
        for members in variants.values():
            for run in members:
                run.variant = variant_label(run.training, keys)
