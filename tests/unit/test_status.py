"""`grok status` classification on hand-made run directories (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import status as status_cli
from grokking.rundir import RunDir
from grokking.status import find_run_dirs, lock_held, render, run_status, sweep_status


def make_run(root: Path, depth: int, seed: int, status: str | None = "done", step: int = 60, steps: int = 60,
             accs: tuple[float, ...] = (0.2, 0.3), reason: str | None = None, group: str = "qf") -> Path:
    path = root / group / f"depth={depth}" / f"seed={seed}"
    (path / "ckpt").mkdir(parents=True)
    (path / "config.yaml").write_text(f"task:\n  name: qf\ntrain:\n  steps: {steps}\ndepth: {depth}\nseed: {seed}\n")
    if status is not None:
        (path / "status.json").write_text(json.dumps({"status": status, "step": step, "reason": reason, "pid": 1,
                                                      "host": "node7"}))
    records = [{"step": 30 * (i + 1), "elapsed_s": 3.0 * (i + 1), "val/acc": 0.5 + 0.1 * i, "gen/acc": acc}
               for i, acc in enumerate(accs)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def status_while_running(path: Path):
    """The run's status while this process holds its lock, as a training process would."""
    holder = RunDir(path)
    holder.lock()
    try:
        return run_status(path)
    finally:
        holder.release()


def test_run_dirs_are_found_in_natural_order_without_hidden_or_nested_dirs(tmp_path: Path):
    for depth in (10, 2, 8):
        make_run(tmp_path, depth, 0)
    (tmp_path / ".submitit" / "12_0").mkdir(parents=True)
    (tmp_path / ".submitit" / "12_0" / "status.json").write_text("{}")
    (tmp_path / "qf" / "depth=2" / "seed=0" / "archive" / "x").mkdir(parents=True)
    (tmp_path / "qf" / "depth=2" / "seed=0" / "archive" / "x" / "status.json").write_text("{}")
    found = [p.relative_to(tmp_path).as_posix() for p in find_run_dirs(tmp_path)]
    assert found == ["qf/depth=2/seed=0", "qf/depth=8/seed=0", "qf/depth=10/seed=0"]
    assert find_run_dirs(tmp_path / "qf" / "depth=8" / "seed=0") == [tmp_path / "qf" / "depth=8" / "seed=0"]


def test_finished_failed_and_preempted_runs_keep_their_state_step_and_last_ood_accuracy(tmp_path: Path):
    done = run_status(make_run(tmp_path, 2, 0, accs=(0.2, 0.35)))
    assert (done.state, done.step, done.planned, done.val_acc, done.gen_acc) == ("done", 60, 60, 0.6, 0.35)
    assert done.eta_s() is None  # only running runs have an ETA
    failed = run_status(make_run(tmp_path, 2, 1, "failed", 30, accs=(0.1,), reason="non-finite training loss"))
    assert (failed.state, failed.step, failed.reason) == ("failed", 30, "non-finite training loss")
    preempted = run_status(make_run(tmp_path, 2, 2, "preempted", 45, accs=(0.1,), reason="SIGUSR2 received"))
    assert (preempted.state, preempted.step) == ("preempted", 45)


def test_running_is_trusted_only_while_a_process_holds_the_lock(tmp_path: Path):
    path = make_run(tmp_path, 2, 0, "running", 30, accs=(0.1,))
    holder = RunDir(path)
    holder.lock()
    try:
        assert lock_held(path)
        assert run_status(path).state == "running"
    finally:
        holder.release()
    assert not lock_held(path)
    stale = run_status(path)
    assert stale.state == "stale" and "pid 1 on node7" in stale.reason


def test_a_run_that_never_wrote_its_status_is_stale_or_starting(tmp_path: Path):
    path = make_run(tmp_path, 2, 0, status=None, accs=())
    (path / ".lock").write_text("pid 9\n")
    assert run_status(path).state == "stale"
    holder = RunDir(path)
    holder.lock()
    try:
        assert run_status(path).state == "running"
    finally:
        holder.release()


