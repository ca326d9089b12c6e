"""Token-level fitting at the early-stopping point, after Bao, Teng & Zhang (2023) — a RECONSTRUCTION.

Bao et al.'s exact per-token measure could not be verified (docs/diagnostics.md, token-level fitting); this is grok's own
definition (docs/diagnostics.md), computed from the stored surprisal curves without extra forward passes. For a token type v and a
held-out probe split H (val = in-domain, gen = OOD):

- L_v^S(t): mean surprisal (bits) over the positions of split S whose target is v, at evaluation t;
- t_ES: the step of the best in-domain `val/acc` in metrics.jsonl (first on ties), mapped to the last diagnostic
  evaluation at or before it;
- gap_es = L_v^H(t_ES) − L_v^train(t_ES), gap_end = the same at the last evaluation (train = the train probe);
- t_v* = argmin over evaluations (step > 0) of the 5-evaluation running median of L_v^H;
- offset = log10 t_v* − log10 t_ES (negative: v peaked before early stopping; positive: still improving);
- gain = L_v^H(t_ES) − L_v^H(t_v*), the loss left on the table at early stopping;
- status: a two-sided exact sign test over v's occurrences in H pairs each occurrence's surprisal at t_ES with
  its surprisal at t_v*, Holm-corrected across the types of H. `over` if offset < 0, `under` if offset > 0, when
  the corrected p < ALPHA and most occurrences are worse at t_ES than at t_v*; `fit` otherwise.

Breakdowns (fitting_summary.csv) count over/fit/under types by POS, by decade of training frequency, and by
whether any of v's held-out occurrences is critical or structure-sensitive.
"""

from __future__ import annotations

import math

import numpy as np

ALPHA = 0.01
MEDIAN_WINDOW = 5  # evaluations in the running median (spec: 5)


def running_median(values: np.ndarray, window: int = MEDIAN_WINDOW) -> np.ndarray:
    """Centred running median along the last axis (windows shrink at the ends)."""
    half = window // 2
    n = values.shape[-1]
    return np.stack([np.median(values[..., max(0, i - half) : i + half + 1], axis=-1) for i in range(n)], axis=-1)


def sign_test(worse: int, better: int) -> float:
    """Two-sided exact sign-test p-value for `worse` vs `better` non-tied pairs."""
    n = worse + better
    if n == 0:
        return 1.0
    k = min(worse, better)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    return min(1.0, 2.0 * float(np.exp(logs).sum()))


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def frequency_bin(count: int) -> str:
    """Decade of a training frequency: '0', '1-9', '10-99', ..."""
    if count <= 0:
        return "0"
    low = 10 ** int(math.log10(count))
    return f"{low}-{10 * low - 1}"


def type_curves(surprisal: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Mean surprisal curve [E] of every target type in one split."""
    return {v: surprisal[targets == v].mean(0) for v in np.unique(targets)}


def fit_split(held_out: np.ndarray, held_targets: np.ndarray, train_curves: dict[str, np.ndarray],
              steps: np.ndarray, es_index: int, meta: dict[str, dict]) -> list[dict]:
    """One row per target type of a held-out split; `held_out` [n_positions, E]; `meta[v]` = pos, train_freq,
    structural (bool). Rows before Holm correction carry `p`; `status` is set by `classify`."""
    valid = np.flatnonzero(steps > 0)
    rows = []
    for v, curve in type_curves(held_out, held_targets).items():
        smoothed = running_median(curve[valid])
        star = int(valid[np.argmin(smoothed)])
        occ = held_out[held_targets == v]
        worse = int((occ[:, es_index] > occ[:, star]).sum())
        better = int((occ[:, es_index] < occ[:, star]).sum())
        train = train_curves.get(v)
        es_step = max(int(steps[es_index]), 1)
        rows.append({
            "target": v, **meta[v], "n": len(occ),
            "L_es": curve[es_index], "L_end": curve[-1],
            "gap_es": curve[es_index] - train[es_index] if train is not None else math.nan,
            "gap_end": curve[-1] - train[-1] if train is not None else math.nan,
            "t_star": int(steps[star]), "offset": math.log10(int(steps[star])) - math.log10(es_step),
            "gain": curve[es_index] - curve[star], "worse": worse, "better": better,
            "p": sign_test(worse, better),
        })
    return rows


def classify(rows: list[dict]) -> None:
    """Holm-correct the rows' sign tests and set `p_holm` and `status` in place."""
    if not rows:
        return
    adjusted = holm(np.array([r["p"] for r in rows]))
    for row, p in zip(rows, adjusted, strict=True):
        row["p_holm"] = float(p)
        significant = p < ALPHA and row["worse"] > row["better"]
        row["status"] = ("over" if row["offset"] < 0 else "under" if row["offset"] > 0 else "fit") if significant else "fit"


def summarise(rows: list[dict]) -> list[dict]:
    """Counts of over/fit/under types and mean gaps by POS, frequency decade and structural involvement."""
    out = []
    factors = {"pos": lambda r: r["pos"], "freq_bin": lambda r: frequency_bin(r["train_freq"]),
               "structural": lambda r: str(r["structural"])}
    for split in sorted({r["split"] for r in rows}):
        members = [r for r in rows if r["split"] == split]
        for factor, key in factors.items():
            for level in sorted({key(r) for r in members}):
                group = [r for r in members if key(r) == level]
                out.append({"split": split, "factor": factor, "level": level, "n_types": len(group),
                            **{f"n_{s}": sum(r["status"] == s for r in group) for s in ("over", "fit", "under")},
                            "mean_gap_es": float(np.nanmean([r["gap_es"] for r in group]))
                            if any(np.isfinite(r["gap_es"]) for r in group) else math.nan,
                            "mean_gap_end": float(np.nanmean([r["gap_end"] for r in group]))
                            if any(np.isfinite(r["gap_end"]) for r in group) else math.nan,
                            "mean_offset": float(np.mean([r["offset"] for r in group]))})
    return out
