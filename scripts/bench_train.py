"""Training-step throughput at the paper config: grok's LM vs a plain eager PyTorch baseline of identical size.

    python scripts/bench_train.py                       # depths 2, 6, 10 on CPU, 40 timed steps each
    python scripts/bench_train.py --device cuda --precision bf16 --compile

Both sides run the same batches (8 sequences of QF-like length 14-36 tokens, padded to the batch maximum),
AdamW (grok: fused, as its trainer uses; baseline: the default), clip 1, and dropout 0.1, interleaved in one process
so machine noise hits both. grok computes its loss as its trainer does (`TransformerLM.loss`, real tokens only); the
baseline runs the whole padded batch and `lm_loss` on its logits.
The baseline is `torch.nn.TransformerEncoder` (post-LN, ReLU, causal mask) + embedding + output layer.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from grokking.model import ModelShape, TransformerLM, lm_loss

VOCAB = 71  # QF vocabulary + EOS + SOS


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


def batches(count: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        lengths = torch.randint(14, 37, (8,), generator=generator)
        ids = torch.randint(1, VOCAB - 2, (8, int(lengths.max())), generator=generator)
        targets = ids.roll(-1, dims=1)
        for row, length in enumerate(lengths):
            targets[row, length:] = -100
        out.append((ids.to(device), targets.to(device)))
    return out


def make_step(model: nn.Module, precision: str, device: torch.device, compile_model: bool, fused: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-7, weight_decay=0.0, fused=fused or None)
    compute_loss = torch.compile(model.loss) if compile_model else model.loss
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(ids: torch.Tensor, targets: torch.Tensor) -> None:
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
    for ids, targets in data:
        step(ids, targets)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 6, 10])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    data = batches(args.steps, device)
    print(f"device={device} precision={args.precision} compile={args.compile} threads={torch.get_num_threads()}")
    print("| depth | grok steps/s | baseline steps/s | ratio |")
    print("|---|---|---|---|")
    for depth in args.depths:
        torch.manual_seed(0)
        ours = TransformerLM(ModelShape(vocab_size=VOCAB, n_layers=depth)).to(device).train()
        baseline = BaselineLM(depth).to(device).train()
        ours_step = make_step(ours, args.precision, device, args.compile, fused=True)  # as grok's trainer
        base_step = make_step(baseline, args.precision, device, args.compile, fused=False)  # plain default
        for step in (ours_step, base_step):  # warm-up (allocator, compile)
            timed(step, data[:5], device)
        ours_rates, base_rates = [], []
        for _ in range(args.rounds):
            ours_rates.append(timed(ours_step, data, device))
            base_rates.append(timed(base_step, data, device))
        mine, theirs = statistics.median(ours_rates), statistics.median(base_rates)
        print(f"| {depth} | {mine:.2f} | {theirs:.2f} | {mine / theirs:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