def test_metrics_past_the_status_step_and_torn_lines_are_handled(tmp_path: Path):
    path = make_run(tmp_path, 2, 0, "running", 0, accs=(0.1, 0.4))
    with open(path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 90, "gen/a')  # a crash mid-write
    status = run_status(path)
    assert (status.step, status.gen_acc) == (60, 0.4)


def test_a_running_run_shows_its_in_domain_accuracy_and_an_eta_from_its_recent_speed(tmp_path: Path):
    path = make_run(tmp_path, 2, 0, "running", 90, steps=3090, accs=(0.1, 0.2, 0.3))  # evals at 30, 60, 90
    with open(path / "metrics.jsonl", "a") as handle:  # slower lately: the last RATE_WINDOW evaluations count
        handle.writelines(json.dumps({"step": 30 * i, "elapsed_s": 90.0 + 30 * (i - 3), "val/acc": 0.9,
                                      "gen/acc": 0.3}) + "\n" for i in range(4, 11))
    status = status_while_running(path)
    assert (status.state, status.step, status.val_acc) == ("running", 300, 0.9)
    assert status.steps_per_s == pytest.approx(1.0)  # 30 steps per 30 s
    assert status.eta_s() == pytest.approx(2790)
    row = render([status], tmp_path).splitlines()[1].split()
    assert row == ["qf/depth=2/seed=0", "running", "300/3090", "0.900", "0.300", "46m", "30s"]


def test_a_running_run_without_timed_evaluations_has_an_unknown_eta(tmp_path: Path):
    path = make_run(tmp_path, 2, 0, "running", 30, accs=(0.1,))
    status = status_while_running(path)
    assert status.state == "running" and status.eta_s() is None
    assert render([status], tmp_path).splitlines()[1].split()[5] == "?"


def test_a_run_done_under_fewer_planned_steps_is_unfinished(tmp_path: Path):
    path = make_run(tmp_path, 2, 0, "done", 60, steps=60)
    status = run_status(path, planned=400)
    assert status.state == "unfinished" and "400" in status.reason


def test_expected_runs_without_a_directory_are_missing_and_the_table_counts_states(tmp_path: Path):
    make_run(tmp_path, 2, 0)
    make_run(tmp_path, 2, 1, "failed", 30, accs=(0.3,), reason="boom")
    expected = {tmp_path / "qf" / f"depth={d}" / f"seed={s}": 60 for d in (2, 4) for s in (0, 1)}
    statuses = sweep_status(tmp_path, expected)
    assert [s.state for s in statuses] == ["done", "failed", "missing", "missing"]
    table = render(statuses, tmp_path)
    lines = table.splitlines()
    assert lines[0].split() == ["run", "state", "step", "val/acc", "gen/acc", "eta", "note"]
    assert lines[1].split()[:6] == ["qf/depth=2/seed=0", "done", "60/60", "0.600", "0.300", "-"]
    assert lines[2].split()[:7] == ["qf/depth=2/seed=1", "failed", "30/60", "0.500", "0.300", "-", "boom"]
    assert lines[3].split()[:6] == ["qf/depth=4/seed=0", "missing", "-/60", "-", "-", "-"]
    assert lines[-1] == "4 runs: 1 done, 1 failed, 2 missing"


def test_status_cli_lists_the_expected_grid_of_a_preset(tmp_path: Path, capsys):
    make_run(tmp_path, 2, 0, group="qf-smoke")  # the smoke preset's own run directories (tag -smoke)
    make_run(tmp_path, 2, 1)  # a paper-config run of the same cell is not part of the smoke sweep
    assert status_cli.run([str(tmp_path), "--sweep", "smoke", "depth=2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out[1:3]] == [["qf-smoke/depth=2/seed=0", "done"],
                                                       ["qf-smoke/depth=2/seed=1", "missing"]]
    assert out[3] == "2 runs: 1 done, 1 missing"
    assert out[4] == f"1 other run directories under {tmp_path} are not part of this sweep"


def test_status_cli_reports_a_missing_directory_on_one_line(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        status_cli.run([str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == f"grok: error: no such directory: {tmp_path / 'nope'}"


def test_status_and_report_walk_the_same_run_directories_and_skip_hidden_ones(tmp_path):
    from grokking.report.collect import collect_runs

    run = tmp_path / "qf" / "depth=2" / "seed=1"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 0, "val/acc": 0.5, "gen/acc": 0.25}\n')
    hidden = tmp_path / ".submitit" / "123_0"  # submitit's own files: a status-like file must not make it a run
    hidden.mkdir(parents=True)
    (hidden / "status.json").write_text("{}")
    only_metrics = tmp_path / "ti" / "depth=4" / "seed=2"  # a run with nothing but its metrics: both see it
    only_metrics.mkdir(parents=True)
    (only_metrics / "metrics.jsonl").write_text('{"step": 0, "val/acc": 0.5, "gen/acc": 0.25}\n')
    assert find_run_dirs(tmp_path) == [run, only_metrics]
    assert [r.path for r in collect_runs(tmp_path)] == [run, only_metrics]
