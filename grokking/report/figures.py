"""Report figures as PNGs (matplotlib Agg, no pyplot state): grokking curves (Fig 2 style), success by depth
(Fig 3a style) and probe dynamics (Fig 3b / Fig 4 style). One colour per depth, the same in every figure.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from grokking.report.collect import Run, split_task_tag
from grokking.report.published import RIGHT_BRANCHING, SUCCESS_FRACTION
from grokking.report.summary import ACCURACY, Curve, MeanCurve, curve, mean_curve, mean_curve_gap

DPI = 100
PANEL_INCHES = (4.2, 3.3)
MIN_WIDTH_INCHES = 7.0  # a one-panel figure still fits its title and legend
TITLE_CHAR_PX = 8  # rough width of a suptitle character, for wrapping long titles
MAX_COLUMNS = 4
PROBE_COLUMNS = 2
LOG_STEPS_FROM_RATIO = 20  # log-scale the step axis when the logged steps span this factor or more
STEP_LABEL = "training step (optimizer updates)"


def depth_colors(depths: list[int]) -> dict[int, str]:
    """Distinct colours for the depths of one report, assigned in depth order."""
    palette = [to_hex(c) for c in ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
                                   "tab:pink", "tab:gray", "tab:olive", "tab:cyan")]
    return {d: palette[i % len(palette)] for i, d in enumerate(sorted(set(depths)))}


def grid_shape(n_panels: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    columns = min(n_panels, max_columns)
    return math.ceil(n_panels / columns), columns


def figure_size_px(n_panels: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """(width, height) in pixels of a figure with `n_panels` panels."""
    rows, columns = grid_shape(n_panels, max_columns)
    width = max(columns * PANEL_INCHES[0], MIN_WIDTH_INCHES)
    return round(width * DPI), round(rows * PANEL_INCHES[1] * DPI)


def _panels(n_panels: int, title: str, max_columns: int = MAX_COLUMNS) -> tuple[Figure, list[Axes]]:
    rows, columns = grid_shape(n_panels, max_columns)
    width, height = figure_size_px(n_panels, max_columns)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    fig.suptitle(textwrap.fill(title, width // TITLE_CHAR_PX))
    return fig, axes[:n_panels]


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI)


def _step_axis(ax: Axes, steps: np.ndarray) -> None:
    positive = steps[steps > 0]
    if len(positive) and positive.max() / positive.min() >= LOG_STEPS_FROM_RATIO:
        ax.set_xscale("log")
        ax.set_xlabel(STEP_LABEL + ", log scale")
    else:
        ax.set_xlabel(STEP_LABEL)


def _band(ax: Axes, mc: MeanCurve, color: str, scale: float = 1.0, **line) -> None:
    ax.plot(mc.steps, mc.mean * scale, color=color, **line)
    has_sd = np.isfinite(mc.sd)
    if has_sd.any():
        ax.fill_between(mc.steps, np.where(has_sd, (mc.mean - mc.sd) * scale, np.nan),
                        np.where(has_sd, (mc.mean + mc.sd) * scale, np.nan), color=color, alpha=0.18, linewidth=0)


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}\nnot logged", ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_grokking_curves(experiment: str, groups: dict[int, list[Run]], colors: dict[int, str],
                         threshold: float, path: Path) -> None:
    """One panel per depth: seed-mean in-domain (solid) and OOD (dashed) accuracy, ±1 sd bands, and the gap Δ
    of the mean curves at early stopping (best mean in-domain accuracy) and at the last step."""
    fig, axes = _panels(len(groups), f"{experiment}: in-domain vs OOD accuracy (mean ± sd over seeds)")
    for ax, (depth, runs) in zip(axes, groups.items(), strict=True):
        val = mean_curve([curve(r.records, ACCURACY.val) for r in runs])
        gen = mean_curve([curve(r.records, ACCURACY.gen) for r in runs])
        unfinished = sum(r.state != "done" for r in runs)
        ax.set_title(f"{depth} layers, {len(runs)} seed{'s' if len(runs) != 1 else ''}"
                     + (f" ({unfinished} unfinished)" if unfinished else ""))
        if not len(val.steps) and not len(gen.steps):
            _no_data(ax, "val/acc and gen/acc")
            continue
        _band(ax, val, colors[depth], 100, linestyle="-", label="in-domain (val/acc)")
        _band(ax, gen, colors[depth], 100, linestyle="--", label="OOD (gen/acc)")
        ax.axhline(threshold * 100, color="gray", linewidth=0.8, linestyle=":")
        if gap := mean_curve_gap(val, gen):
            for step, hi, lo, marker, name, side in ((gap.es_step, gap.es_val, gap.es_gen, "o", "early stop", 1),
                                                     (gap.end_step, gap.end_val, gap.end_gen, "s", "end", -1)):
                ax.plot([step, step], [lo * 100, hi * 100], color="black", marker=marker, markersize=5,
                        linewidth=1, label=name)
                ax.annotate(f"Δ={(hi - lo) * 100:.0f}%", (step, (hi + lo) * 50), textcoords="offset points",
                            xytext=(5 * side, 0), ha="left" if side > 0 else "right", va="center", fontsize=8)
        _step_axis(ax, np.concatenate([val.steps, gen.steps]))
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.legend(fontsize=7, loc="best")
    _save(fig, path)


def plot_success(fractions: dict[str, dict[int, tuple[float, float, int]]], colors: dict[int, str],
                 threshold: float, path: Path, paper_experiments: set[str]) -> None:
    """One panel per experiment: by depth, the fraction of seeds with OOD accuracy > threshold at the final step
    (solid) and ever (hatched), from `summary.success_fractions`, with the paper's Fig 3a bars as black ticks on
    the experiments trained with the paper's config."""
    fig, axes = _panels(len(fractions), f"Success by depth: fraction of seeds with OOD accuracy > {threshold:.0%}")
    for ax, (experiment, by_depth) in zip(axes, fractions.items(), strict=True):
        task, _ = split_task_tag(experiment)
        paper_labelled = False
        for i, (depth, (final, ever, _)) in enumerate(by_depth.items()):
            ax.bar(i - 0.2, np.nan_to_num(final), 0.4, color=colors[depth], label="final step" if i == 0 else None)
            ax.bar(i + 0.2, np.nan_to_num(ever), 0.4, facecolor="white", edgecolor=colors[depth], hatch="///",
                   label="ever" if i == 0 else None)
            if experiment in paper_experiments and (published := SUCCESS_FRACTION.get((task, depth))):
                ax.plot([i - 0.4, i + 0.4], [published.value] * 2, color="black", linewidth=2,
                        label=None if paper_labelled else "paper Fig 3a")
                paper_labelled = True
        ax.set_xticks(np.arange(len(by_depth)), [f"{d}\nn={n}" for d, (_, _, n) in by_depth.items()])
        ax.set_xlabel("depth (layers), n = seeds with OOD accuracy")
        ax.set_ylabel("fraction of seeds")
        ax.set_ylim(0, 1.3)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(textwrap.fill(experiment, 48), fontsize=9)
        if not np.nan_to_num([f for pair in by_depth.values() for f in pair[:2]]).any():
            ax.text(0.5, 0.55, f"no seed has reached OOD accuracy > {threshold:.0%} yet", ha="center", va="center",
                    transform=ax.transAxes, color="dimgray", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    _save(fig, path)


def weight_norm_per_layer(run: Run) -> Curve:
    logged = curve(run.records, "probe/weight_norm_per_layer")
    if len(logged) or run.depth is None:
        return logged
    total = curve(run.records, "probe/weight_norm")
    return Curve(total.steps, total.values / run.depth)


def attention_sparsity(run: Run) -> Curve:
    logged = curve(run.records, "probe/attn_sparsity")
    if len(logged):
        return logged
    entropy = curve(run.records, "probe/attn_entropy")
    return Curve(entropy.steps, -entropy.values)


def logged(key: str) -> Callable[[Run], Curve]:
    """An extractor of one logged metric, shaped like `weight_norm_per_layer`."""
    return lambda run: curve(run.records, key)


PROBE_PANELS = (
    ("weight norm / L", "global L2 norm / layers", weight_norm_per_layer),
    ("attention sparsity", "−mean attention entropy (nats)", attention_sparsity),
    ("t_score", "t_score (higher = more tree-like)", logged("probe/tscore")),
    ("t_parseval", "t_parseval (bracketing F1 vs gold)", logged("probe/tparseval")),
)


def has_probes(runs: list[Run]) -> bool:
    return any(len(extract(r)) for r in runs for _, _, extract in PROBE_PANELS)


def plot_probes(experiment: str, groups: dict[int, list[Run]], colors: dict[int, str], path: Path) -> None:
    """Four panels, one line per depth (seed mean ± sd): weight norm / L, attention sparsity, t_score, t_parseval
    with the right-branching baseline (logged, else the paper's)."""
    fig, axes = _panels(len(PROBE_PANELS), f"{experiment}: model-internal probes (mean ± sd over seeds)",
                        PROBE_COLUMNS)
    for ax, (title, ylabel, extract) in zip(axes, PROBE_PANELS, strict=True):
        curves = {depth: mean_curve([extract(r) for r in runs]) for depth, runs in groups.items()}
        curves = {depth: mc for depth, mc in curves.items() if len(mc.steps)}
        ax.set_title(title)
        if not curves:
            _no_data(ax, title)
            continue
        for depth, mc in curves.items():
            _band(ax, mc, colors[depth], label=f"{depth} layers")
        if title == "t_parseval":
            _right_branching(ax, experiment, groups)
        _step_axis(ax, np.concatenate([mc.steps for mc in curves.values()]))
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    _save(fig, path)


def _right_branching(ax: Axes, experiment: str, groups: dict[int, list[Run]]) -> None:
    runs = [r for rs in groups.values() for r in rs]
    logged = np.concatenate([curve(r.records, "probe/tparseval_right_branching").values for r in runs])
    if len(logged):
        ax.axhline(float(logged.mean()), color="black", linestyle="--", linewidth=1, label="right-branching")
    elif published := RIGHT_BRANCHING.get(runs[0].task):
        ax.axhline(published.value, color="gray", linestyle=":", linewidth=1, label="right-branching (paper)")
