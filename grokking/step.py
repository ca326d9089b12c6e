"""The training step, the one thing the loop calls every step: `step_fn(batches, lr, clip, autocast, device)`
runs the loss, backward, gradient clipping and the AdamW update of every member, and returns each member's
(loss, pre-clipping gradient norm) on the device, without a host sync.

`SingleStep` trains one model; `PackStep` a seed pack stacked in one `grokking.pack.PackedLM`. Both also hand
the trainer a member's model (`model_of`), its optimizer state and the models in eval mode (`evaluating`), so
that checkpoints, evaluation and probes see every member as a single run.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from grokking.model import lm_loss, up_to_last_target
from grokking.pack import ScoredModels


def compile_loss(loss_fn, cfg: DictConfig, device: torch.device, static: bool = True):
    """`compile=true`: torch.compile the loss. `static` (the padded losses of SingleStep / PackStep): with static
    shapes (dynamic=False), one graph per padded shape, of which `static_width` lets only a few occur, within
    Dynamo's recompile limit (a symbolic width breaks dropout under vmap(randomness="different"):
    "Cannot call numel() on tensor with symbolic sizes"). On CUDA with CUDA graphs ("reduce-overhead": each
    shape's graph replayed without per-kernel launch cost). On the CPU, inductor's code for the vmapped pack loss
    with attention dropout gives NaN losses (a strict xfail in tests/unit/test_compile.py); the trainer never
    compiles a pack there (CPU packs run `losses_each`), and a non-finite loss fails the member anyway."""
    if not cfg.compile:
        return loss_fn
    return torch.compile(loss_fn, dynamic=False if static else None,
                         mode="reduce-overhead" if device.type == "cuda" else None)


def bucket_width(width: int) -> int:
    """The padded width of a batch whose longest row has `width` tokens: a multiple of 8 up to 64, then a power
    of two. Few buckets recur (QF, TI: 2-4; Dyck, whose batch widths take 60-77 values: about 8), each compiled
    once by compile=true (Dynamo's recompile limit is 8 per function)."""
    if width <= 64:
        return max(8, -(-width // 8) * 8)
    return 1 << (width - 1).bit_length()


def static_width(batches: list[tuple[torch.Tensor, torch.Tensor]], pad: int, max_len: int, rows: int = 0):
    """Right-pad every (inputs, targets) batch to one width, `bucket_width` of the widest (at most `max_len`), and
    to at least `rows` rows (an epoch's short last batch keeps the shape of the others), and stack them:
    [members, rows, width]. Padding never changes the loss (pad targets are ignored, attention is causal)."""
    width = min(bucket_width(max(inputs.shape[1] for inputs, _ in batches)), max_len)
    height = max(rows, *(inputs.shape[0] for inputs, _ in batches))

    def padded(t: torch.Tensor, value: int) -> torch.Tensor:
        return F.pad(t, (0, width - t.shape[1], 0, height - t.shape[0]), value=value)

    return (torch.stack([padded(i, pad) for i, _ in batches]), torch.stack([padded(t, -100) for _, t in batches]))


def token_bucket(tokens: int) -> int:
    """The computed token count of a padding-free batch with `tokens` real ones: `bucket_width`'s series with a
    step at 3/4 of each power of two above 64 (..., 96, 128, 192, 256, 384, ...): few counts recur, so the CUDA
    caching allocator reuses its blocks, and above 64 at most a third of the computed tokens are filler."""
    bucket = bucket_width(tokens)
    return bucket * 3 // 4 if 64 < tokens <= bucket * 3 // 4 else bucket


def padding_free_index(targets: torch.Tensor) -> torch.Tensor | None:
    """For targets [K, rows, width] padded by `static_width`, still on the host: where each member's tokens up to
    each row's last real target sit in its flattened [rows * width] layout, ascending, followed by filler positions
    (padding after a row's last real target: ignored targets, unseen by real tokens under the causal mask) up to one
    `token_bucket` count N for all members. [K, N] int64, for `TransformerLM.loss(..., index)`: computed from the
    known lengths here, so the device never syncs to find them. None when the padded layout is at most twice N:
    there the extra gathers cost more than the skipped tokens save (QF and TI batches; a Dyck pack's batches are
    about 90% padding, one long string setting the width of all K x 8)."""
    keep = up_to_last_target(targets).flatten(1)
    tokens = token_bucket(int(keep.sum(1).max()))
    if 2 * tokens > keep.shape[1]:
        return None
    # a stable sort puts each member's kept positions first, in order, then its padding positions in order
    return torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices[:, :tokens]


def matmul_precision(cfg: DictConfig, device: torch.device) -> None:
    """precision=tf32 on CUDA: float32 matmuls on the tensor cores (TF32, a 10-bit mantissa for the products:
    a numerics change against the CPU reference, as bf16 is); fp32 and bf16 keep full-precision float32 matmuls.
    Process-wide: training, evaluation and probes all run with it. No effect on the CPU."""
    if device.type == "cuda":
        tf32 = getattr(cfg, "precision", "fp32") == "tf32"
        torch.set_float32_matmul_precision("high" if tf32 else "highest")


def make_optimizer(parameters, cfg: DictConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameters, lr=0.0, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                             weight_decay=cfg.optim.weight_decay, fused=True)  # one kernel for all params

class SingleStep:
    """The training step of one model: clip_grad_norm_ and one fused AdamW. On the CPU the loss skips the
    padding (TransformerLM.loss, finding it with a host sync); on CUDA (`static_shapes`) it runs on batches padded
    by `static_width`, so a few static shapes recur and compile=true can capture them, and in eager mode a batch that
    is mostly padding skips it with an index computed on the host (`padding_free_index`: no device sync)."""

    def __init__(self, model, cfg: DictConfig, device: torch.device, pad: int):
        self.model, self.pad = model, pad
        self.rows = getattr(getattr(cfg, "train", None), "batch_size", 0)  # an epoch's last batch is padded to it
        matmul_precision(cfg, device)
        self.optimizer = make_optimizer(model.parameters(), cfg)
        self.static_shapes = device.type == "cuda"
        # batches mostly padding skip it (padding_free_index) in eager mode; compiled steps keep the few padded
        # static shapes (padding-free token counts would multiply the graphs past Dynamo's recompile limit)
        self.skip_padding = self.static_shapes and not cfg.compile
        self.padded_loss = compile_loss(lambda ids, targets: lm_loss(model(ids), targets), cfg, device)
        self.packed_loss = compile_loss(model.loss, cfg, device, static=False)

    def __call__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, clip: float, autocast,
                 device: torch.device) -> torch.Tensor:
        """One optimizer step; [1, 2] (loss, pre-clipping gradient norm), on the device (no host sync)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            if self.static_shapes:
                inputs, targets = static_width(batches, self.pad, self.model.shape.max_len, self.rows)
                index = padding_free_index(targets) if self.skip_padding else None
                inputs, targets = (t[0].to(device, non_blocking=True) for t in (inputs, targets))
                loss = (self.padded_loss(inputs, targets) if index is None
                        else self.model.loss(inputs, targets, index[0].to(device, non_blocking=True)))
            else:
                loss = self.packed_loss(*(t.to(device, non_blocking=True) for t in batches[0]))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        return torch.stack([loss.detach().float(), grad_norm.detach().float()])[None]

    def model_of(self, k: int):
        return self.model

    def weights(self) -> dict[str, torch.Tensor]:
        """The trained tensors by parameter name (what weight averages follow)."""
        return dict(self.model.named_parameters())

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[ScoredModels]:
        """The model in eval mode, as a pack of one for grokking.evaluate."""
        self.model.eval()
        try:
            yield ScoredModels.of(self.model)
        finally:
            self.model.train()

    def optimizer_state(self, k: int) -> dict:
        return self.optimizer.state_dict()

    def load(self, models: list, optimizer_states: list[dict]) -> None:
        self.model.load_state_dict(models[0].state_dict())
        self.optimizer.load_state_dict(optimizer_states[0])


class PackStep:
    """The training step of a seed pack: members stacked in one PackedLM, one batch each, per-member clipping,
    one fused AdamW over the stacked weights (K independent ones: AdamW is element-wise). On CUDA all members run
    as one vmapped forward on batches padded to one static width (`static_width`); in eager mode, when that is
    mostly padding (Dyck: one long string sets the width of all K x 8), each member computes only its own tokens
    (`padding_free_index`). On the CPU, where the arithmetic dominates, each member runs the padding-free loss on
    its own batch."""

    def __init__(self, models: list, cfg: DictConfig, device: torch.device, pad: int):
        self.cfg, self.device, self.pad = cfg, device, pad
        self.rows = getattr(getattr(cfg, "train", None), "batch_size", 0)  # an epoch's last batch is padded to it
        matmul_precision(cfg, device)
        self.static_shapes = device.type == "cuda"
        # batches mostly padding skip it (padding_free_index) in eager mode; compiled steps keep the few padded
        # static shapes (padding-free token counts would multiply the graphs past Dynamo's recompile limit)
        self.skip_padding = self.static_shapes and not cfg.compile
        self.scratch = models[0]  # holds one member's weights at a time, for evaluation, probes and checkpoints
        self.build(models)

    def build(self, models: list) -> None:
        from grokking.pack import PackedLM

        self.pack = PackedLM(models).to(self.device)
        self.optimizer = make_optimizer(self.pack.parameters(), self.cfg)
        self.compute_loss = compile_loss(self.pack.loss, self.cfg, self.device)

    def __call__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float, clip: float, autocast,
                 device: torch.device) -> torch.Tensor:
        """One optimizer step of every member; [K, 2] (loss, pre-clipping gradient norm), on the device."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            if self.static_shapes:
                padded = static_width(batches, self.pad, self.pack.shape.max_len, self.rows)
                index = padding_free_index(padded[1]) if self.skip_padding else None
                inputs, targets = (t.to(device, non_blocking=True) for t in padded)
                losses = (self.compute_loss(inputs, targets) if index is None
                          else self.pack.loss(inputs, targets, index.to(device, non_blocking=True)))
            else:
                losses = self.pack.losses_each([(i.to(device), t.to(device)) for i, t in batches])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # members share no weights: each gets exactly its own loss's gradient
        norms = self.pack.clip_grad_norms_(clip)
        self.optimizer.step()
        return torch.stack([losses.detach().float(), norms.detach().float()], dim=1)

    def model_of(self, k: int):
        return self.pack.member_model(k, self.scratch)

    def weights(self) -> dict[str, torch.Tensor]:
        """The trained tensors by parameter name, stacked [K, ...] (what weight averages follow)."""
        return self.pack.params()

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[ScoredModels]:
        """Every member in eval mode for grokking.evaluate and the probes: one vmapped forward pass on CUDA,
        member by member on the CPU (the same per-member arithmetic as a single run there)."""
        yield ScoredModels(self.pack.size, lambda inputs: self.pack.logits(inputs, batched=self.static_shapes),
                      lambda fn, *args: self.pack.apply(fn, *args, batched=self.static_shapes))

    def optimizer_state(self, k: int) -> dict:
        return self.pack.member_optimizer_state(self.optimizer.state_dict(), k)

    def load(self, models: list, optimizer_states: list[dict]) -> None:
        for k, model in enumerate(models):
            self.pack.load_member(k, model)
        self.optimizer.load_state_dict(self.pack.stacked_optimizer_state(optimizer_states))

    def drop(self, k: int) -> None:
        """Take member k out of the pack (its weights and optimizer state); the others continue unchanged."""
        keep = [i for i in range(self.pack.size) if i != k]
        state = self.optimizer.state_dict()
        models = [copy.deepcopy(self.model_of(i)) for i in keep]
        states = [self.pack.member_optimizer_state(state, i) for i in keep]
        self.build(models)
        self.optimizer.load_state_dict(self.pack.stacked_optimizer_state(states))
