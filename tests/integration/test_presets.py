"""Presets never share a run directory with paper runs: every `experiment=` preset and sweep preset that changes
the training config lands in a directory of its own, and the paper presets keep `runs/<task>/depth=<d>/seed=<s>`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.compose import compose_config, expand_sweep
from grokking.config import CONFIG_DIR
from grokking.rundir import config_hash
from grokking.tasks import TASKS

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (Path(CONFIG_DIR) / "sweep").glob("*.yaml"))


def paper_run(task: str, depth: int, seed: int) -> tuple[str, str]:
    """(run_dir, config hash) of the paper's config for one task, depth and seed."""
    cfg = compose_config([f"task={task}", f"depth={depth}", f"seed={seed}"])
    return cfg.run_dir, config_hash(cfg)


@pytest.mark.parametrize("task", TASKS)
def test_experiment_presets_never_share_a_run_directory(task):
    seen: dict[str, tuple[str, str]] = {}  # run_dir -> (preset, config hash)
    for experiment in EXPERIMENTS:
        cfg = compose_config([f"experiment={experiment}", f"task={task}"])
        if cfg.task.name != task:  # paper_<task> presets pin their own task
            continue
        paper_dir, paper_hash = paper_run(task, cfg.depth, cfg.seed)
        if config_hash(cfg) == paper_hash:
            assert cfg.run_dir == paper_dir == f"runs/{task}/depth={cfg.depth}/seed={cfg.seed}", experiment
        else:
            assert cfg.run_dir != paper_dir and experiment in cfg.run_dir, (experiment, cfg.run_dir)
        if cfg.run_dir in seen:
            other, other_hash = seen[cfg.run_dir]
            assert other_hash == config_hash(cfg), f"{experiment} and {other} share {cfg.run_dir}"
        seen[cfg.run_dir] = (experiment, config_hash(cfg))


def test_the_paper_texts_model_has_its_own_directory():
    cfg = compose_config(["model=paper_literal", "task=ti", "depth=4"])
    assert cfg.model.n_heads == 4 and cfg.model.tied_output and cfg.optim.grad_clip == 10.0
    assert cfg.run_dir == "runs/ti-paper_literal/depth=4/seed=42"


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_presets_land_in_their_presets_directories(sweep):
    jobs = expand_sweep([f"+sweep={sweep}"])
    cfg = compose_config(jobs[0])
    paper_dir, paper_hash = paper_run(cfg.task.name, cfg.depth, cfg.seed)
    if sweep.startswith("paper_"):
        assert config_hash(cfg) == paper_hash and cfg.run_dir == paper_dir
    else:  # its own directory: the preset's name, or (demo_depth) the demo's, whose depth-6 runs it shares
        own = "demo" if sweep == "demo_depth" else sweep
        assert config_hash(cfg) != paper_hash and cfg.run_dir != paper_dir and f"-{own}" in cfg.run_dir


@pytest.mark.slow
def test_smoke_and_cpu_runs_leave_the_paper_directory_alone(tmp_path, grok, data_dir):
    """The README's main job, the smoke run and the paper sweep's first cell: three directories."""
    smoke = grok("train", "experiment=smoke", f"data.dir={data_dir}", "task.steps=2", "task.eval_every=2",
                 "probes.enabled=false", cwd=tmp_path)
    assert smoke.returncode == 0, smoke.stderr
    cpu = grok("train", "experiment=cpu", "task.steps=0", "task.n_train=2000", "task.n_val=50", "task.n_gen=50",
               f"data.dir={data_dir}", "probes.enabled=false", cwd=tmp_path)
    assert cpu.returncode == 0, cpu.stderr
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["qf-cpu", "qf-smoke"]
    assert (runs / "qf-smoke" / "depth=2" / "seed=42" / "status.json").exists()
    assert (runs / "qf-cpu" / "depth=2" / "seed=42" / "status.json").exists()
