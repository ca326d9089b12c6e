"""Decoder-only transformer LM, built as the original structural-grokking code trains it (docs/paper-vs-code.md).

Post-LN blocks, bias-free attention projections, dropout on embeddings / attention probabilities / residual
branches / FF hidden, xavier-initialised embeddings scaled by sqrt(d) plus fixed sinusoidal positions, and an
untied output layer with bias. No dead decoder (docs/paper-vs-code.md #19).

Attention uses `scaled_dot_product_attention`. Padding is on the right, so with a causal mask no real query
ever sees a pad key: the causal mask alone gives the original's causal + key-padding math at every real
position. Callers that need more (span-restricted masks for tree projections, attention maps for entropy)
pass `attn_mask` / `return_attn`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_layers: int = 6
    dropout: float = 0.1
    attn_dropout: float = 0.1
    tied_output: bool = False
    output_bias: bool = True
    scale_embedding: bool = True
    max_len: int = 512

    @classmethod
    def from_config(cls, model_cfg, vocab_size: int) -> ModelShape:
        return cls(vocab_size=vocab_size, d_model=model_cfg.d_model, n_heads=model_cfg.n_heads,
                   d_ff=model_cfg.d_ff, n_layers=model_cfg.n_layers, dropout=model_cfg.dropout,
                   attn_dropout=model_cfg.attn_dropout, tied_output=model_cfg.tied_output,
                   output_bias=model_cfg.output_bias, scale_embedding=model_cfg.scale_embedding,
                   max_len=model_cfg.max_len)


def sinusoidal_positions(max_len: int, d_model: int) -> Tensor:
    """sin on even and cos on odd dimensions, base 10000 (the original's PositionalEncoding)."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class Packing:
    """Where the real tokens of a right-padded [batch, length] batch sit in its flattened layout, so that every
    position-wise computation can run on [tokens, ...] and skip the padding (see TransformerLM.loss).

    `index` holds flat positions in ascending order, without repeats. Built by `of` from a boolean mask (one
    `nonzero`: a host sync on a GPU), or given: `grokking.step.padding_free_index` computes it on the host for
    CUDA batches, where it may end with filler positions (padding after every row's last real target, whose
    target is ignored) so that every member of a pack has the same token count."""

    def __init__(self, index: Tensor, batch: int, length: int):
        self.index, self.batch, self.length = index, batch, length

    @classmethod
    def of(cls, keep: Tensor) -> Packing:
        return cls(keep.flatten().nonzero().squeeze(1), *keep.shape)

    def pack(self, x: Tensor) -> Tensor:
        """[batch, length, ...] -> [tokens, ...]"""
        return x.flatten(0, 1)[self.index]

    def pad(self, x: Tensor) -> Tensor:
        """[tokens, ...] -> [batch, length, ...] with zeros at the skipped positions. Out of place (works under
        vmap, where each member has its own index), and with index_put, whose backward keeps only the index
        (index_copy's would keep `x` alive too)."""
        padded = x.new_zeros(self.batch * self.length, *x.shape[1:]).index_put((self.index,), x)
        return padded.view(self.batch, self.length, *x.shape[1:])


def up_to_last_target(targets: Tensor) -> Tensor:
    """[..., length] boolean: True up to and including each row's last real target (what the loss depends on,
    under the causal mask)."""
    return (targets != -100).flip(-1).cumsum(-1).flip(-1) > 0


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, attn_dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)  # q, k, v stacked; initialised separately
        self.out = nn.Linear(d_model, d_model, bias=False)
        for chunk in self.qkv.weight.data.chunk(3, dim=0):
            nn.init.xavier_uniform_(chunk)
        nn.init.xavier_uniform_(self.out.weight)

    def forward(self, x: Tensor, attn_mask: Tensor | None, return_attn: bool,
                packing: Packing | None = None) -> tuple[Tensor, Tensor | None]:
        """x: [batch, length, width], or [tokens, width] real tokens only when `packing` is given; only the
        attention itself then runs in the padded layout."""
        qkv = self.qkv(x) if packing is None else packing.pad(self.qkv(x))
        batch, length, width = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        q, k, v = qkv.view(batch, length, 3, self.n_heads, width // self.n_heads).permute(2, 0, 3, 1, 4)
        dropout_p = self.attn_dropout if self.training else 0.0
        if return_attn:  # explicit softmax, same math as SDPA, keeping the probabilities
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            allowed = causal_mask(length, x.device) if attn_mask is None else attn_mask
            probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            context = F.dropout(probs, dropout_p, self.training) @ v
        else:
            probs = None
            if attn_mask is None:
                context = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            else:
                context = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        context = context.transpose(1, 2).reshape(batch, length, width)
        return self.out(context if packing is None else packing.pack(context)), probs


class Block(nn.Module):
    """Post-LN: x = LN1(x + Drop(Attn(x))); x = LN2(x + Drop(W2 Drop(ReLU(W1 x))))."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.attn = SelfAttention(shape.d_model, shape.n_heads, shape.attn_dropout)
        self.norm1 = nn.LayerNorm(shape.d_model)
        self.ff_in = nn.Linear(shape.d_model, shape.d_ff)
        self.ff_out = nn.Linear(shape.d_ff, shape.d_model)
        self.norm2 = nn.LayerNorm(shape.d_model)
        self.dropout = nn.Dropout(shape.dropout)
        nn.init.xavier_uniform_(self.ff_in.weight, gain=math.sqrt(2.0))
        nn.init.xavier_uniform_(self.ff_out.weight)

    def forward(self, x: Tensor, attn_mask: Tensor | None, return_attn: bool,
                packing: Packing | None = None) -> tuple[Tensor, Tensor | None]:
        attended, probs = self.attn(x, attn_mask, return_attn, packing)
        x = self.norm1(x + self.dropout(attended))
        x = self.norm2(x + self.dropout(self.ff_out(self.dropout(F.relu(self.ff_in(x))))))
        return x, probs


def causal_mask(length: int, device: torch.device | str) -> Tensor:
    """[length, length] boolean, True where query i may attend to key j (j <= i)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class TransformerLM(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.shape = shape
        self.embedding = nn.Embedding(shape.vocab_size, shape.d_model)
        nn.init.xavier_uniform_(self.embedding.weight)
        self.register_buffer("positions", sinusoidal_positions(shape.max_len, shape.d_model), persistent=False)
        self.embed_dropout = nn.Dropout(shape.dropout)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layers))
        self.output = nn.Linear(shape.d_model, shape.vocab_size, bias=shape.output_bias)
        if shape.tied_output:
            self.output.weight = self.embedding.weight
        else:
            nn.init.xavier_uniform_(self.output.weight)
        self.embed_scale = math.sqrt(shape.d_model) if shape.scale_embedding else 1.0

    def forward(self, ids: Tensor, attn_mask: Tensor | None = None, return_attn: bool = False,
                return_hidden: bool = False) -> Tensor | tuple:
        """ids: [batch, length] starting with SOS, right-padded. attn_mask: optional boolean
        [batch, 1 or heads, length, length] (True = may attend) replacing the causal mask at every layer.
        Returns logits [batch, length, vocab]; with return_attn / return_hidden also the per-layer attention
        probabilities ([batch, heads, length, length] each) and the last layer's hidden states."""
        length = self.check_length(ids)
        x = self.embed_dropout(self.embedding(ids) * self.embed_scale + self.positions[:length])
        maps = []
        for block in self.blocks:
            x, probs = block(x, attn_mask, return_attn)
            maps.append(probs)
        logits = self.output(x)
        if not (return_attn or return_hidden):
            return logits
        extras = (logits,)
        if return_attn:
            extras += (maps,)
        if return_hidden:
            extras += (x,)
        return extras

    def loss(self, ids: Tensor, targets: Tensor, index: Tensor | None = None) -> Tensor:
        """The training loss `lm_loss(self(ids), targets)`, computed on the real tokens only. Under the causal
        mask a position after a row's last real target cannot influence the loss, so embedding, projections,
        LayerNorm, FF, dropout masks, output layer and cross entropy all skip those positions (the padding);
        only attention runs in the padded layout. Same math; dropout draws fewer random numbers.
        `index`: the positions to compute (`Packing`), if the caller knows them; else found here (a host sync)."""
        length = self.check_length(ids)
        packing = Packing.of(up_to_last_target(targets)) if index is None else Packing(index, *ids.shape)
        x = self.embedding(packing.pack(ids)) * self.embed_scale + self.positions[packing.index % length]
        x = self.embed_dropout(x)
        for block in self.blocks:
            x, _ = block(x, None, False, packing)
        return lm_loss(self.output(x), packing.pack(targets))

    def check_length(self, ids: Tensor) -> int:
        length = ids.shape[1]
        if length > self.shape.max_len:
            raise ValueError(f"sequence of {length} tokens exceeds model.max_len={self.shape.max_len}")
        return length


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Token-level cross entropy summed over real targets and divided by their count (docs/paper-vs-code.md #24)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)


def build_model(model_cfg, vocab_size: int) -> TransformerLM:
    return TransformerLM(ModelShape.from_config(model_cfg, vocab_size))
