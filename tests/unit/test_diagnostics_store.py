"""Probe sets, recording and resume-safe storage of the diagnostics (grokking.diagnostics) on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli.compose import compose_config
from grokking.data import load_task_data, question
from grokking.diagnostics import Diagnostics, DiagnosticsError
from grokking.diagnostics.probesets import ProbeSet, read_critical, read_positions
from grokking.diagnostics.store import Store
from grokking.model import build_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diag")
    overrides = ["experiment=smoke", "diagnostics=on", f"data.dir={tmp}/data", "diagnostics.n_per_split=12",
                 "diagnostics.log_start=2", "task.steps=20"]
    cfg = compose_config([*overrides, f"run_dir={tmp}/run"])
    return cfg, load_task_data(cfg), tmp, overrides


def nudge(model, seed: int) -> None:
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=generator))


def test_probe_sets_are_fixed_across_seeds_and_annotated(setup):
    cfg, data, tmp, overrides = setup
    other_seed = compose_config([*overrides, "seed=7", f"run_dir={tmp}/other"])
    a, b = ProbeSet(cfg, data), ProbeSet(other_seed, data)
    assert a.hash == b.hash and len(a.splits["gen"].examples) == 12
    gen = a.splits["gen"]
    for row, lin, hier in zip(gen.critical_rows, gen.linear_choice, gen.hier_choice, strict=True):
        example = gen.examples[gen.columns["sentence"][row]]
        t = gen.columns["t"][row]
        assert t == example.n_input and example.tokens[t - 1] == "quest"  # the token right after `quest`
        decl = list(example.tokens[: example.n_input - 2])
        assert gen.candidate_tokens[0][lin] == question(decl, "linear")[0]
        assert gen.candidate_tokens[0][hier] == question(decl, "hierarchical")[0] == example.tokens[t]
        assert lin != hier  # OOD: the rules disagree on the main auxiliary
    different = compose_config([*overrides, "diagnostics.seed=99", f"run_dir={tmp}/x"])
    assert ProbeSet(different, data).hash != a.hash


def test_record_truncate_finalize_is_consistent(setup):
    cfg, data, tmp, _ = setup
    model = build_model(cfg.model, data.vocab.size)
    diag = Diagnostics(cfg, data, tmp / "run", torch.device("cpu"))
    assert diag.due(0) and diag.due(2) and diag.due(20) and not diag.due(1)
    diag.truncate_after(-1)
    seen = {}
    for step in (0, 2, 3, 4):
        nudge(model, step)
        diag.record(model, step, 0.1)
        seen[step] = Store(diag.store.dir).load("surprisal/val")[:, -1].copy()
    assert model.training  # restored
    diag.finalize()  # consolidated mid-run (e.g. a run extended later), then resumed at step 2
    resumed = Diagnostics(cfg, data, tmp / "run", torch.device("cpu"))
    resumed.truncate_after(2)
    for step in (3, 4, 20):
        nudge(model, 100 + step)
        resumed.record(model, step, 0.1)
    resumed.record(model, 20, 0.1)  # already recorded: skipped
    resumed.finalize()
    resumed.finalize()  # idempotent
    store = Store(tmp / "run" / "diagnostics")
    assert store.steps().tolist() == [0, 2, 3, 4, 20]
    positions = read_positions(store.dir / "positions.csv")
    surprisal = np.load(store.dir / "surprisal.val.npy")
    assert surprisal.shape == ((positions["split"] == "val").sum(), 5) and surprisal.dtype == np.float16
    np.testing.assert_array_equal(surprisal[:, 1], seen[2].astype(np.float16))
    assert not np.array_equal(surprisal[:, 2], seen[3].astype(np.float16))  # redone after the resume
    assert not (store.dir / "surprisal").exists()
    logits = np.load(store.dir / "critical_logits.gen.npy")
    assert logits.shape == (5, len(read_critical(store.dir)["gen"]["rows"]), 4)
    hist = np.load(store.dir / "param_hist.npy")
    numel = sum(p.numel() for p in model.parameters())
    assert hist.shape[0] == 5 and (hist.sum(axis=(1, 2)) == numel).all()
    stats = (store.dir / "param_stats.csv").read_text().splitlines()
    assert len(stats) == 1 + 5 * hist.shape[1]
    assert json.loads((store.dir / "meta.json").read_text())["probe_hash"] == resumed.probes.hash


def test_changed_probe_sets_are_refused(setup):
    cfg, data, tmp, overrides = setup
    Diagnostics(cfg, data, tmp / "guard", torch.device("cpu"))
    changed = compose_config([*overrides, "diagnostics.seed=5", f"run_dir={tmp}/guard"])
    with pytest.raises(DiagnosticsError, match="different probe sets"):
        Diagnostics(changed, data, tmp / "guard", torch.device("cpu"))


def test_analysis_and_cross_run_variability(setup):
    import shutil

    from grokking.diagnostics.analyze import analyze_run, analyze_seeds
    from grokking.diagnostics.store import read_csv

    _, _, tmp, _ = setup
    run = tmp / "run"  # recorded by test_record_truncate_finalize_is_consistent
    twin = tmp / "twin"
    shutil.copytree(run, twin)
    events = analyze_run(run)
    assert events["early_stop"] is None and set(events["t_bif"]) >= {"output.weight"}  # no metrics.jsonl here
    rows = read_csv(run / "diagnostics" / "analysis" / "token_metrics.csv")
    assert rows and all(r["aoa_gam"] for r in rows)
    out = analyze_seeds([run, twin], tmp / "seeds")
    cross = read_csv(out / "cross_run.csv")
    assert len(cross) == len(rows) and all(float(r["cross_run_var"]) == 0.0 for r in cross)
