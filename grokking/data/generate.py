"""Generate a task's three splits from scratch, deterministically from the data seed."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from grokking import tasks  # a module, not its names: the task modules import grokking.data
from grokking.data.examples import Example

GENERATOR_VERSION = 2  # bump whenever generated data would change; it is part of the cache key


def generation_config(task) -> dict[str, Any]:
    """The settings that determine the generated data (cfg.task fields plus the seed go in; see store.py)."""
    return {"task": task.name, "n_train": task.n_train, "n_val": task.n_val, "n_gen": task.n_gen,
            **tasks.get_task(task.name).generation_params(task)}


def generate(config: dict[str, Any], seed: int) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, val, gen) for `config` (from generation_config); the same seed gives the same data."""
    name = config["task"]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return tasks.get_task(name).generate(rng, config["n_train"], config["n_val"], config["n_gen"], config)
