"""Reading run directories (identity, status, metrics.jsonl quirks), the tidy CSV, and a report on a partial sweep."""

import csv
import json
from functools import cache

import pytest
import yaml
from omegaconf import OmegaConf

from cli.compose import compose_config
from grokking.report.build import TIDY_CSV, build_report
from grokking.report.collect import ReportError, collect_runs, write_tidy_csv
from grokking.runfiles import read_metrics


def evals(gens, start=3000, every=3000, **extra):
    return [{"step": start + i * every, "val/acc": min(1.0, 0.6 + 0.2 * i), "gen/acc": g, **extra}
            for i, g in enumerate(gens)]


@cache
def paper_config_yaml(task: str) -> str:
    return OmegaConf.to_yaml(compose_config([f"task={task}"]), resolve=True)


def write_run(root, task, depth, seed, records, status="done", planned=None, config=True, tail="", reason=None,
              folder=None, **changes):
    """A run directory as grok writes it, with the paper's config for `task` unless `changes` (dotted keys) say
    otherwise."""
    run_dir = root / (folder or task) / f"depth={depth}" / f"seed={seed}"
    run_dir.mkdir(parents=True)
    if config:
        cfg = OmegaConf.create(paper_config_yaml(task))
        for key, value in {"depth": depth, "seed": seed, "task.steps": planned, "train.steps": planned,
                           **changes}.items():
            OmegaConf.update(cfg, key, value)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if status:
        (run_dir / "status.json").write_text(json.dumps(
            {"status": status, "reason": reason, "step": records[-1]["step"] if records else 0,
             "updated": "2024-05-01T12:00:00+00:00"}))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return run_dir


def test_trailing_partial_line_is_ignored_and_reported(tmp_path):
    run_dir = write_run(tmp_path, "qf", 2, 42, evals([0.1, 0.2]), tail='{"step": 9000, "val/a')
    records, problems = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [3000, 6000]
    assert problems == ["metrics.jsonl: trailing partial line (crash mid-write?), ignored"]


def test_bad_lines_are_reported_with_their_number(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "gen/acc": null}\nnot json\n{"gen/acc": 0.5}\n[1, 2]\n{"step": 2}\n\n')
    records, problems = read_metrics(path)
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["gen/acc"] is None
    assert problems == ["metrics.jsonl: line 2 is not JSON, ignored", "metrics.jsonl: line 3 has no integer step, ignored",
                        "metrics.jsonl: line 4 has no integer step, ignored"]


def test_lines_of_one_step_merge_and_relogged_steps_keep_the_later_value(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"step": 10, "val/acc": 0.5}, {"step": 10, "probe/tscore": 0.7},  # split logging: silent merge
             {"step": 20, "val/acc": 0.6}, {"step": 20, "val/acc": 0.9}]  # resumed run re-logs step 20
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    records, problems = read_metrics(path)
    assert records == [{"step": 10, "val/acc": 0.5, "probe/tscore": 0.7}, {"step": 20, "val/acc": 0.9}]
    assert problems == ["1 step(s) logged twice (resumed run?), later values kept: 20"]


def test_identity_prefers_config_yaml_and_falls_back_to_the_path(tmp_path):
    configured = write_run(tmp_path, "ti", 4, 42, evals([0.1]), folder="elsewhere")
    (configured / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "ti", "steps": 300},
                                                            "depth": 8, "seed": 1, "tag": "_x"}))
    write_run(tmp_path, "qf", 2, 7, evals([0.1]), config=False, folder="qf_smoke")
    by_name = {r.name: r for r in collect_runs(tmp_path)}
    run = by_name["elsewhere/depth=4/seed=42"]
    assert (run.task, run.tag, run.depth, run.seed, run.planned_steps) == ("ti", "_x", 8, 1, 300)
    assert run.experiment == "ti_x"
    smoke = by_name["qf_smoke/depth=2/seed=7"]
    assert (smoke.task, smoke.tag, smoke.depth, smoke.seed, smoke.planned_steps) == ("qf", "_smoke", 2, 7, None)
    assert any("config.yaml" in p for p in smoke.problems)


def test_state_from_status_json_and_planned_steps(tmp_path):
    write_run(tmp_path, "qf", 2, 1, evals([0.1, 0.2]), status=None, planned=6000)
    write_run(tmp_path, "qf", 2, 2, evals([0.1, 0.2]), status=None, planned=9000)
    write_run(tmp_path, "qf", 2, 3, evals([0.1]), status="failed", reason="loss is NaN at step 3000")
    write_run(tmp_path, "qf", 2, 4, evals([0.1]), status="preempted", planned=9000)
    runs = collect_runs(tmp_path)
    assert [(r.status, r.state) for r in runs] == [("unknown", "done"), ("unknown", "unfinished"),
                                                  ("failed", "failed"), ("preempted", "unfinished")]
    assert runs[2].reason == "loss is NaN at step 3000"


def test_a_run_directory_can_be_reported_on_its_own(tmp_path):
    run_dir = write_run(tmp_path, "dyck", 6, 42, evals([0.9]))
    (run,) = collect_runs(run_dir)
    assert (run.name, run.task, run.depth, run.seed) == (".", "dyck", 6, 42)


def test_missing_or_empty_directories_are_user_errors(tmp_path):
    with pytest.raises(ReportError, match="no such directory"):
        collect_runs(tmp_path / "absent")
    (tmp_path / "qf" / "depth=2").mkdir(parents=True)
    with pytest.raises(ReportError, match="no run directories"):
        collect_runs(tmp_path)


