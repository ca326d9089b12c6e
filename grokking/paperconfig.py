"""Is a run the paper's configuration? The reference is what `grok train task=<t>` composes: the schema's defaults
with `conf/task/<t>.yaml`, `conf/model/transformer.yaml` and `conf/optim/adamw.yaml` (docs/paper-vs-code.md says
where that follows the original code rather than the paper's text).

    python -c "from grokking.paperconfig import paper_differences; print(paper_differences({'task.name': 'qf'}))"

Depth and seed are what a paper grid varies, and the data cache location changes nothing that is trained, so
neither counts as a difference.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

import conf
from grokking.config import GrokConfig
from grokking.rundir import training_config

CONF_DIR = Path(conf.__file__).resolve().parent
IGNORED = ("seed", "depth", "model.n_layers", "data.dir")
PAPER_TASKS = ("qf", "ti", "dyck")  # the tasks the paper trained (conf/experiment/paper_<task>.yaml)


@cache
def paper_training_config(task: str) -> dict[str, Any]:
    """The flattened training config of the paper's setting for `task` (without depth, seed, data.dir)."""
    cfg = OmegaConf.merge(OmegaConf.structured(GrokConfig),
                          {"task": OmegaConf.load(CONF_DIR / "task" / f"{task}.yaml"),
                           "model": OmegaConf.load(CONF_DIR / "model" / "transformer.yaml"),
                           "optim": OmegaConf.load(CONF_DIR / "optim" / "adamw.yaml")})
    return {k: v for k, v in training_config(cfg).items() if k not in IGNORED}


def paper_differences(training: dict[str, Any]) -> list[str]:
    """Keys of a flattened training config (`rundir.training_config`) that differ from the paper's setting of its
    task; `["task.name"]` when the task is not one of the paper's."""
    task = training.get("task.name")
    if task not in PAPER_TASKS:
        return ["task.name"]
    reference = paper_training_config(task)
    ours = {k: v for k, v in training.items() if k not in IGNORED}
    return sorted(k for k in reference.keys() | ours.keys() if reference.get(k) != ours.get(k))
