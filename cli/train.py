"""`grok train`: train one LM run, or a grid of runs with -m. The run directory derives from the config,
so re-running a command resumes it, and a finished run is skipped.

    grok train task=qf depth=6 seed=3                 # the paper's QF setting at one seed
    grok train experiment=cpu                         # the README's CPU-sized main job
    grok train experiment=smoke task=dyck             # seconds on a laptop
    grok train -m task=qf depth=2,4,6,8,10 seed='range(42,142,10)'   # a local sweep
    grok train -m hydra/launcher=slurm +sweep=paper_qf  # the same grid as one SLURM job array
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cli.compose import CONFIG_DIR, CONFIG_NAME, expand_sweep, register_schema, split_argv, validate_jobs
from cli.errors import reported_errors
from cli.main import version
from grokking.errors import GrokError
from grokking.rundir import RunDir
from grokking.status import run_status, summary

FAILED_JOBS: list[str] = []  # one-line reasons of jobs of this process's multirun that failed


@hydra.main(config_path=CONFIG_DIR, config_name=CONFIG_NAME, version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    from grokking.train import Preempted, train

    try:
        train(cfg)
    except GrokError as exc:
        # Preempted exits instead (SystemExit is no job failure to Hydra or submitit): a local sweep stops, and a
        # requeued SLURM task leaves no failed result behind, so the launcher waits for its next attempt.
        if HydraConfig.get().mode == RunMode.MULTIRUN and not isinstance(exc, Preempted):
            # A failed job must not stop the sweep: report it on one line, and the summary at the end counts it.
            FAILED_JOBS.append(f"{cfg.run_dir}: {exc}")
            print(f"grok: error: {cfg.run_dir}: {exc}", file=sys.stderr)
            return
        print(f"grok: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


def run(argv: list[str]) -> int:
    flags, overrides = split_argv(argv)
    if "--version" in flags:  # Hydra's own --version would compose the config and create the run directory
        print(version())
        return 0
    multirun = bool({"-m", "--multirun"} & set(flags)) or any(o.startswith("+sweep=") for o in overrides)
    configs = []
    if not any(f in ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c") for f in flags):
        with reported_errors():
            configs = validate_jobs(expand_sweep(overrides) if multirun else [overrides])
            from grokking.train import pick_device  # torch: only once the config is known to be good

            for device in {c.device for c in configs}:
                pick_device(device)  # device=cuda without CUDA: one line, and no run directory
            if not multirun:
                RunDir(configs[0].run_dir).create()  # Hydra would create it next, with a traceback on failure
    register_schema()
    sys.argv = ["grok-train", *argv]
    with reported_errors():  # Ctrl-C before training installs its own handlers: one line, exit 130
        hydra_main()
    if not (multirun and configs):
        return 0
    statuses = [run_status(Path(c.run_dir), c.train.steps) for c in configs]
    unfinished = [s for s in statuses if s.state != "done"]
    print(f"grok: sweep: {summary(statuses)}")
    for failure in FAILED_JOBS:
        print(f"grok: failed: {failure}", file=sys.stderr)
    return 1 if FAILED_JOBS or unfinished else 0
