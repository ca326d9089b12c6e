"""Generate a task's three splits from scratch, deterministically from the data seed."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from grokking.data import dyck, qf, splits, ti
from grokking.data.examples import Example
from grokking.data.grammar import SentenceSampler

GENERATOR_VERSION = 2  # bump whenever generated data would change; it is part of the cache key


def generation_config(task) -> dict[str, Any]:
    """The settings that determine the generated data (cfg.task fields plus the seed go in; see store.py)."""
    config = {"task": task.name, "n_train": task.n_train, "n_val": task.n_val, "n_gen": task.n_gen}
    if task.name == "dyck":
        config.update(dyck_k=task.dyck_k, dyck_m=task.dyck_m, dyck_min_len=task.dyck_min_len)
    return config


def generate(config: dict[str, Any], seed: int) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, val, gen) for `config` (from generation_config); the same seed gives the same data."""
    name = config["task"]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    sizes = config["n_train"], config["n_val"], config["n_gen"]
    if name == "dyck":
        return dyck.generate(rng, *sizes, config["dyck_k"], config["dyck_m"], config["dyck_min_len"])
    language = {"qf": qf, "ti": ti}[name]
    gen_grammar = {"qf": "qf_gen"}.get(name, name)  # QF's gen set has McCoy's own weights (question_gen.cfg)
    return splits.build(language.candidates(SentenceSampler(name), rng, generalisation=False),
                        language.candidates(SentenceSampler(gen_grammar), rng, generalisation=True), *sizes)
