"""`grok report` end to end, as a subprocess, on synthetic run directories."""

import json
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


def write_run(root: Path, task: str, depth: int, seed: int, n_evals: int, status: str = "done") -> None:
    run_dir = root / task / f"depth={depth}" / f"seed={seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"task:\n  name: {task}\n  steps: 30000\ndepth: {depth}\nseed: {seed}\ntag: ''\n")
    (run_dir / "status.json").write_text(json.dumps({"status": status, "reason": None, "step": 3000 * n_evals,
                                                     "updated": "2024-05-01T12:00:00+00:00"}))
    lines = [{"step": 3000 * i, "val/acc": min(1.0, 0.5 + 0.1 * i), "gen/acc": min(0.95, 0.1 * i * depth / 4),
              "train/loss": 1.0 / i, "probe/weight_norm": 30.0 * depth + i, "probe/attn_entropy": 2.0 - 0.1 * i,
              "probe/tscore": 0.4 + 0.03 * i, "probe/tparseval": 0.5 + 0.02 * i,
              "probe/tparseval_right_branching": 0.66} for i in range(1, n_evals + 1)]
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
    ([], "the following arguments are required: dir"),
])
def test_bad_input_is_one_line_and_exit_2(sweep: Path, tmp_path: Path, capsys, args: list[str], message: str):
    (tmp_path / "empty").mkdir()
    places = {"EMPTY": str(tmp_path / "empty"), "RUNS": str(sweep), "missing-dir": str(tmp_path / "missing")}
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
