"""Is a run the paper's configuration? The reference is what `grok train task=<t>` composes from conf/ (its
`conf/task/<t>.yaml`, `conf/model/transformer.yaml`, `conf/optim/adamw.yaml`, ...), without the per-machine
`conf/local/` (docs/paper-vs-code.md says where that follows the original code rather than the paper's text).

    python -c "from grokking.paperconfig import paper_differences; print(paper_differences({'task.name': 'qf'}))"

Depth and seed are what a paper grid varies, and the data cache location changes nothing that is trained, so
neither counts as a difference.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from grokking.config import CONFIG_DIR, compose
from grokking.rundir import training_config

IGNORED = ("seed", "depth", "model.n_layers", "data.dir")
PAPER_TASKS = ("qf", "ti", "dyck")  # the tasks the paper trained (conf/experiment/paper_<task>.yaml)
LOCAL = Path(CONFIG_DIR) / "local" / "default.yaml"  # git-ignored per-machine overrides: no part of the paper's setting


@cache
def paper_training_config(task: str) -> dict[str, Any]:
    """The flattened training config of the paper's setting for `task` (without depth, seed, data.dir)."""
    cfg = compose([f"task={task}", *(["~local"] if LOCAL.is_file() else [])])  # Hydra cannot drop an absent one
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
