"""`grok status`: done / running / stale / preempted / failed / missing for every run of a sweep.

    grok status runs                                  # every run directory under runs/
    grok status runs/qf                               # only the QF runs
    grok status runs --sweep paper_qf                 # the preset's 50 runs, missing ones included
    grok status runs --sweep smoke task.steps=400     # overrides as given to `grok train -m`
    grok status runs task=ti depth=2,4 seed='range(3)'  # a grid from overrides alone

Columns: run, state, last step / planned steps, last in-domain (val/acc) and OOD (gen/acc) accuracy, for a
running run the time left at its recent speed (eta), and the reason of a failure or preemption. `stale`
means status.json says running but no live process holds the run's lock (killed); re-launching the sweep
resumes it. With --sweep or overrides, <dir> is the runs root (paths.runs).
Always exits 0 once <dir> exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.errors import OneLineParser, fail, reported_errors
from cli.sweep import sweep_jobs, validated_configs
from grokking.status import find_run_dirs, render, sweep_status


def hydra_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def expected_runs(root: Path, sweep: str | None, overrides: list[str]) -> dict[Path, int]:
    """Run directory -> planned steps of every job the sweep would launch with paths.runs=<root>."""
    jobs = sweep_jobs(sweep, [*overrides, f"paths.runs={hydra_quote(str(root))}"])
    return {Path(cfg.run_dir): int(cfg.train.steps) for cfg in validated_configs(sweep, jobs)}


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="grok status", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="a runs root, a part of it, or one run directory")
    p.add_argument("overrides", nargs="*", help="Hydra overrides that define the expected grid (as for grok train -m)")
    p.add_argument("--sweep", help="a preset in conf/sweep/ (paper_qf, paper_ti, paper_dyck, smoke): list its runs")
    return p


def run(argv: list[str]) -> int:
    if not argv:  # argparse would also call the optional overrides required
        parser().error("the following arguments are required: dir")
    args = parser().parse_intermixed_args(argv)
    root = Path(args.dir)
    if not root.is_dir():
        fail(f"no such directory: {root}")
    with reported_errors():
        expected = expected_runs(root, args.sweep, args.overrides) if args.sweep or args.overrides else None
        statuses = sweep_status(root, expected)
    print(render(statuses, root))
    if expected is not None:
        others = [p for p in find_run_dirs(root) if p not in expected]
        if others:
            print(f"{len(others)} other run directories under {root} are not part of this sweep")
    return 0
