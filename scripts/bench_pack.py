"""Seed-pack throughput: member-steps/s of a pack of K seeds against K single runs stepped one after another.

    python scripts/bench_pack.py                                  # CPU: experiment=cpu and paper shapes, K 1 2 4 10
    python scripts/bench_pack.py --shapes paper --ks 10 --device cuda --precision bf16 --compile   # CUDA graphs
    python scripts/bench_pack.py --shapes paper --ks 10 --device cuda --eval-sentences 2000   # evaluation too
    python scripts/bench_pack.py --task dyck --shapes paper --ks 10 --device cuda [--keep-padding]   # Dyck batches

Both sides use grok's own training steps (grokking.step.SingleStep / PackStep: the loop's code), real batches
(QF, or Dyck-(20,10) with --task dyck) from each seed's own data order, AdamW, clip 1 and the shape's dropout,
interleaved round by round in one process so machine noise hits both. A member-step is one optimizer step of one
seed; the ratio is pack / singles. --keep-padding: the CUDA eager steps keep the padded layout on mostly-padding
(Dyck) batches instead of skipping the padding (grokking.step.padding_free_index), to time one against the other.
With --eval-sentences N, also one evaluation of every member (grokking.evaluate on N QF val and N gen sentences:
the pack's batched evaluation against K single evaluations), in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from grokking.batches import BatchOrder
from grokking.data.generate import generate, generation_config
from grokking.data.vocab import Vocab
from grokking.evaluate import evaluate
from grokking.model import build_model
from grokking.step import PackStep, SingleStep

SHAPES = {  # (model, batch size): the README's main job (experiment=cpu) and the paper's depth-6 QF model
    "cpu": ({"d_model": 128, "n_heads": 4, "d_ff": 512, "n_layers": 2}, 32),
    "demo": ({"d_model": 128, "n_heads": 4, "d_ff": 512, "n_layers": 4}, 8),
    "paper": ({"d_model": 512, "n_heads": 8, "d_ff": 2048, "n_layers": 6}, 8),
}


def config(model: dict, batch_size: int, compile_model: bool, precision: str = "fp32", max_len: int = 64):
    return OmegaConf.create({
        "model": {**model, "dropout": 0.1, "attn_dropout": 0.1, "tied_output": False, "output_bias": True,
                  "scale_embedding": True, "max_len": max_len},
        "optim": {"betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.0},
        "train": {"batch_size": batch_size}, "compile": compile_model, "precision": precision})


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(steps: int, run, device: torch.device) -> float:
    """Optimizer steps per second of `run(step)` over `steps` steps."""
    synchronize(device)
    start = time.perf_counter()
    for step in range(steps):
        run(step)
    synchronize(device)
    return steps / (time.perf_counter() - start)


def seeded_models(cfg, k: int, vocab_size: int, device: torch.device) -> list:
    out = []
    for seed in range(k):  # as the trainer builds them: each seed's own initialisation
        torch.manual_seed(seed)
        out.append(build_model(cfg.model, vocab_size).to(device).train())
    return out


def compare(cfg, k: int, encoded, vocab, args, autocast, device) -> tuple[float, float]:
    """(pack, K singles) member-steps/s, medians over interleaved rounds."""
    orders = [BatchOrder(encoded, vocab, cfg.train.batch_size, seed) for seed in range(k)]
    models = seeded_models(cfg, k, vocab.size, device)
    pack = PackStep(models, cfg, device, vocab.pad) if k > 1 else SingleStep(models[0], cfg, device, vocab.pad)
    singles = [SingleStep(model, cfg, device, vocab.pad) for model in seeded_models(cfg, k, vocab.size, device)]
    if args.keep_padding:
        for step in (pack, *singles):
            step.skip_padding = False

    def pack_step(step: int) -> None:
        pack([order.batch(step) for order in orders], 1e-4, 1.0, autocast, device)

    def singles_step(step: int) -> None:
        for single, order in zip(singles, orders, strict=True):
            single([order.batch(step)], 1e-4, 1.0, autocast, device)

    warm = args.steps if cfg.compile else 3  # compile: every padded width the timed steps meet
    rate(warm, pack_step, device), rate(warm, singles_step, device)  # warm-up (allocator, compile)
    packed, alone = [], []
    for _ in range(args.rounds):
        packed.append(k * rate(args.steps, pack_step, device))
        alone.append(k * rate(args.steps, singles_step, device))
    return statistics.median(packed), statistics.median(alone)


def compare_eval(cfg, k: int, data, args, device) -> tuple[float, float]:
    """(pack, K singles) seconds to evaluate every member once, medians over interleaved rounds."""
    pack_models, single_models = seeded_models(cfg, k, data.vocab.size, device), seeded_models(cfg, k, data.vocab.size, device)
    pack = PackStep(pack_models, cfg, device, data.vocab.pad) if k > 1 else SingleStep(pack_models[0], cfg, device,
                                                                                        data.vocab.pad)
    singles = [SingleStep(model, cfg, device, data.vocab.pad) for model in single_models]
    task = SimpleNamespace(eval_gen_sample=0, eval_gen_fixed=False)

    def evaluate_pack(_: int) -> None:
        with pack.evaluating() as members:
            evaluate(members, data, task, 64, device, list(range(k)), 0)

    def evaluate_singles(_: int) -> None:
        for seed, single in enumerate(singles):
            with single.evaluating() as members:
                evaluate(members, data, task, 64, device, [seed], 0)

    rate(1, evaluate_pack, device), rate(1, evaluate_singles, device)  # warm-up
    packed, alone = [], []
    for _ in range(args.rounds):
        packed.append(1 / rate(1, evaluate_pack, device))
        alone.append(1 / rate(1, evaluate_singles, device))
    return statistics.median(packed), statistics.median(alone)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["cpu", "paper"], choices=sorted(SHAPES))
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 10], help="pack sizes")
    parser.add_argument("--steps", type=int, default=20, help="timed pack steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--task", default="qf", choices=["qf", "dyck"], help="whose training batches")
    parser.add_argument("--keep-padding", action="store_true", help="CUDA eager: never skip the padding")
    parser.add_argument("--eval-sentences", type=int, default=0, help="also time evaluation on N val + N gen")
    args = parser.parse_args()
    device = torch.device(args.device)
    n_eval = max(args.eval_sentences, 10)
    task = SimpleNamespace(name=args.task, n_train=5000, n_val=n_eval, n_gen=n_eval, dyck_k=20, dyck_m=10,
                           dyck_min_len=4)  # Dyck: the paper's generator settings (conf/train.yaml)
    train, val, gen = generate(generation_config(task), 0)[:3]
    max_len = 64 if args.task == "qf" else 1 + max(len(e.tokens) for e in train) + 1
    vocab = Vocab.from_examples([*train, *val, *gen])
    encoded = [vocab.encode(e.tokens) for e in train]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    compiled = ("no" if not args.compile else "reduce-overhead (CUDA graphs)" if device.type == "cuda"
                else "default mode (inductor, no CUDA graphs)")
    print(f"task={args.task} device={device} precision={args.precision} compile={compiled} "
          f"padding={'kept' if args.keep_padding else 'skipped when mostly padding'} threads={torch.get_num_threads()}")
    print("| shape | K | pack member-steps/s | K singles member-steps/s | ratio |")
    print("|---|---|---|---|---|")
    for shape in args.shapes:
        model_cfg, batch_size = SHAPES[shape]
        cfg = config(model_cfg, batch_size, args.compile, args.precision, max_len)
        for k in args.ks:
            mine, theirs = compare(cfg, k, encoded, vocab, args, autocast, device)
            print(f"| {shape} | {k} | {mine:.1f} | {theirs:.1f} | {mine / theirs:.2f}x |", flush=True)
    if not args.eval_sentences:
        return
    if args.task != "qf":
        raise SystemExit("bench_pack: --eval-sentences times QF evaluation only")
    data = SimpleNamespace(name="qf", val=val, gen=gen, vocab=vocab)
    print(f"\none evaluation of every member, {args.eval_sentences} val + {args.eval_sentences} gen sentences")
    print("| shape | K | pack s | K singles s | speed-up |")
    print("|---|---|---|---|---|")
    for shape in args.shapes:
        cfg = config(SHAPES[shape][0], SHAPES[shape][1], args.compile, args.precision)
        for k in args.ks:
            mine, theirs = compare_eval(cfg, k, data, args, device)
            print(f"| {shape} | {k} | {mine:.2f} | {theirs:.2f} | {theirs / mine:.2f}x |", flush=True)

if __name__ == "__main__":
    main()
