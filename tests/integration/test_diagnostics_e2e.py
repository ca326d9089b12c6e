"""`grok train ... diagnostics=on`, then `grok analyze` and `grok report` on the real console script."""

from __future__ import annotations

import json

import numpy as np
import pytest

RUN = "runs/qf-smoke/depth=2/seed=42"
TRAIN = ["train", "experiment=smoke", "diagnostics=on", "task.steps=20", "task.eval_every=10",
         "diagnostics.n_per_split=15", "diagnostics.log_start=2", "probes.enabled=false"]


@pytest.mark.slow
def test_train_analyze_report_with_diagnostics(tmp_path, data_dir, grok):
    trained = grok(*TRAIN, f"data.dir={data_dir}", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    diag = tmp_path / RUN / "diagnostics"
    steps = [int(line.split(",")[1]) for line in (diag / "evals.csv").read_text().splitlines()[1:]]
    assert steps[0] == 0 and steps[-1] == 20 and {2, 3, 10} <= set(steps)
    assert np.load(diag / "surprisal.gen.npy").shape[1] == len(steps)  # consolidated by finalize()
    assert not (diag / "surprisal").exists()

    analyzed = grok("analyze", RUN, cwd=tmp_path)
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]
    events = json.loads((diag / "events.json").read_text())
    assert events["early_stop"] in (0, 10, 20) and "t_bif_group" in events  # 0: val/acc never beat step 0
    header = (diag / "analysis" / "token_metrics.csv").read_text().splitlines()[0]
    for column in ("final_surprisal", "variability", "aoa_sigmoid", "aoa_gam", "forgettability", "aoa_linear",
                   "aoa_hier"):
        assert column in header
    assert (diag / "analysis" / "token_fitting.csv").stat().st_size > 0

    reported = grok("report", "runs", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr[-2000:]
    report = tmp_path / "runs" / "report"
    for kind in ("heatmap", "aoa", "auxiliaries", "bifurcation"):
        assert (report / f"diag_qf_smoke_depth_2_seed_42_{kind}.png").exists(), kind
    assert "Learning-dynamics diagnostics" in (report / "report.md").read_text()

    missing = grok("analyze", "runs/nowhere", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("grok: error:")
