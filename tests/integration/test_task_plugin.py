"""A fourth task is one module and one YAML file: the toy task in `toy_task/` (reverse a string of letters),
registered only here through the `grok.tasks` entry point, trains, evaluates and probes through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from grokking.runfiles import read_metrics

TOY = Path(__file__).resolve().parent / "toy_task"


def plugin_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an installed plugin: its module importable and its entry point declared."""
    dist = tmp_path / "site" / "grok_toy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: grok-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[grok.tasks]\ntoy = toytask:TASK\n")
    paths = [str(TOY), str(dist.parent), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "WANDB_MODE": "disabled"}


def test_a_task_registered_outside_grok_trains_through_the_real_cli(tmp_path, grok, data_dir):
    env = plugin_env(tmp_path)
    args = ["task=toy", "experiment=smoke", f"hydra.searchpath=[file://{TOY / 'toy_conf'}]", f"data.dir={data_dir}",
            f"paths.runs={tmp_path / 'runs'}"]
    result = grok("train", *args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "toy-smoke" / "depth=2" / "seed=42"
    assert json.loads((run / "status.json").read_text())["status"] == "done"
    records, problems = read_metrics(run / "metrics.jsonl")
    records = [r for r in records if "val/acc" in r]
    assert not problems
    assert [r["step"] for r in records] == [0, 30, 60]
    for record in records:  # every output letter scored among the six letters: accuracy is a fraction of them
        assert 0.0 <= record["val/acc"] <= 1.0 and 0.0 <= record["gen/acc"] <= 1.0
        assert record["val/loss"] > 0 and "probe/tscore" in record and record["probe/tparseval"] is None
    assert records[-1]["val/loss"] < records[0]["val/loss"]  # it learns
    sample = json.loads((run / "probe_sample.json").read_text())["sentences"]
    assert sample and all(2 <= len(words) <= 5 and "rev" not in words for words in sample)
    # its data is cached in the toy task's own line format, and exported under its own file names
    exported = grok("data", "task=toy", "experiment=smoke", f"hydra.searchpath=[file://{TOY / 'toy_conf'}]",
                    f"data.dir={data_dir}", f"export={tmp_path / 'export'}", cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    gen = (tmp_path / "export" / "reverse.gen").read_text().splitlines()
    assert len(gen) == 200 and all(len(line.split(" rev ")[0].split()) in (6, 7) for line in gen)


def test_without_the_plugin_the_task_is_unknown(tmp_path, grok, one_line_error):
    result = grok("train", "task.name=toy", "experiment=smoke", f"paths.runs={tmp_path / 'runs'}", cwd=tmp_path)
    one_line_error(result, "unknown task 'toy'; choose one of qf, ti, dyck")


def test_a_plugin_may_name_its_config_dir_conf(tmp_path, grok):
    """grok finds its own YAML beside its package, never by importing `conf`: a plugin (or any project) with a
    conf/ package of its own on the path does not shadow it."""
    plugin = tmp_path / "plugin"
    shutil.copytree(TOY / "toy_conf", plugin / "conf")
    (plugin / "conf" / "__init__.py").write_text("")
    shutil.copy(TOY / "toytask.py", plugin / "toytask.py")
    env = plugin_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin), env["PYTHONPATH"]])
    composed = grok("train", "task=toy", "experiment=smoke", f"hydra.searchpath=[file://{plugin / 'conf'}]",
                    "--cfg", "job", cwd=plugin, env=env)
    assert composed.returncode == 0, composed.stderr
    assert "name: toy" in composed.stdout and "depth: 2" in composed.stdout  # the toy task, on grok's own train.yaml
    completed = grok("completion", "bash", cwd=plugin, env=env)
    assert completed.returncode == 0 and "_grok_complete" in completed.stdout, completed.stderr
