"""`grok report` end to end, as a subprocess, on synthetic run directories."""

import json
import re
import subprocess
from pathlib import Path

import matplotlib.image
import pytest
from conftest import GROK

from cli.main import main as grok_main
from grokking.report.figures import PROBE_COLUMNS, PROBE_PANELS, figure_size_px

REPO = Path(__file__).resolve().parents[2]


def grok(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([GROK, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120)


def write_run(root: Path, task: str, depth: int, seed: int, n_evals: int, status: str = "done",
              ema: bool = False) -> None:
    """Accuracies rise with the step: in-domain saturates (1.0) at the 5th evaluation, OOD by depth/4 x 10
    points per evaluation; with `ema`, the weight-averaged evaluation logs OOD accuracy 10 points higher."""
    run_dir = root / task / f"depth={depth}" / f"seed={seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"task:\n  name: {task}\n  steps: 30000\ndepth: {depth}\nseed: {seed}\ntag: ''\n")
    (run_dir / "status.json").write_text(json.dumps({"status": status, "reason": None, "step": 3000 * n_evals,
                                                     "updated": "2024-05-01T12:00:00+00:00"}))
    lines = [{"step": 3000 * i, "val/acc": min(1.0, 0.5 + 0.1 * i), "gen/acc": min(0.95, 0.1 * i * depth / 4),
              "train/loss": 1.0 / i, "probe/weight_norm": 30.0 * depth + i, "probe/attn_entropy": 2.0 - 0.1 * i,
              "probe/tscore": 0.4 + 0.03 * i, "probe/tparseval": 0.5 + 0.02 * i,
              "probe/tparseval_right_branching": 0.66} for i in range(1, n_evals + 1)]
    if ema:
        lines = [{**line, "val/acc_ema0.999": line["val/acc"],
                  "gen/acc_ema0.999": min(1.0, line["gen/acc"] + 0.1)} for line in lines]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for task, depths in (("qf", (2, 6)), ("ti", (4,))):
        for depth in depths:
            for seed in (42, 52):
                write_run(runs, task, depth, seed, 10)
    write_run(runs, "qf", 6, 62, 4, status="running")
    return runs


def test_report_on_a_sweep_writes_tables_figures_and_markdown(sweep: Path):
    result = grok("report", sweep)
    assert result.returncode == 0, result.stderr
    assert "7 runs (6 done, 1 unfinished, 0 failed" in result.stdout
    out = sweep / "report"
    expected = {"curves_qf.png": figure_size_px(2), "curves_ti.png": figure_size_px(1), "success.png": figure_size_px(2),
                "probes_qf.png": figure_size_px(len(PROBE_PANELS), PROBE_COLUMNS),
                "probes_ti.png": figure_size_px(len(PROBE_PANELS), PROBE_COLUMNS)}
    for name, (width, height) in expected.items():
        image = matplotlib.image.imread(out / name)
        assert image.shape[:2] == (height, width), name
        assert image[..., :3].std() > 0.01, name
    report = (out / "report.md").read_text()
    for name in expected:
        assert f"]({name})" in report
    assert "qf/depth=6/seed=62 (running, step 12,000 of 30,000, updated 2024-05-01" in report
    assert len((out / "metrics_tidy.csv").read_text().splitlines()) == 1 + 6 * 10 + 4
    assert (out / "report.html").read_text().count("<img ") == len(expected)


def printed_tables(stdout: str) -> tuple[list[list[str]], ...]:
    """The tables `grok report` printed (by group, then by run), as rows of cells (2+ spaces apart)."""
    blocks = [block.splitlines() for block in stdout.split("\n\n")]
    return tuple([re.split(r"\s{2,}", line) for line in block[1:]] for block in blocks
                 if block and block[0].startswith("task  "))


def row(table: list[list[str]], *first_cells: str) -> list[str]:
    (found,) = [cells for cells in table if cells[:len(first_cells)] == list(first_cells)]
    return found


def test_report_prints_success_after_saturation_per_group_and_per_run(sweep: Path):
    result = grok("report", sweep)
    assert result.returncode == 0, result.stderr
    # qf depth 6: in-domain 1.0 at the 5th evaluation (15k); OOD 0.15 per evaluation: 0.75 at S, 0.9 at 18k.
    # Seed 62 stopped at 12k (4 evaluations), never saturated. TI depth 4: OOD 0.1 per evaluation, 0.8 at 24k,
    # 0.9 at 27k.
    by_group, by_run = printed_tables(result.stdout)
    assert row(by_group, "qf", "6") == [
        "qf", "6", "3", "2/3", "15,000 [15,000–15,000]", "75.0 ± 0.0%", "95.0 ± 0.0%", "2/3 (0.67)",
        "18,000 [18,000–18,000]", "75.2 ± 32.6%", "0 [0–0]"]
    assert row(by_group, "ti", "4")[7:9] == ["2/2 (1.00)", "27,000 [27,000–27,000]"]
    assert row(by_group, "qf", "2")[7] == "0/2 (0.00)"  # OOD 0.05 per evaluation: at most 0.5
    assert row(by_run, "qf", "6", "62") == ["qf", "6", "62", "unfinished", "—", "—", "—", "no", "37.5%", "0",
                                            "no"]
    assert row(by_run, "qf", "6", "42") == ["qf", "6", "42", "done", "15,000", "75.0%", "95.0%", "18,000",
                                            "94.0%", "0", "yes"]
    assert "demo criterion, qf depth 6: 2/3 seeds crossed 0.8 after saturation" in result.stdout
    assert "demo criterion, ti depth 4: 2/2 seeds" in result.stdout  # last-5 mean (.6 + ... + .95) / 5 = .79
    report = (sweep / "report" / "report.md").read_text()
    assert "## Success after in-domain saturation" in report
    assert "| qf | 6 | 3 | 2/3 | 15,000 [15,000–15,000] |" in report


RELEASED_TI = ('"iteration","lm_4layers_tense_42-42 - _step","lm_4layers_tense_42-42 - val_aux",'
               '"lm_4layers_tense_42-42 - val_aux__MIN","lm_4layers_tense_42-42 - test_aux"\n'
               + "".join(f'"{3000 * i}","{3000 * i + i}","{val}","{val}","{test}"\n'
                         for i, (val, test) in enumerate([(0.5, 0.1), (0.995, 0.2), (1, 0.5), (1, 0.9),
                                                          (1, 0.95)], start=1)))


def test_report_on_weight_averaged_evaluations_beside_the_released_logs(tmp_path: Path):
    """--weights ema0.999 reads the *_ema0.999 keys and skips the runs without them, one warning each;
    --released puts the released logs' rows beside ours."""
    runs = tmp_path / "runs"
    for seed in (42, 52):
        write_run(runs, "qf", 6, seed, 10, ema=True)
    write_run(runs, "ti", 4, 42, 10)
    released = tmp_path / "released"
    released.mkdir()
    (released / "all_scores_tense.csv").write_text(RELEASED_TI)
    result = grok("report", runs, "--weights", "ema0.999", "--released", released)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "grok: warning: skipped ti/depth=4/seed=42: no val/acc_ema0.999 or gen/acc_ema0.999 logged"]
    # the weight-averaged OOD accuracy is 0.85 at S = 15k, so it crosses there (the raw one at 18k)
    by_group, by_run = printed_tables(result.stdout)
    assert row(by_group, "qf", "6")[4:9] == ["15,000 [15,000–15,000]", "85.0 ± 0.0%", "100.0 ± 0.0%",
                                             "2/2 (1.00)", "15,000 [15,000–15,000]"]
    assert [cells[0] for cells in by_run] == ["qf", "qf"]  # released seeds only in report.md
    assert row(by_group, "ti [released logs]", "4") == [
        "ti [released logs]", "4", "1", "1/1", "6,000 [6,000–6,000]", "20.0%", "95.0%", "1/1 (1.00)",
        "12,000 [12,000–12,000]", "53.0%", "2 [2–2]"]
    assert "demo criterion, ti [released logs] depth 4: 0/1 seeds" in result.stdout
    assert "2 runs (2 done" in result.stdout
    report = (runs / "report" / "report.md").read_text()
    assert "Accuracies read from val/acc_ema0.999 (in-domain) and gen/acc_ema0.999 (OOD)" in report
    assert "skipped, no val/acc_ema0.999 or gen/acc_ema0.999 logged (1): ti/depth=4/seed=42" in report
    assert "### Per seed of the released logs" in report
    assert "| ti [released logs] | 4 | 42 | done |" in report
    assert not (runs / "report" / "curves_ti.png").exists()


@pytest.mark.slow
def test_report_on_a_single_run_with_out_and_threshold(sweep: Path, tmp_path: Path):
    result = grok("report", sweep / "qf" / "depth=6" / "seed=42", "--out", tmp_path / "single", "--threshold", "0.9")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "single" / "report.md").read_text()
    assert "Threshold 0.9" in report and "1 run directories" in report


