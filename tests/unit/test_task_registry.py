"""What a task is lives in its own module under grokking/tasks/: the generic code asks the registry and never
branches on a task's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grokking.errors import ConfigError
from grokking.tasks import TASKS, Task, get_task, register

ROOT = Path(__file__).resolve().parents[2]
NAME = r"""["'](?:qf|ti|dyck)["']"""
DISPATCH = re.compile(rf"""(?:==|!=)\s*{NAME}|{NAME}\s*(?:==|!=)|\bin\s*[(\[{{]\s*{NAME}|[{{,]\s*{NAME}\s*:\s*[^\]]""")
# The languages a task module builds on (grammars, lexicon, parser, generators) are keyed by grammar name; the
# paper's published numbers and released files are facts about its three tasks, not behaviour.
LANGUAGES = {f"grokking/data/{name}.py" for name in ("qf", "ti", "dyck", "grammar", "lexicon", "trees")}
FACTS = {"grokking/report/published.py", "grokking/report/released.py"}


def test_no_module_outside_tasks_dispatches_on_a_task_name():
    offenders = []
    for path in sorted([*ROOT.glob("grokking/**/*.py"), *ROOT.glob("cli/**/*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("grokking/tasks/") or relative in LANGUAGES | FACTS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if DISPATCH.search(line.split("#")[0]):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("line", ['if task == "qf":', "if data.name != 'dyck':", 'if name in ("qf", "ti"):',
                                  'language = {"qf": qf, "ti": ti}[name]'])
def test_the_dispatch_pattern_catches_what_it_is_for(line):
    assert DISPATCH.search(line)


def test_the_registry_holds_the_three_tasks_and_names_them_on_a_typo():
    assert list(TASKS)[:3] == ["qf", "ti", "dyck"] and all(isinstance(t, Task) for t in TASKS.values())
    assert get_task("ti") is TASKS["ti"]
    with pytest.raises(ConfigError, match="unknown task 'qff'; choose one of qf, ti, dyck"):
        get_task("qff")


def test_a_name_cannot_be_registered_twice():
    class Impostor(Task):
        name = "qf"

    with pytest.raises(ConfigError, match="registered twice"):
        register(Impostor())
    assert register(TASKS["qf"]) is TASKS["qf"]  # registering the same task again is harmless
