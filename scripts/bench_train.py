"""Training-step throughput at the paper config: grok's training step vs a plain PyTorch baseline of identical size.

    python scripts/bench_train.py                       # depths 2, 6, 10 on CPU, 40 timed steps each
    python scripts/bench_train.py --device cuda --precision bf16 --compile

grok's side is the trainer's own step, built as the trainer builds it (grokking.step.SingleStep; PackStep with
--members K > 1, reported per member-step): on the CPU the padding-free loss, on CUDA the static-width padded loss
with no host sync; --compile is the trainer's compile=true (CUDA: torch.compile mode "reduce-overhead", i.e. CUDA
graphs, one per padded shape; CPU: the default inductor mode, no graphs); --precision tf32/bf16 as precision=.
Both sides run the same batches (8 sequences of QF-like length 14-36 tokens, padded to the batch maximum), AdamW
(grok: fused, as its trainer uses; baseline: the default), clip 1 and dropout 0.1, interleaved in one process so
machine noise hits both. The baseline is `torch.nn.TransformerEncoder` (post-LN, ReLU, causal mask) + embedding +
output layer on the whole padded batch, compiled the same way with --compile.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from omegaconf import OmegaConf
from torch import nn

from grokking.model import build_model, lm_loss
from grokking.step import PackStep, SingleStep

VOCAB = 71  # QF vocabulary + EOS + SOS
PAD = 0


class BaselineLM(nn.Module):
    def __init__(self, depth: int):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 512)
        layer = nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.1, activation="relu", batch_first=True,
                                           norm_first=False, bias=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.output = nn.Linear(512, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        x = self.embedding(ids) * math.sqrt(512)
        return self.output(self.encoder(x, mask=mask, is_causal=True))

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return lm_loss(self(ids), targets)  # the whole padded batch


def batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        lengths = torch.randint(14, 37, (8,), generator=generator)
        ids = torch.randint(1, VOCAB - 2, (8, int(lengths.max())), generator=generator)
        targets = ids.roll(-1, dims=1)
        for row, length in enumerate(lengths):
            targets[row, length:] = -100
        out.append((ids, targets))  # on the host, as the trainer's BatchOrder hands them to the step
    return out


def grok_config(depth: int, precision: str, compile_model: bool):
    return OmegaConf.create({
        "model": {"d_model": 512, "n_heads": 8, "d_ff": 2048, "n_layers": depth, "dropout": 0.1, "attn_dropout": 0.1,
                  "tied_output": False, "output_bias": True, "scale_embedding": True, "max_len": 64},
        "optim": {"betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.0},
        "train": {"batch_size": 8}, "compile": compile_model, "precision": precision})


def grok_step(depth: int, members: int, precision: str, device: torch.device, compile_model: bool):
    """The trainer's step (SingleStep, or PackStep for a pack): step(batches) with one CPU batch per member."""
    cfg = grok_config(depth, precision, compile_model)
    models = []
    for seed in range(members):  # each member initialised with its own seed, as the trainer does
        torch.manual_seed(seed)
        models.append(build_model(cfg.model, VOCAB).to(device).train())
    step_fn = (PackStep(models, cfg, device, PAD) if members > 1 else SingleStep(models[0], cfg, device, PAD))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        step_fn([batch] * members, 1e-4, 1.0, autocast, device)

    return step


def baseline_step(model: nn.Module, precision: str, device: torch.device, compile_model: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-7, weight_decay=0.0)
    compute_loss = (torch.compile(model.loss, mode="reduce-overhead" if device.type == "cuda" else None)
                    if compile_model else model.loss)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        ids, targets = (t.to(device, non_blocking=True) for t in batch)
        with autocast:
            loss = compute_loss(ids, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def timed(step, data, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in data:
        step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 6, 10])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="compile=true (CUDA: CUDA graphs)")
    parser.add_argument("--members", type=int, default=1, help="K > 1: a seed pack (PackStep), member-steps/s")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = batches(args.steps)
    compiled = ("no" if not args.compile else "reduce-overhead (CUDA graphs)" if device.type == "cuda"
                else "default mode (inductor, no CUDA graphs)")
    engine = f"PackStep K={args.members}" if args.members > 1 else "SingleStep"
    path = "static-width padded loss" if device.type == "cuda" else "padding-free loss"
    print(f"device={device} precision={args.precision} compile={compiled} grok={engine} ({path}) "
          f"threads={torch.get_num_threads()}")
    unit = "member-steps/s" if args.members > 1 else "steps/s"
    print(f"| depth | grok {unit} | baseline steps/s | ratio |")
    print("|---|---|---|---|")
    for depth in args.depths:
        ours_step = grok_step(depth, args.members, args.precision, device, args.compile)  # as grok's trainer
        torch.manual_seed(0)
        baseline = BaselineLM(depth).to(device).train()
        base_step = baseline_step(baseline, args.precision, device, args.compile)  # plain default
        for step in (ours_step, base_step):  # warm-up (allocator, compile: every padded width of the data)
            timed(step, data, device)
        ours_rates, base_rates = [], []
        for _ in range(args.rounds):
            ours_rates.append(args.members * timed(ours_step, data, device))
            base_rates.append(timed(base_step, data, device))
        mine, theirs = statistics.median(ours_rates), statistics.median(base_rates)
        print(f"| {depth} | {mine:.2f} | {theirs:.2f} | {mine / theirs:.2f}x |", flush=True)
    torch.set_float32_matmul_precision("highest")


if __name__ == "__main__":
    main()