def test_tidy_csv_has_one_row_per_run_and_step_and_every_key(tmp_path):
    write_run(tmp_path, "qf", 2, 42, evals([0.1, None], **{"probe/attn_entropy/layer0": 1.5}))
    write_run(tmp_path, "qf", 4, 42, evals([0.3]) + [{"step": 9000, "train/loss": 0.1}])
    path = tmp_path / "tidy.csv"
    assert write_tidy_csv(collect_runs(tmp_path), path) == 4
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["task", "depth", "seed", "step"]
    assert {"val/acc", "gen/acc", "train/loss", "probe/attn_entropy/layer0"} <= set(rows[0])
    assert [(r["depth"], r["step"]) for r in rows] == [("2", "3000"), ("2", "6000"), ("4", "3000"), ("4", "9000")]
    assert rows[1]["gen/acc"] == "" and rows[3]["probe/attn_entropy/layer0"] == ""
    assert rows[0]["probe/attn_entropy/layer0"] == "1.5"


def test_report_on_a_partial_sweep_lists_every_run_and_computes_what_it_can(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "qf", 6, 42, evals([0.2, 0.9, 0.95]), planned=9000)  # grokked at 6000, done
    write_run(runs, "qf", 6, 52, evals([0.85, 0.9]), status="running", planned=9000)  # provisional grok at 3000
    write_run(runs, "qf", 6, 62, evals([0.2, 0.3, 0.4]), planned=9000)  # never
    write_run(runs, "qf", 6, 72, evals([0.2]), status="failed", reason="loss is NaN", planned=9000)
    write_run(runs, "qf", 6, 82, [{"step": 3000, "val/acc": 0.9}], status="running", planned=9000)  # no gen/acc
    write_run(runs, "ti", 4, 42, [], status="running", planned=9000, tail='{"step": 30')  # nothing yet
    result = build_report(runs, threshold=0.8)
    assert result.out == runs / "report"
    report = result.markdown.read_text()
    assert "qf/depth=6/seed=52 (running, step 6,000 of 9,000, updated 2024-05-01T12:00:00+00:00)" in report
    assert "qf/depth=6/seed=72 (loss is NaN)" in report
    assert "no evaluations logged yet" in report and "trailing partial line" in report
    assert "gen/acc missing or NaN at 1 of 1 evaluations" in report
    # 4 non-failed qf-6 runs, 3 logged gen/acc: 42 and 52 grokked, 42 and 52 end above 0.8, and so ever
    assert "| qf | 6 | 3 | 2/3 | 4,500 [3,000–6,000] | 0.67 | 0.67 | 0.8 | 0.9 / 1.0 |" in report
    assert "92.9%" in report  # the paper's final QF-6L mean, beside ours
    assert {p.name for p in result.figures} == {"curves_qf.png", "curves_ti.png", "success.png"}
    assert all(p.stat().st_size > 1000 for p in result.figures)
    assert (runs / "report" / TIDY_CSV).exists() and (runs / "report" / "report.html").exists()


def test_missing_accuracies_are_reported_per_run(tmp_path):
    write_run(tmp_path, "qf", 2, 1, evals([0.1, None, 0.3]) + [{"step": 12000, "train/loss": 0.2}])
    write_run(tmp_path, "qf", 2, 2, [{"step": 3000, "val/acc": 0.9, "val/loss": 0.1}])
    write_run(tmp_path, "qf", 2, 3, [{"step": 100, "train/loss": 2.0}])
    problems = [r.problems for r in collect_runs(tmp_path)]
    assert problems == [["gen/acc missing or NaN at 1 of 3 evaluations"],
                        ["gen/acc missing or NaN at 1 of 1 evaluations"], ["no evaluations logged yet"]]


def test_runs_with_different_training_configs_are_never_averaged(tmp_path):
    """The README's main job and two smoke-sized runs share qf depth 2 but not a row; only the paper's config
    gets the paper's columns, and a run preempted before its first evaluation is still listed."""
    runs = tmp_path / "runs"
    write_run(runs, "qf", 6, 42, evals([0.9, 0.95]), planned=6000)
    write_run(runs, "qf", 6, 52, evals([0.1, 0.2]), planned=6000, folder="qf_b", tag="_b")  # same config, own tag
    write_run(runs, "qf", 6, 62, evals([0.1, 0.2]), planned=6000, folder="qf_b", tag="_b", **{"model.d_model": 32})
    write_run(runs, "qf", 6, 72, evals([0.3, 0.4]), planned=6000, folder="qf_b", tag="_b", **{"model.d_model": 32})
    preempted = write_run(runs, "qf", 6, 82, [], status="preempted", planned=6000)
    (preempted / "metrics.jsonl").unlink()
    result = build_report(runs)
    by_name = {r.name: r for r in result.runs}
    assert len(result.runs) == 5 and by_name["qf/depth=6/seed=82"].state == "unfinished"
    assert by_name["qf_b/depth=6/seed=52"].experiment == "qf_b [model.d_model=512]"
    assert by_name["qf_b/depth=6/seed=62"].experiment == "qf_b [model.d_model=32]"
    report = result.markdown.read_text()
    assert "5 run directories under" in report and "qf/depth=6/seed=82 (preempted" in report
    fig2_section = report.split("### OOD accuracy at early stopping vs at the end")[1].split("\n#")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in fig2_section.splitlines()
            if line.startswith("| qf")}
    assert "92.5" not in rows["qf"] and "| 92.9% |" in rows["qf"]  # paper: mean OOD at the end 92.9%
    assert rows["qf_b [model.d_model=32]"].count("—") >= 3 and "92.9%" not in rows["qf_b [model.d_model=32]"]
    assert "92.9%" in rows["qf_b [model.d_model=512]"]  # the paper's config under another tag
    assert "| 2 |" in rows["qf_b [model.d_model=32]"]  # seeds 62 and 72 in one row
    assert (result.out / "curves_qf_b_model.d_model=32.png").exists()
