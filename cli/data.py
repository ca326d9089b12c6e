"""`grok data`: generate (or import), verify and cache a task's splits; optionally export original formats.

    grok data task=qf                       # materialise QF train/val/gen into data/
    grok data task=dyck data.seed=7         # another data seed gives another dataset
    grok data task=ti export=/tmp/ti_orig   # also write tense.{train,dev,gen} in McCoy's format
"""

from __future__ import annotations

from cli.compose import compose_config, split_argv
from cli.errors import fail, reported_errors


def run(argv: list[str]) -> int:
    flags, overrides = split_argv(argv)
    if flags:
        if any(f in ("-h", "--help") for f in flags):
            print(__doc__.strip())
            return 0
        fail(f"grok data takes config overrides only, not {' '.join(flags)}")
    with reported_errors():
        cfg = compose_config(overrides)
        from grokking.data import export_original, load_task_data

        data = load_task_data(cfg)
        print(f"{cfg.task.name}: {len(data.train)} train, {len(data.val)} val, {len(data.gen)} gen -> {data.directory}")
        if cfg.export:
            written = export_original(data, cfg.export)
            print("exported " + ", ".join(str(p) for p in written))
    return 0
