"""`grok analyze`: learning-dynamics metrics for runs trained with diagnostics=on (docs/diagnostics.md).

    grok analyze runs/qf/depth=6/seed=42                     # per-position/type metrics, fitting, bifurcation, events
    grok analyze --seeds runs/qf/depth=6/seed=*              # + cross-run variability across the seeds
    grok analyze --seeds runs/qf/depth=6/seed=* --out out/   # cross-run files somewhere else

Per run, results go to <run_dir>/diagnostics/analysis/ and <run_dir>/diagnostics/events.json; with --seeds each run
is analysed and the cross-run files go to --out (default: <common parent>/diagnostics_seeds).
"""

from __future__ import annotations

import argparse

from cli.errors import fail, reported_errors


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        fail(f"{message} (grok analyze --help for usage)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="grok analyze", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a run directory trained with diagnostics=on")
    parser.add_argument("--seeds", nargs="+", metavar="RUN_DIR", help="run directories of one depth (>= 2 seeds)")
    parser.add_argument("--out", help="directory of the cross-run files (default: <common parent>/diagnostics_seeds)")
    args = parser.parse_args(argv)
    if (args.run_dir is None) == (args.seeds is None):
        fail("give one run directory, or --seeds with two or more (grok analyze --help for usage)")
    return args


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    with reported_errors():
        from grokking.diagnostics.analyze import analyze_run, analyze_seeds

        for run_dir in [args.run_dir] if args.run_dir else args.seeds:
            events = analyze_run(run_dir)
            shown = {k: events[k] for k in ("early_stop", "t_id", "grok_step")}
            groups = ", ".join(f"{g}={s}" for g, s in sorted(events["t_bif_group"].items())) or "none"
            print(f"{run_dir}: {shown}; bifurcation onsets by group: {groups}")
        if args.seeds:
            out = analyze_seeds(args.seeds, args.out)
            print(f"cross-run variability over {len(args.seeds)} runs -> {out}")
    return 0
