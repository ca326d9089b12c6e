"""Reading the paper's released per-seed logs (W&B CSV exports): hand-built files in their format, the errors
a missing or garbled file gives, and the published facts recomputed from the real logs when present."""

import csv

import numpy as np
import pytest

from grokking.report.collect import ReportError
from grokking.report.released import read_released
from grokking.report.success import group_success, success_after_saturation
from grokking.report.summary import mean_curve
from grokking.runfiles import curve


def write_export(path, columns: dict[str, dict[int, float]], steps):
    """A W&B export: `iteration`, then per column its `__MIN` / `__MAX` twins (garbled here, so reading them
    would show) and a `_step` counter per run (W&B's, not the training step)."""
    runs = sorted({name.split(" - ")[0] for name in columns})
    header = ["iteration"] + [f"{run} - _step" for run in runs]
    header += [f"{name}{twin}" for name in columns for twin in ("", "__MIN", "__MAX")]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerow(header)
        for step in steps:
            row = [str(step)] + [str(step + 1) for _ in runs]
            for values in columns.values():
                cell = "" if step not in values else str(values[step])
                row += [cell, cell and "-7", cell and "garbage"]
            writer.writerow(row)


def qf(seed, key):
    return f"lm_6layers_f_more_itrs_{seed}-{seed} - {key}"


def success_of(run):
    return success_after_saturation(curve(run.records, "val/acc"), curve(run.records, "gen/acc"), 0.8)


STEPS = [3000, 6000, 9000]


@pytest.fixture
def released(tmp_path):
    directory = tmp_path / "released"
    directory.mkdir()
    val = {qf(42, "val_aux"): {3000: 0.9, 6000: 1.0, 9000: 1.0},
           qf(52, "val_aux"): {3000: 0.95, 6000: 0.99, 9000: 1}}
    test = {qf(42, "test_aux"): {3000: 0.3, 6000: 0.0, 9000: 0.85},
            qf(52, "test_aux"): {3000: 0.4, 9000: 0.2}}  # seed 52: no OOD evaluation at its S (6k)
    write_export(directory / "all_val_scores_lm.csv", val, STEPS)
    write_export(directory / "all_test_scores_lm.csv", test, STEPS)
    write_export(directory / "dyck_6.csv", {"lm_6layers_dyck_42-42 - val_aux": {10000: 0.98, 30000: 1.0},
                                            "lm_6layers_dyck_42-42 - test_aux": {10000: 0.84, 30000: 0.99}},
                 [10000, 20000, 30000])
    (directory / "notes.txt").write_text("not a log")
    return directory


def test_released_logs_become_runs_with_val_and_gen_accuracy(released):
    runs = read_released(released)
    assert [(r.name, r.task, r.depth, r.seed, r.state) for r in runs] == [
        ("released/dyck/depth=6/seed=42", "dyck", 6, 42, "done"),
        ("released/qf/depth=6/seed=42", "qf", 6, 42, "done"),
        ("released/qf/depth=6/seed=52", "qf", 6, 52, "done")]
    assert runs[0].experiment == "dyck [released logs]"
    assert runs[0].records == [{"step": 10000, "val/acc": 0.98, "gen/acc": 0.84},  # 20k: empty, not logged
                               {"step": 30000, "val/acc": 1.0, "gen/acc": 0.99}]
    assert runs[1].records[2] == {"step": 9000, "val/acc": 1.0, "gen/acc": 0.85}  # merged from both QF files
    assert [(success_of(r).saturation_step, success_of(r).crossing_step) for r in runs] == [
        (30000, 30000), (6000, 9000), (6000, None)]
    assert success_of(runs[2]).gen_at_saturation == 0.2  # the first OOD evaluation after S


def test_a_file_of_the_pair_missing_is_an_error_naming_it(released):
    (released / "all_test_scores_lm.csv").unlink()
    with pytest.raises(ReportError, match=r"qf/depth=6/seed=42 has no test_aux .* all_test_scores_lm.csv"):
        read_released(released)


VAL_HEADER = '"iteration","lm_6layers_f_more_itrs_42-42 - val_aux"\n'


