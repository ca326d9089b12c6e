"""The task registry: one module per task (`qf.py`, `ti.py`, `dyck.py`), each a `grokking.tasks.base.Task`.

The generic code asks `get_task(name)` what a task does and never branches on its name. A task from outside this
package (docs/architecture.md, "Adding a task") registers through the `grok.tasks` entry-point group
(`toy = mypackage.toy:TASK`) and brings its `conf/task/<name>.yaml` on Hydra's search path.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from grokking.errors import ConfigError
from grokking.tasks import dyck, qf, ti
from grokking.tasks.base import ScoredRow, SentenceRoles, Task

log = logging.getLogger(__name__)
ENTRY_POINTS = "grok.tasks"

TASKS: dict[str, Task] = {task.name: task for task in (qf.TASK, ti.TASK, dyck.TASK)}


def register(task: Task) -> Task:
    """Add a task to the registry (its name must be new)."""
    if task.name in TASKS and TASKS[task.name] is not task:
        raise ConfigError(f"task {task.name!r} is registered twice")
    TASKS[task.name] = task
    return task


def _register_installed() -> None:
    for point in entry_points(group=ENTRY_POINTS):
        try:
            task = point.load()
        except Exception as exc:  # a broken plugin must not take the built-in tasks down with it
            log.warning("task plugin %s (%s) does not load: %s", point.name, point.value, exc)
            continue
        if not isinstance(task, Task) or task.name != point.name:
            log.warning("task plugin %s (%s) is not a Task named %r; ignored", point.name, point.value, point.name)
            continue
        register(task)


def get_task(name: str) -> Task:
    """The registered task `name`; ConfigError (one line, naming the known tasks) otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


_register_installed()

__all__ = ["TASKS", "ScoredRow", "SentenceRoles", "Task", "get_task", "register"]