@pytest.mark.parametrize("args, message", [
    (["missing-dir"], "no such directory"),
    (["EMPTY"], "no run directories"),
    (["RUNS", "--threshold", "1.5"], "--threshold must be in (0, 1]"),
    (["RUNS", "--threshold", "high"], "invalid float value"),
    (["RUNS", "--weights", "ema0.999"], "no run under"),
    (["RUNS", "--weights", "swa"], "--weights must be raw or ema<decay>"),
    (["RUNS", "--released", "missing-dir"], "--released: no such directory"),
    (["RUNS", "--released", "GARBLED"], "all_test_scores_lm.csv has no 'iteration' column"),
    ([], "the following arguments are required: dir"),
])
def test_bad_input_is_one_line_and_exit_2(sweep: Path, tmp_path: Path, capsys, args: list[str], message: str):
    (tmp_path / "empty").mkdir()
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "all_test_scores_lm.csv").write_text("step,accuracy\n3000,0.5\n")
    places = {"EMPTY": str(tmp_path / "empty"), "RUNS": str(sweep), "missing-dir": str(tmp_path / "missing"),
              "GARBLED": str(tmp_path / "garbled")}
    with pytest.raises(SystemExit) as exit_info:  # in-process: the console script's start-up is tested above
        grok_main(["report", *[places.get(a, a) for a in args]])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("grok: error: ") and message in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_help_lists_the_options():
    result = grok("report", "--help")
    assert result.returncode == 0
    assert "--out" in result.stdout and "--threshold" in result.stdout and "grok report runs/" in result.stdout
    assert "--weights" in result.stdout and "--released" in result.stdout


@pytest.mark.slow
def test_report_on_a_real_smoke_sweep(tmp_path: Path, data_dir: Path):
    """Train the 2 x 2 smoke sweep through the CLI, then report it: every figure is a real image, every run is in."""
    train = subprocess.run([GROK, "train", "-m", "+sweep=smoke", "paths.runs=runs", f"data.dir={data_dir}"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stdout + train.stderr
    result = subprocess.run([GROK, "report", "runs"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "runs" / "report"
    for name in ("curves_qf-smoke.png", "success.png", "probes_qf-smoke.png"):
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0, name
    rows = (out / "metrics_tidy.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert {"task", "depth", "seed", "step", "val/acc", "gen/acc", "probe/tscore"} <= set(header)
    assert len(rows) == 1 + 4 * 3  # 4 runs x evaluations at steps 0, 30 and 60
    report = (out / "report.md").read_text()
    assert "curves_qf-smoke.png" in report and "success.png" in report