@pytest.mark.parametrize("content, message", [
    ('"step","x"\n"3000","0.5"\n', "has no 'iteration' column"),
    ("", "has no 'iteration' column"),
    ('"iteration","lm_6layers_f_more_itrs_42-42 - _step"\n"3000","3001"\n', "has no '<run>_<seed>-<seed> - "),
    (VAL_HEADER + '"3000","high"\n', "line 2: 'high' in column"),
    (VAL_HEADER + '"3000","1.5"\n', "'1.5' in column .* not an accuracy"),
    (VAL_HEADER + '"3000"\n', "line 2 has 1 cells, the header 2"),
    (VAL_HEADER + '"3e3","0.5"\n', "iteration '3e3' is not a training step"),
    (VAL_HEADER + '"3000","0.5"\n"3000","0.6"\n', "step 3000 logged twice"),
    ('"iteration","lm_f_more_itrs_42-42 - val_aux"\n"3000","0.5"\n', "does not name its depth"),
])
def test_garbled_files_are_one_error_naming_the_file(released, content, message):
    (released / "all_val_scores_lm.csv").write_text(content)
    with pytest.raises(ReportError, match=message) as error:
        read_released(released)
    assert "all_val_scores_lm.csv" in str(error.value)


def test_binary_files_and_missing_directories_are_errors(released, tmp_path):
    (released / "dyck_6.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ReportError, match="dyck_6.csv is not a CSV file"):
        read_released(released)
    with pytest.raises(ReportError, match="no such directory"):
        read_released(tmp_path / "absent")
    with pytest.raises(ReportError, match="holds none of the released logs"):
        read_released(tmp_path)


def mean_at(runs, key, step):
    mc = mean_curve([curve(r.records, key) for r in runs])
    (index,) = np.flatnonzero(mc.steps == step)
    assert mc.n[index] == len(runs)
    return mc.mean[index]


def ood_curves(runs):
    return [curve(r.records, "gen/acc") for r in runs]


@pytest.fixture(scope="module")
def real_logs(reference_data):
    directory = reference_data / "released-logs"
    if not directory.is_dir():
        pytest.skip(f"released logs not found at {directory}")
    runs = read_released(directory)
    return {task: [r for r in runs if r.task == task] for task in ("qf", "ti", "dyck")}


def test_published_facts_of_qf_6_layers(real_logs):
    runs = real_logs["qf"]
    assert [r.seed for r in runs] == list(range(42, 233, 10)) and {r.depth for r in runs} == {6}
    assert all(list(c.steps) == list(range(3000, 300001, 3000)) for c in ood_curves(runs))
    assert mean_at(runs, "val/acc", 6000) == pytest.approx(1.0, abs=0.001)  # 0.9999: one seed at 0.9975
    for step, mean in ((3000, 0.33), (6000, 0.04), (12000, 0.57), (30000, 0.73), (300000, 0.80)):
        assert mean_at(runs, "gen/acc", step) == pytest.approx(mean, abs=0.005)  # .326 .038 .570 .733 .804
    first_above_half = [int(c.steps[np.argmax(c.values > 0.5)]) for c in ood_curves(runs)]
    assert min(first_above_half) == 9000 and max(first_above_half) == 30000
    assert np.median(first_above_half) == 12000
    ends = sorted(float(c.values[-1]) for c in ood_curves(runs))
    assert sum(e > 0.8 for e in ends) == 13
    assert ends[:3] == pytest.approx([0.059, 0.211, 0.437], abs=0.001) and ends[3] > 0.6
    group = group_success([success_of(r) for r in runs])
    assert group.saturation_steps == [6000] * 20
    assert np.median(group.jumps) == 16  # over the whole run (15 counting from S on)
    assert (group.seeds, group.crossed, group.demo) == (20, 20, 14)


def test_published_facts_of_ti_4_layers(real_logs):
    runs = real_logs["ti"]
    assert len(runs) == 20 and {r.depth for r in runs} == {4}
    for step, mean in ((12000, 0.22), (30000, 0.65), (300000, 0.85)):
        assert mean_at(runs, "gen/acc", step) == pytest.approx(mean, abs=0.005)  # .2225 .6484 .8477
    assert sum(float(c.values[-1]) > 0.8 for c in ood_curves(runs)) == 15
    group = group_success([success_of(r) for r in runs])
    assert (group.seeds, group.saturated, group.crossed, group.demo) == (20, 20, 19, 18)


def test_sparse_dyck_logs_saturate_at_a_logged_step(real_logs):
    runs = real_logs["dyck"]
    assert len(runs) == 10 and all(len(r.records) < 100 for r in runs)  # W&B sampled each seed's history
    results = [success_of(r) for r in runs]
    assert sorted({a.saturation_step for a in results}) == [20000, 30000]
    assert group_success(results).crossed == 10
