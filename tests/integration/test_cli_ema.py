"""`eval.ema` end to end: averaged-weight metrics are logged beside the raw ones, never change them, resume exactly
and, in a seed pack, equal each member's single run's.

    grok train experiment=smoke 'eval.ema=[0.99]'
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import GROK

EXACT = ["deterministic=true", "model.dropout=0", "model.attn_dropout=0"]
EMA = "eval.ema=[0.9,0.99]"


def train(cwd: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run([GROK, "train", "experiment=smoke", f"data.dir={data_dir}", *EXACT, *extra], cwd=cwd,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def records(root: Path, seed: int = 42) -> list[dict]:
    path = root / "runs" / "qf-smoke" / "depth=2" / f"seed={seed}" / "metrics.jsonl"
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in path.read_text().splitlines()]


def test_averages_are_logged_beside_the_raw_metrics_and_leave_them_unchanged(tmp_path, data_dir):
    (tmp_path / "plain").mkdir()
    train(tmp_path / "plain", data_dir)
    (tmp_path / "ema").mkdir()
    result = train(tmp_path / "ema", data_dir, EMA)
    plain, averaged = records(tmp_path / "plain"), records(tmp_path / "ema")
    for mine, theirs in zip(averaged, plain, strict=True):
        assert {k: v for k, v in mine.items() if "_ema" not in k} == theirs  # raw metrics identical
        for decay in ("0.9", "0.99"):
            for key in ("val/acc", "gen/acc", "val/loss", "gen/loss"):
                assert f"{key}_ema{decay}" in mine
    assert averaged[0]["gen/loss_ema0.9"] == averaged[0]["gen/loss"]  # step 0: the averages are the weights
    assert averaged[-1]["gen/loss_ema0.9"] != averaged[-1]["gen/loss"]  # then they lag behind them
    assert averaged[-1]["gen/loss_ema0.99"] != averaged[-1]["gen/loss_ema0.9"]
    assert "gen/acc_ema0.99=" in result.stdout


@pytest.mark.slow
def test_a_run_with_averages_resumes_exactly(tmp_path, data_dir):
    (tmp_path / "whole").mkdir()
    train(tmp_path / "whole", data_dir, EMA)
    (tmp_path / "parts").mkdir()
    train(tmp_path / "parts", data_dir, EMA, "task.steps=30")
    train(tmp_path / "parts", data_dir, EMA)  # extended from its step-30 checkpoint, averages included
    assert records(tmp_path / "parts") == records(tmp_path / "whole")


@pytest.mark.slow
def test_pack_members_average_as_their_single_runs(tmp_path, data_dir):
    (tmp_path / "pack").mkdir()
    train(tmp_path / "pack", data_dir, EMA, "seeds=[42,52]")
    for seed in (42, 52):
        (tmp_path / f"alone{seed}").mkdir()
        train(tmp_path / f"alone{seed}", data_dir, EMA, f"seed={seed}")
        for mine, theirs in zip(records(tmp_path / "pack", seed), records(tmp_path / f"alone{seed}", seed),
                                strict=True):
            assert mine.keys() == theirs.keys()
            for key, value in theirs.items():
                if "acc" in key:
                    assert mine[key] == value, key
                elif value is not None:
                    assert mine[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
