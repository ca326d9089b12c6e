"""Tree-projection cost: the released per-span SCI computation vs grok's causal trick, and one full probe.

    python scripts/bench_probes.py                        # QF, paper model (depth 6, d 512, 8 heads), CPU
    python scripts/bench_probes.py --device cuda --full   # also time the whole 10k-sentence Prober call

Both methods run on the same randomly initialised paper-size model (eval mode, fp32) and the same sentences, drawn
from the run's probe inputs (docs/metrics.md). The naive method is the original's: n(n+1)/2 masked passes per sentence,
the spans of one sentence batched together (256 per pass), one sentence at a time. Ours packs all start positions
of many sentences into `probes.batch_size`-row passes. The full probe (norms, attention entropy, SCI charts,
greedy + CKY trees, tscore, tparseval) is timed on --subset sentences and extrapolated to 10k unless --full.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cli.compose import compose_config
from grokking.data import load_task_data
from grokking.model import build_model
from grokking.pack import ScoredModels
from grokking.probes import Prober
from grokking.probes.sample import draw_sample, probe_inputs
from grokking.probes.sci import naive_sci_chart, sci_charts
from grokking.probes.trees import Projections


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="qf")
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--naive", type=int, default=24, help="sentences for the side-by-side comparison")
    parser.add_argument("--subset", type=int, default=500, help="sentences for the full-probe extrapolation")
    parser.add_argument("--full", action="store_true", help="time the full 10k-sentence probe instead")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    cfg = compose_config([f"task={args.task}", f"depth={args.depth}", f"device={args.device}"])
    data = load_task_data(cfg)
    sample = draw_sample(probe_inputs(data.name, data.train, cfg.model.max_len - 1), cfg.probes.sample_size, cfg.probes.sample_seed)
    model = build_model(cfg.model, data.vocab.size).to(device).eval()
    vocab, batch = data.vocab, cfg.probes.batch_size
    print(f"{data.name}: {len(sample)} probe sentences, mean {np.mean([len(s) for s in sample]):.1f} words; "
          f"depth {args.depth}, d {cfg.model.d_model}, {cfg.model.n_heads} heads, {device}, "
          f"{torch.get_num_threads()} threads, probes.batch_size {batch}")

    rng = np.random.default_rng(1)
    chosen = [vocab.encode(sample[i]) for i in rng.choice(len(sample), size=args.naive, replace=False)]
    with torch.no_grad():
        sci_charts(ScoredModels.of(model), chosen[:4], vocab.sos, vocab.pad, batch, device)[0]  # warm-up both paths
        naive_sci_chart(model, chosen[0], vocab.sos, 256, device)
        naive_s, naive = timed(lambda: [naive_sci_chart(model, s, vocab.sos, 256, device) for s in chosen])
        fast_s, fast = timed(lambda: sci_charts(ScoredModels.of(model), chosen, vocab.sos, vocab.pad, batch, device)[0])
    diff = max(float(np.abs(a - b).max()) for a, b in zip(naive, fast, strict=True))
    print(f"SCI charts on the same {len(chosen)} sentences: naive {naive_s / len(chosen):.4f} s/sentence, "
          f"causal trick {fast_s / len(chosen):.4f} s/sentence, speed-up {naive_s / fast_s:.1f}x, "
          f"max |diff| {diff:.1e}")

    count = len(sample) if args.full else min(args.subset, len(sample))
    subset_ids = [vocab.encode(s) for s in sample[:count]]
    with torch.no_grad():
        charts_s, charts = timed(lambda: sci_charts(ScoredModels.of(model), subset_ids, vocab.sos, vocab.pad, batch, device)[0])
    trees_s, _ = timed(lambda: Projections(charts).tscores(np.random.default_rng(0)))
    print(f"{count} sentences: SCI charts {charts_s / count * 1e3:.2f} ms/sentence, "
          f"trees (greedy + CKY) {trees_s / count * 1e3:.3f} ms/sentence")

    with tempfile.TemporaryDirectory() as run_dir:
        cfg.probes.sample_size = count
        prober = Prober(cfg, data, Path(run_dir), device)
        probe_s, metrics = timed(lambda: prober(model, 0))
    label = "measured" if args.full or count >= 10_000 else f"extrapolated from {count} sentences"
    print(f"full probe on {count} sentences: {probe_s:.1f} s -> {probe_s / count * 10_000:.1f} s per "
          f"10k-sentence probe ({label}); tscore {metrics['probe/tscore']:.3f}")


if __name__ == "__main__":
    main()
