"""Parameter-distribution statistics per weight tensor (docs/diagnostics.md; project-native).

Tensors: every parameter, with the stacked attention projection `attn.qkv.weight` split into its q, k and v
blocks. Per tensor and evaluation:
- norms: Frobenius, RMS (= Frobenius / √n); the global L2 norm over all parameters goes to evals.csv;
- moments: mean, std (ddof 0), skewness γ, excess kurtosis κ, and the bimodality coefficient
  BC = (γ² + 1) / (κ + 3(n−1)²/((n−2)(n−3)));
- quantiles of w and of |w| at QUANTILES, and the Gini coefficient of |w|, on a fixed random subsample of at most
  QUANTILE_SAMPLE entries per tensor (drawn once from diagnostics.seed), so sorting stays cheap;
- sparsity: the fraction of entries with |w| < 0.1·σ_ref and < 0.01·σ_ref, Hoyer sparsity
  (√n − ‖w‖₁/‖w‖₂)/(√n − 1), and the entropy of |w|/‖w‖₁ divided by log n (1 = all magnitudes equal);
- a fixed-bin histogram: `hist_bins` bins over init_mean ± hist_range_sigma·σ_ref plus an underflow and an
  overflow bin. The edges are set once, from the weights at the first recorded evaluation (step 0, the
  initialisation, in a fresh run) and saved, so a step × value density image is a literal bifurcation diagram.

σ_ref is the tensor's standard deviation at initialisation. Tensors that are constant at initialisation
(LayerNorm gains and biases) have none; they use the median initial std of the non-constant tensors instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grokking.diagnostics.probesets import DiagnosticsError

QUANTILES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)
QUANTILE_SAMPLE = 65_536  # entries per tensor for quantiles and Gini
SMALL_FRACTIONS = (0.1, 0.01)  # ε of the "|w| < ε·σ_ref" sparsity fractions (spec: 0.1, 0.01)
GROUP_RULES = (("embedding", "embedding"), ("output.", "unembedding"), ("attn.q.", "attn_q"), ("attn.k.", "attn_k"),
               ("attn.v.", "attn_v"), ("attn.out.", "attn_out"), ("ff_in.", "mlp_in"), ("ff_out.", "mlp_out"))


def stat_names() -> list[str]:
    names = ["numel", "fro", "rms", "mean", "std", "skew", "kurtosis", "bc"]
    names += [f"q{q:g}" for q in QUANTILES] + [f"absq{q:g}" for q in QUANTILES]
    names += [f"frac_lt_{e:g}sigma" for e in SMALL_FRACTIONS] + ["hoyer", "gini", "abs_entropy"]
    return names


def tensor_group(name: str) -> str:
    """embedding, unembedding, attn_q/k/v, attn_out, mlp_in, mlp_out, ln_gain or ln_bias."""
    for key, group in GROUP_RULES:
        if key in name:
            return group
    if ".norm" in name:
        return "ln_gain" if name.endswith("weight") else "ln_bias"
    return "other"


def tensor_layer(name: str) -> int:
    """Block index for `blocks.<i>.*`, -1 for embedding and output."""
    parts = name.split(".")
    return int(parts[1]) if parts[0] == "blocks" else -1


def named_tensors(model) -> list[tuple[str, torch.Tensor]]:
    """(name, flattened detached tensor) for every parameter, with attn.qkv split into q, k and v."""
    out = []
    for name, param in model.named_parameters():
        w = param.detach()
        if name.endswith("attn.qkv.weight"):
            prefix = name.removesuffix("qkv.weight")
            out += [(f"{prefix}{part}.weight", chunk.reshape(-1)) for part, chunk in zip("qkv", w.chunk(3, dim=0), strict=True)]
        else:
            out.append((name, w.reshape(-1)))
    return out


def bimodality_coefficient(skew: float, kurtosis: float, n: int) -> float:
    """BC with the small-sample correction; > 5/9 suggests two or more modes (uniform: exactly 5/9)."""
    if n <= 3:
        return math.nan
    return (skew**2 + 1.0) / (kurtosis + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def gini(sorted_abs: torch.Tensor) -> float:
    """Gini coefficient of non-negative values sorted ascending (0 = all equal, → 1 = one carries all)."""
    n = sorted_abs.numel()
    total = float(sorted_abs.sum())
    if n == 0 or total == 0.0:
        return 0.0
    ranks = torch.arange(1, n + 1, dtype=sorted_abs.dtype, device=sorted_abs.device)
    return float(((2 * ranks - n - 1) * sorted_abs).sum()) / (n * total)


def tensor_stats(w: torch.Tensor, sample: torch.Tensor, sigma_ref: float) -> list[float]:
    """The stat_names() values of one flattened tensor (float64 arithmetic); `sample` indexes the subsample."""
    w = w.double()
    n = w.numel()
    mean = float(w.mean())
    centred = w - mean
    var = float((centred**2).mean())
    std = math.sqrt(var)
    skew = float((centred**3).mean()) / std**3 if std > 0 else 0.0
    kurt = float((centred**4).mean()) / var**2 - 3.0 if std > 0 else 0.0
    absw = w.abs()
    l1, l2 = float(absw.sum()), float(torch.linalg.vector_norm(w))
    sub = w[sample] if sample.numel() < n else w
    q = torch.tensor(QUANTILES, dtype=torch.float64, device=w.device)
    sub_abs = sub.abs().sort().values
    values = [n, l2, l2 / math.sqrt(n), mean, std, skew, kurt, bimodality_coefficient(skew, kurt, n)]
    values += torch.quantile(sub, q).tolist() + torch.quantile(sub_abs, q).tolist()
    values += [float((absw < e * sigma_ref).double().mean()) for e in SMALL_FRACTIONS]
    values.append((math.sqrt(n) - l1 / l2) / (math.sqrt(n) - 1) if l2 > 0 and n > 1 else 0.0)
    values.append(gini(sub_abs))
    if l1 > 0 and n > 1:
        p = absw[absw > 0] / l1
        values.append(float(-(p * p.log()).sum()) / math.log(n))
    else:
        values.append(0.0)
    return values


@dataclass
class HistogramEdges:
    """Per-tensor histogram range, fixed at the first recorded evaluation."""

    names: list[str]
    groups: list[str]
    layers: list[int]
    lo: np.ndarray
    hi: np.ndarray
    sigma_ref: np.ndarray
    bins: int

    @classmethod
    def from_model(cls, model, bins: int, range_sigma: float) -> HistogramEdges:
        tensors = named_tensors(model)
        means = np.array([float(w.double().mean()) for _, w in tensors])
        stds = np.array([float(w.double().std(correction=0)) for _, w in tensors])
        fallback = float(np.median(stds[stds > 0])) if (stds > 0).any() else 1.0
        sigma = np.where(stds > 0, stds, fallback)
        names = [n for n, _ in tensors]
        return cls(names, [tensor_group(n) for n in names], [tensor_layer(n) for n in names],
                   means - range_sigma * sigma, means + range_sigma * sigma, sigma, bins)

    def edges(self, i: int) -> np.ndarray:
        return np.linspace(self.lo[i], self.hi[i], self.bins + 1)

    def save(self, path: Path) -> None:
        np.savez(path, names=np.array(self.names), groups=np.array(self.groups), layers=np.array(self.layers),
                 lo=self.lo, hi=self.hi, sigma_ref=self.sigma_ref, bins=np.array(self.bins))

    @classmethod
    def load(cls, path: Path) -> HistogramEdges:
        with np.load(path) as z:
            return cls(z["names"].tolist(), z["groups"].tolist(), z["layers"].tolist(), z["lo"], z["hi"],
                       z["sigma_ref"], int(z["bins"]))


class ParamStats:
    """Statistics and fixed-bin histograms of every tensor of a model with the saved edges' layout."""

    def __init__(self, edges: HistogramEdges, seed: int):
        self.edges = edges
        self.samples: dict[str, torch.Tensor] = {}
        self.seed = seed

    def _sample(self, i: int, name: str, n: int, device: torch.device) -> torch.Tensor:
        if name not in self.samples:
            if n <= QUANTILE_SAMPLE:
                chosen = np.arange(n)
            else:
                chosen = np.sort(np.random.default_rng([self.seed, i]).choice(n, QUANTILE_SAMPLE, replace=False))
            self.samples[name] = torch.from_numpy(chosen).to(device)
        return self.samples[name]

    @torch.no_grad()
    def __call__(self, model) -> tuple[list[list[float]], np.ndarray, float]:
        """(stat rows in edges.names order, histogram counts [n_tensors, bins + 2] int64, global L2 norm)."""
        tensors = named_tensors(model)
        names = [n for n, _ in tensors]
        if names != self.edges.names:
            raise DiagnosticsError("the model's parameters differ from those the histogram edges were set for")
        rows, hists, total = [], [], 0.0
        for i, (name, w) in enumerate(tensors):
            sample = self._sample(i, name, w.numel(), w.device)
            rows.append(tensor_stats(w, sample, float(self.edges.sigma_ref[i])))
            total += rows[-1][1] ** 2
            lo, hi = float(self.edges.lo[i]), float(self.edges.hi[i])
            inside = torch.histc(w.float(), bins=self.edges.bins, min=lo, max=hi).long()
            under, over = (w < lo).sum().reshape(1), (w > hi).sum().reshape(1)
            hists.append(torch.cat([under, inside, over]).cpu().numpy())
        return rows, np.stack(hists), math.sqrt(total)
