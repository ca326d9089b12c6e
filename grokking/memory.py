"""Will a training run fit in memory? An estimate made before the model is built or anything is written.

A config such as `model.d_model=1000000 model.d_ff=1000000` would otherwise grow until the kernel's OOM killer
ends the process (SIGKILL: no status.json, no message). `check_fits` compares the estimate with the memory the
device has free and refuses, on one line, what cannot fit.

The estimate (`training_memory`) counts fp32 (4-byte) numbers per member of a seed pack, and is meant to be close,
not generous: a run is refused only when the estimate exceeds what is free.

- weights: the exact parameter count of grokking.model.TransformerLM (`parameter_count`: embedding V*d; per
  block 4*d*d bias-free attention projections, d*f + f and f*d + d feed-forward, 4*d LayerNorm; an untied output
  layer d*V, its bias V), plus the fixed sinusoidal position table (max_len * d);
- gradients and AdamW's two moments: three more copies of the weights, and one per weight average (eval.ema);
- activations: the larger of a training step and an evaluation. A training step keeps, per layer and token,
  about 12*d + 3*f numbers for the backward pass (block input, q/k/v, attention output and projection, residual
  sums, LayerNorm outputs, dropout masks; feed-forward hidden, its ReLU and mask) plus heads * L * L per
  sequence for the attention probabilities, and 3*V per token for the logits, their float copy and their
  gradient, over train.batch_size sequences of the longest length L. An evaluation keeps no graph: one layer's
  4*d + f numbers per token, its attention, and 2*V logits, over train.eval_batch_size sequences; with the probes
  on, the attention maps of every layer over the rows one probe pass takes (grokking.probes.batching).

Before the data is known (vocabulary size, longest sequence) the same formula with V = 0 and L = 1 is a lower
bound, enough to refuse a model whose weights alone cannot fit without first generating a dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from grokking.errors import ConfigError
from grokking.probes.batching import ATTENTION_CELLS

FLOAT_BYTES = 4  # fp32 weights, gradients, optimizer state and activations


def parameter_count(model_cfg, vocab_size: int) -> int:
    """The number of trained parameters of `build_model(model_cfg, vocab_size)`, computed from the config."""
    d, f, layers, vocab = int(model_cfg.d_model), int(model_cfg.d_ff), int(model_cfg.n_layers), int(vocab_size)
    block = 4 * d * d + (d * f + f) + (f * d + d) + 4 * d
    output = (0 if model_cfg.tied_output else d * vocab) + (vocab if model_cfg.output_bias else 0)
    return vocab * d + layers * block + output


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs, by kind (all members of a seed pack together)."""

    weights: int  # parameters and the position table
    optimizer: int  # gradients, AdamW moments, weight averages
    activations: int  # peak of a training step or an evaluation
    lower_bound: bool = False  # made before the data was known (vocabulary 0, sequences of length 1)

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.activations


def training_memory(cfg, vocab_size: int | None = None, longest: int | None = None, members: int = 1) -> MemoryEstimate:
    """The estimate of the module docstring for the run `cfg` on data with `vocab_size` tokens and sequences of at
    most `longest` tokens (with <sos>/<eos>); without them, a lower bound."""
    lower = vocab_size is None or longest is None
    vocab, length = (0, 1) if lower else (int(vocab_size), int(longest))
    model = cfg.model
    d, f, layers, heads = int(model.d_model), int(model.d_ff), int(model.n_layers), int(model.n_heads)
    params = parameter_count(model, vocab)
    averages = len(cfg.eval.ema) if cfg.get("eval") is not None and cfg.eval.get("ema") else 0
    weights = params + int(model.max_len) * d
    optimizer = (3 + averages) * params

    batch = int(cfg.train.batch_size)
    tokens = batch * length
    train_step = layers * (tokens * (12 * d + 3 * f) + heads * length * length * batch) + tokens * (2 * d + 3 * vocab)
    eval_batch = int(cfg.train.eval_batch_size)
    evaluation = eval_batch * length * (4 * d + f + 2 * vocab) + heads * length * length * eval_batch
    if cfg.get("probes") is not None and cfg.probes.enabled:  # every layer's attention maps, rows x L^2 capped
        rows = min(int(cfg.probes.batch_size), max(1, ATTENTION_CELLS // (length * length)))
        evaluation = max(evaluation, rows * length * (layers * heads * length + 2 * vocab))
    activations = max(train_step, evaluation)
    return MemoryEstimate(members * weights * FLOAT_BYTES, members * optimizer * FLOAT_BYTES,
                          members * activations * FLOAT_BYTES, lower)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for this process on `device`: CUDA's free memory (torch.cuda.mem_get_info); on the CPU the
    smaller of the system's available RAM (/proc/meminfo MemAvailable, else sysconf) and what is left under this
    process's cgroup limit (a SLURM job's or a container's memory). None if unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    limits = [value for value in (meminfo_available(), cgroup_available()) if value is not None]
    return min(limits) if limits else None


def meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def cgroup_available() -> int | None:
    """Limit minus usage of this process's cgroup (v2: memory.max / memory.current; v1: limit_in_bytes /
    usage_in_bytes); None without a limit."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit_text = Path("/sys/fs/cgroup", limit_file).read_text().strip()
            if limit_text == "max":
                continue
            limit, usage = int(limit_text), int(Path("/sys/fs/cgroup", usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit < 1 << 60:  # v1 reports "no limit" as a huge number
            return max(limit - usage, 0)
    return None


def human(n: int) -> str:
    """Bytes as a short decimal figure (23.6 GB)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def check_fits(cfg, device: torch.device, members: int = 1, vocab_size: int | None = None,
               longest: int | None = None) -> MemoryEstimate:
    """ConfigError (one line, with the estimate) if the run cannot fit in what `device` has free."""
    estimate = training_memory(cfg, vocab_size, longest, members)
    free = available_memory(device)
    if free is not None and estimate.total > free:
        where = "the GPU" if device.type == "cuda" else "this machine"
        pack = f" for {members} seed-pack members" if members > 1 else ""
        raise ConfigError(
            f"the run needs {'at least ' if estimate.lower_bound else 'about '}{human(estimate.total)} of memory"
            f"{pack} ({human(estimate.weights)} weights, {human(estimate.optimizer)} gradients and AdamW state, "
            f"{human(estimate.activations)} activations) but {where} has {human(free)} free; shrink model.d_model, "
            "model.d_ff, depth or train.batch_size, or train on a larger device")
    return estimate
