"""`grok`: one console script, one subcommand per job. Hydra parses everything after the subcommand.

    grok train task=qf depth=6 seed=3              # one run (resumes if its directory exists)
    grok train experiment=smoke                    # a tiny CPU run
    grok train -m depth=2,4,6,8,10 seed='range(10)'  # a sweep
    grok data task=dyck                            # generate and cache the Dyck splits
    grok report runs/                              # figures and tables from a sweep
    grok --version                                 # grok's version (also `grok train --version`)
    source <(grok completion bash)                 # tab completion in this shell
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

SUBCOMMANDS = {
    "train": "train a transformer LM (Hydra overrides; -m for sweeps)",
    "data": "generate, cache and export a task's datasets (task=qf, ti, dyck or a registered one)",
    "probe": "compute model-internal probes for a run's saved snapshots",
    "report": "figures and tables from a run or a sweep (paper Fig 2/3/4 style)",
    "sweep": "emit a sweep's jobs as override lines for scripts/array.sbatch",
    "status": "done / running / preempted / failed / missing runs of a sweep",
    "analyze": "learning-dynamics metrics for runs with diagnostics=on",
    "completion": "tab completion for bash: source <(grok completion bash)",
}

USAGE = "usage: grok [--version] <subcommand> [args...]   (grok <subcommand> --help for its options)"


def version() -> str:
    return f"grok {metadata.version('grok')}"


def print_help() -> None:
    print(USAGE)
    print("\nsubcommands:")
    width = max(map(len, SUBCOMMANDS))
    for name, summary in SUBCOMMANDS.items():
        print(f"  {name:<{width}}  {summary}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print_help()
        return 0
    if argv[0] in ("-V", "--version"):
        print(version())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"grok: error: unknown subcommand {name!r} (choose from {', '.join(SUBCOMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(f"cli.{name}")
    return module.run(rest)


if __name__ == "__main__":
    sys.exit(main())
