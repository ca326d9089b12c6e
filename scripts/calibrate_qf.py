"""Compare generated QF validation sets with McCoy's question.dev, constituent by constituent.

The in-domain weights of grokking/grammars/question.cfg were fitted with this comparison: for every choice the
grammar makes (subject bare/PP/RC, main VP, object, subject RC type, object RC type), the share among generated
val lines (question filter and de-duplication against train applied) against the share in question.dev.

    python scripts/calibrate_qf.py ../shared/reference-data/question.dev --seeds 8
"""

from __future__ import annotations

import argparse
from collections import Counter
from types import SimpleNamespace

from grokking.data import read_original
from grokking.data.generate import generate, generation_config
from grokking.data.qf import structure


def shares(examples) -> dict[tuple[str, str], float]:
    counts: Counter = Counter()
    for example in examples:
        counts.update(structure(list(example.input[:-2])).items())
    totals: Counter = Counter()
    for (slot, _), n in counts.items():
        totals[slot] += n
    return {(slot, choice): n / totals[slot] for (slot, choice), n in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev", help="McCoy's question.dev")
    parser.add_argument("--seeds", type=int, default=8, help="data seeds to pool (1,000 val lines each)")
    args = parser.parse_args()
    reference = shares(read_original(args.dev, "qf"))
    task = SimpleNamespace(name="qf", n_train=100_000, n_val=1_000, n_gen=10)
    val = [e for seed in range(args.seeds) for e in generate(generation_config(task), seed)[1]]
    ours = shares(val)
    print(f"{'slot':12} {'choice':13} {'dev':>6} {'generated':>9}")
    for key in sorted(reference.keys() | ours.keys()):
        print(f"{key[0]:12} {key[1]:13} {reference.get(key, 0):6.3f} {ours.get(key, 0):9.3f}")


if __name__ == "__main__":
    main()
