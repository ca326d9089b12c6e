"""Time generating each task's splits at paper sizes from scratch (no cache): `python scripts/bench_data.py`.

Prints one Markdown table row per task (generation only, then writing and verifying the cache).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from grokking.data.generate import generate, generation_config
from grokking.data.store import cache_config, cache_key, read_cache, write_cache

PAPER_SIZES = {"qf": (100_000, 1_000, 10_000), "ti": (100_000, 1_000, 10_000), "dyck": (200_000, 20_000, 20_000)}


def bench(name: str, seed: int, root: str) -> tuple[float, float]:
    n_train, n_val, n_gen = PAPER_SIZES[name]
    task = SimpleNamespace(name=name, n_train=n_train, n_val=n_val, n_gen=n_gen, dyck_k=20, dyck_m=10, dyck_min_len=4)
    cfg = SimpleNamespace(task=task, data=SimpleNamespace(dir=root, seed=seed, source=None))
    start = time.perf_counter()
    train, val, gen = generate(generation_config(task), seed)
    generated = time.perf_counter()
    config = cache_config(cfg)
    directory = Path(root) / name / cache_key(config)
    write_cache(directory, config, {"train": train, "val": val, "gen": gen})
    read_cache(directory, config)
    return generated - start, time.perf_counter() - generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| task | sizes (train/val/gen) | generate (s) | write + verify cache (s) |")
    print("|---|---|---|---|")
    total = 0.0
    with tempfile.TemporaryDirectory() as root:
        for name, sizes in PAPER_SIZES.items():
            gen_s, io_s = bench(name, args.seed, root)
            total += gen_s + io_s
            print(f"| {name} | {'/'.join(f'{n:,}' for n in sizes)} | {gen_s:.1f} | {io_s:.1f} |")
    print(f"| all | | | total {total:.1f} s |")


if __name__ == "__main__":
    main()
