"""`grok completion bash`: the script, the candidates for partial words, and the script's function in a real bash."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import GROK

from cli.completion import BASH_SCRIPT, candidates, groups
from cli.main import SUBCOMMANDS
from cli.main import main as grok_main


def test_the_bash_script_is_printed_and_registers_the_function(capsys):
    assert grok_main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert script == BASH_SCRIPT and "complete -o default -F _grok_complete grok" in script


def test_an_unknown_shell_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        grok_main(["completion", "fish"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("grok: error: unknown shell 'fish'; only bash is supported")


@pytest.mark.parametrize(("line", "expected"), [
    ("grok ", [*SUBCOMMANDS, "--help", "--version"]),
    ("grok st", ["status"]),
    ("grok train task=", ["task=dyck", "task=qf", "task=ti"]),
    ("grok train experiment=pa", ["experiment=paper_dyck", "experiment=paper_qf", "experiment=paper_ti"]),
    ("grok train +sw", ["+sweep="]),
    ("grok train hydra/launcher=", ["hydra/launcher=basic", "hydra/launcher=local", "hydra/launcher=slurm"]),
    ("grok train dep", ["depth="]),
    ("grok train depth=6 task.st", ["task.steps="]),
    ("grok data tas", ["task=", "task."]),
    ("grok train deterministic=", ["deterministic=true", "deterministic=false"]),
    ("grok train -", ["-m", "--multirun", "--cfg", "--help", "--version"]),
    ("grok train --cfg ", ["job", "hydra", "all"]),
    ("grok status runs --sweep paper_", ["paper_dyck", "paper_qf", "paper_ti"]),
    ("grok sweep emit paper_q", ["paper_qf"]),
    ("grok report ru", []),  # a directory: left to the shell's file names
])
def test_candidates_for_partial_words(line, expected):
    assert candidates(line) == expected


def test_groups_come_from_conf_with_a_plus_only_outside_the_defaults():
    found = groups()
    assert {"task", "model", "experiment", "+sweep", "hydra/launcher"} <= set(found)
    assert "smoke" in found["experiment"] and "smoke" in found["+sweep"]
    assert not any(name.startswith(("local", "+local")) for name in found)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_the_sourced_function_completes_as_bash_splits_words(capsys):
    grok_main(["completion", "bash"])
    script = capsys.readouterr().out
    # COMP_WORDS as bash splits them (at = too); the function reads the line up to the cursor
    cases = {"grok tr": "train", "grok train task=d": "dyck", "grok train experiment=sm": "smoke",
             "grok train tas": "task= task.", "grok train depth=6 task.eval_e": "task.eval_every="}
    calls = "".join(f'COMP_LINE="{line}"; COMP_POINT={len(line)}; COMP_WORDS=("{GROK}"); COMP_CWORD=1; '
                    f'_grok_complete; echo "${{COMPREPLY[*]}}"\n' for line in cases)
    result = subprocess.run(["bash", "-c", script + calls], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == list(cases.values())
