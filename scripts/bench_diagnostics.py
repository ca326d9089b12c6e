"""Diagnostics cost at default settings: one diagnostic evaluation vs the training it interrupts, and storage.

    python scripts/bench_diagnostics.py                  # QF, paper model (depth 6, d 512, 8 heads), CPU
    python scripts/bench_diagnostics.py --task dyck --device cuda

Times `Diagnostics.record` (surprisal on the three 2,000-sentence probe splits + candidate logits + parameter
statistics and histograms) on a randomly initialised paper-size model, and full training steps (batch 8, AdamW,
forward + backward + clip + step) on the same model. Reports the overhead per linear interval
(record / (linear_every x step)) and over a whole run (every evaluation of the default schedule for `--steps` steps
vs `--steps` training steps), and the bytes one evaluation writes times the schedule's evaluation count.
The training split is cut to --n-train sentences to keep data generation short; it does not change either timing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cli.compose import compose_config
from grokking.batches import BatchOrder
from grokking.data import load_task_data
from grokking.diagnostics import Diagnostics
from grokking.model import build_model, lm_loss


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="qf")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=300_000, help="run length for the whole-run numbers")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--train-steps", type=int, default=30, help="training steps to time")
    parser.add_argument("--repeats", type=int, default=3, help="diagnostic evaluations to time")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config([f"task={args.task}", "diagnostics=on", f"task.n_train={args.n_train}",
                              f"task.steps={args.steps}", f"data.dir={tmp}/data", f"run_dir={tmp}/run"])
        data = load_task_data(cfg)
        torch.manual_seed(0)
        model = build_model(cfg.model, data.vocab.size).to(device)
        start = time.perf_counter()
        diag = Diagnostics(cfg, data, Path(tmp) / "run", device)
        build_s = time.perf_counter() - start
        diag.truncate_after(-1)
        store = diag.store.dir
        fixed = directory_bytes(store)
        record_s = []
        for i in range(args.repeats):
            start = time.perf_counter()
            diag.record(model, i, 0.0)
            record_s.append(time.perf_counter() - start)
        per_eval = (directory_bytes(store) - fixed - (store / "param_edges.npz").stat().st_size) / args.repeats

        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batches = BatchOrder([data.vocab.encode(e.tokens) for e in data.train], data.vocab, cfg.train.batch_size, 0)
        model.train()
        step_s = []
        for step in range(args.train_steps + 3):
            inputs, targets = (t.to(device) for t in batches.batch(step))
            start = time.perf_counter()
            loss = lm_loss(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step >= 3:  # warm-up steps excluded
                step_s.append(time.perf_counter() - start)

    record, step = statistics.median(record_s), statistics.median(step_s)
    linear_every, n_evals = int(cfg.diagnostics.linear_every), len(diag.schedule)
    positions = sum(s.n_positions for s in diag.probes.splits.values())
    print(f"task {args.task}, device {device}, torch threads {torch.get_num_threads()}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, {positions:,} probe positions")
    print(f"probe-set build (once per run/resume): {build_s:.1f} s")
    print(f"one diagnostic evaluation: {record:.2f} s (median of {record_s and len(record_s)}: "
          f"{', '.join(f'{s:.2f}' for s in record_s)})")
    print(f"one training step: {step * 1000:.0f} ms; {linear_every} steps between linear evaluations: "
          f"{step * linear_every:.0f} s -> overhead per linear interval {record / (step * linear_every):.1%}")
    print(f"{args.steps:,}-step run: {n_evals} diagnostic evaluations, {n_evals * record / 3600:.2f} h of diagnostics "
          f"vs {args.steps * step / 3600:.1f} h of training -> whole-run overhead {n_evals * record / (args.steps * step):.1%}")
    print(f"storage: {per_eval / 1e6:.2f} MB per evaluation, {fixed / 1e6:.1f} MB probe files -> "
          f"{(per_eval * n_evals + fixed) / 1e6:.0f} MB per {args.steps:,}-step run")


if __name__ == "__main__":
    main()
