"""`grok report`: figures and tables from one run or a whole (possibly still running) sweep, read from each run's
metrics.jsonl. Writes metrics_tidy.csv, curves_<task>.png, success.png, probes_<task>.png, report.md and
report.html, and prints success after in-domain saturation (the paper's Fig 3a criterion) per run and depth.

    grok report runs/                          # every run under runs/ -> runs/report/
    grok report runs/qf/depth=6/seed=42        # a single run
    grok report runs/ --out reports/qf_sweep   # somewhere else
    grok report runs/ti --threshold 0.9        # stricter success / grokking threshold
    grok report runs/ --weights ema0.999       # the weight-averaged evaluation (*/acc_ema0.999)
    grok report runs/ --released ../shared/reference-data/released-logs   # the paper's own logs beside ours
"""

from __future__ import annotations

import argparse
import sys

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
    parser.add_argument("--weights", default="raw",
                        help="whose evaluation to report: raw (the trained weights, default) or "
                             "ema<decay>, their moving average (ema0.999 reads val/acc_ema0.999 and "
                             "gen/acc_ema0.999); runs that did not log them are skipped")
    parser.add_argument("--released", metavar="DIR",
                        help="a directory of the paper's released per-seed logs (W&B CSV exports: "
                             "all_val_scores_lm.csv, all_test_scores_lm.csv, all_scores_tense.csv, "
                             "dyck_6.csv), whose success table is computed the same way and shown beside "
                             "ours")
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    if not 0.0 < args.threshold <= 1.0:
        fail(f"--threshold must be in (0, 1], got {args.threshold}")
    with reported_errors():
        from grokking.report.build import build_report
        from grokking.report.document import to_text

        result = build_report(args.dir, args.out, args.threshold, args.weights, args.released)
        for warning in result.warnings:
            print(f"grok: warning: {warning}", file=sys.stderr)
        if result.success:
            print(to_text(result.success))
        states = [r.state for r in result.runs]
        problems = sum(bool(r.problems) for r in result.runs)
        print(f"{len(states)} runs ({states.count('done')} done, {states.count('unfinished')} unfinished, "
              f"{states.count('failed')} failed; {problems} with problems) -> {result.markdown}")
    return 0
