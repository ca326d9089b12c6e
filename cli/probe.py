"""`grok probe`: model-internal probes (weight norms, attention entropy, tree projections) for a run's saved
snapshots, written to <run_dir>/probes.jsonl. Steps already there are skipped; --force recomputes them all.

    grok probe runs/qf/depth=6/seed=42
    grok probe runs/qf/depth=6/seed=42 --device cuda --force
"""

from __future__ import annotations

from pathlib import Path

from cli.errors import OneLineParser, reported_errors


def run(argv: list[str]) -> int:
    parser = OneLineParser(prog="grok probe", description="Compute model-internal probes for a run's saved "
                                     "snapshots into <run_dir>/probes.jsonl, skipping steps already there.")
    parser.add_argument("run_dir", type=Path, help="a run directory (holds config.yaml and ckpt/)")
    parser.add_argument("--force", action="store_true", help="recompute steps already in probes.jsonl")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    args = parser.parse_args(argv)
    with reported_errors():
        from grokking.probes.offline import probe_run
        from grokking.train import pick_device

        probe_run(args.run_dir, pick_device(args.device), force=args.force)
    return 0
