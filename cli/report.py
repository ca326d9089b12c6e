"""`grok report`: figures and tables from one run or a whole (possibly still running) sweep, read from each run's
metrics.jsonl. Writes metrics_tidy.csv, curves_<task>.png, success.png, probes_<task>.png, report.md and report.html.

    grok report runs/                          # every run under runs/ -> runs/report/
    grok report runs/qf/depth=6/seed=42        # a single run
    grok report runs/ --out reports/qf_sweep   # somewhere else
    grok report runs/ti --threshold 0.9        # stricter success / grokking threshold
"""

from __future__ import annotations

import argparse

from cli.errors import fail, reported_errors


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes end like every other grok error: one `grok: error: ...` line, exit 2."""

    def error(self, message: str) -> None:
        fail(f"{message} (grok report --help for usage)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="grok report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="a run directory or any directory above run directories (e.g. runs/)")
    parser.add_argument("--out", help="report directory (default: <dir>/report)")
    parser.add_argument("--threshold", type=float, default=0.8,
                        help="OOD accuracy for success and the grokking step (default: 0.8, as in the paper)")
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    if not 0.0 < args.threshold <= 1.0:
        fail(f"--threshold must be in (0, 1], got {args.threshold}")
    with reported_errors():
        from grokking.report.build import build_report

        result = build_report(args.dir, args.out, args.threshold)
        states = [r.state for r in result.runs]
        problems = sum(bool(r.problems) for r in result.runs)
        print(f"{len(states)} runs ({states.count('done')} done, {states.count('unfinished')} unfinished, "
              f"{states.count('failed')} failed; {problems} with problems) -> {result.markdown}")
    return 0
