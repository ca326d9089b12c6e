"""How much of a run is evaluation: one evaluation's wall time against `eval_every` training steps, side by side.

    git show <rev>:grokking/evaluate.py > /tmp/evaluate_before.py     # the implementation to compare against
    python scripts/bench_eval.py --before /tmp/evaluate_before.py --rounds 3

At the demo shape (experiment=demo: QF, depth 8, d 128, batch 8; val 1k + gen 10k), in one process and
interleaved round by round (this machine is noisy): a single run's training step (the trainer's SingleStep), then
one evaluation of that model by (a) the `--before` module's `evaluate` and (b) today's Evaluator kept for the run
(as the trainer keeps it: splits encoded once), both on the full gen set (task.eval_gen_sample=0), (c) today's
Evaluator on a fixed 2,000-line gen subset (task.eval_gen_sample=2000 task.eval_gen_fixed=true), and (d) the
preset as it ships: (c) for the raw weights and again for their 0.999 moving average swapped in (eval.ema=[0.999]),
as the trainer does. The share of a run's wall time spent evaluating is t_eval / (t_eval + eval_every * t_step);
medians over rounds. The metrics of (a) and (b) are printed side by side.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.compose import compose_config  # noqa: E402
from grokking.batches import BatchOrder  # noqa: E402
from grokking.data import load_task_data  # noqa: E402
from grokking.ema import WeightAverages, ema_suffix  # noqa: E402
from grokking.evaluate import Evaluator  # noqa: E402
from grokking.model import build_model  # noqa: E402
from grokking.pack import ScoredModels  # noqa: E402
from grokking.step import SingleStep  # noqa: E402


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("evaluate_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="an older grokking/evaluate.py to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="training steps timed per round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = compose_config(["experiment=demo", f"data.dir={args.data_dir}", "task.eval_gen_sample=0"])
    sampled = compose_config(["experiment=demo", f"data.dir={args.data_dir}", "task.eval_gen_sample=2000",
                              "task.eval_gen_fixed=true"])
    data = load_task_data(cfg)
    device = torch.device("cpu")
    torch.manual_seed(1)
    model = build_model(cfg.model, data.vocab.size)
    step = SingleStep(model, cfg, device, data.vocab.pad)
    batches = BatchOrder([data.vocab.encode(e.tokens) for e in data.train], data.vocab, cfg.train.batch_size, 1)
    autocast = torch.autocast("cpu", enabled=False)
    before = load_module(args.before) if args.before else None
    kept, kept_sampled = (Evaluator(data, c.task, cfg.train.eval_batch_size, device) for c in (cfg, sampled))
    decays = list(sampled.eval.ema)  # the preset's averages, as the trainer keeps them
    averages = WeightAverages(step.weights(), decays, None)
    times: dict[str, list[float]] = {"step": [], "before": [], "one pass, kept": [], "fixed 2k gen": [],
                                     "fixed 2k gen, raw + EMA (the preset)": []}

    def raw_and_average(members):
        kept_sampled(members, [1], 0)
        for decay in decays:
            with averages.swapped_in(decay):
                kept_sampled(members, [1], 0, ema_suffix(decay))
    done = 0
    for _ in range(args.rounds):
        start = time.perf_counter()
        for i in range(args.steps):
            step([batches.batch(done + i)], 3e-4, 1.0, autocast, device)
            averages.update()
        elapsed = time.perf_counter() - start
        done += args.steps
        times["step"].append(elapsed / args.steps)
        model.eval()
        members = ScoredModels.of(model)
        with torch.no_grad():
            if before is not None:
                elapsed, [old] = timed(before.evaluate, members, data, cfg.task, cfg.train.eval_batch_size, device,
                                       [1], 0)
                times["before"].append(elapsed)
            elapsed, [new] = timed(kept, members, [1], 0)
            times["one pass, kept"].append(elapsed)
            elapsed, _ = timed(kept_sampled, members, [1], 0)
            times["fixed 2k gen"].append(elapsed)
            elapsed, _ = timed(raw_and_average, members)
            times["fixed 2k gen, raw + EMA (the preset)"].append(elapsed)
        model.train()
        if before is not None:
            print("metrics before:", {k: round(v, 6) for k, v in old.items()})
            print("metrics now:   ", {k: round(v, 6) for k, v in new.items()})
    t_step = statistics.median(times["step"])
    every = cfg.train.eval_every
    print(f"\nexperiment=demo (depth {cfg.depth}, d {cfg.model.d_model}), {args.threads} thread(s), "
          f"{args.rounds} rounds: training step {1000 * t_step:.1f} ms; evaluation every {every} steps")
    print("| evaluation | s per evaluation | = training steps | share of a run's wall time |")
    print("|---|---|---|---|")
    for name in ("before", "one pass, kept", "fixed 2k gen", "fixed 2k gen, raw + EMA (the preset)"):
        if times[name]:
            t_eval = statistics.median(times[name])
            print(f"| {name} | {t_eval:.2f} | {t_eval / t_step:.0f} | {t_eval / (t_eval + every * t_step):.0%} |")


if __name__ == "__main__":
    main()
