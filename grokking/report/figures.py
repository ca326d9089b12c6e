"""Report figures as PNGs (matplotlib Agg, no pyplot state): grokking curves (Fig 2 style), success by depth
(Fig 3a style) and probe dynamics (Fig 3b / Fig 4 style). One colour per depth, the same in every figure.

Nothing is written over the data: the in-domain/OOD gaps Δ go in each panel's title, the line styles and markers
in one legend below the panels, and the figure title is wrapped to the figure's width. Step axes spanning a
factor of 20 or more are symmetric-log, so the step-0 evaluation stays on them.

    grok report runs/        # writes curves_<experiment>.png, success.png, probes_<experiment>.png
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
from matplotlib.lines import Line2D

from grokking.report.collect import Run, split_task_tag
from grokking.report.published import RIGHT_BRANCHING, SUCCESS_FRACTION
from grokking.report.summary import (
    ACCURACY,
    AccuracyPair,
    Curve,
    MeanCurve,
    curve,
    mean_curve,
    mean_curve_gap,
)

DPI = 100
PANEL_INCHES = (4.2, 3.3)
MIN_WIDTH_INCHES = 7.0  # a one-panel figure still fits its title and legend
MIN_TITLE_CHARS = 20  # the narrowest a figure title is wrapped
LEGEND_FONT = 9
MAX_COLUMNS = 4
PROBE_COLUMNS = 2
LOG_STEPS_FROM_RATIO = 20  # log-scale the step axis when the logged steps span this factor or more
STEP_LABEL = "training step (optimizer updates)"
ES_MARKER, END_MARKER = "o", "s"


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
    _suptitle(fig, title)
    return fig, axes[:n_panels]


def _suptitle(fig: Figure, title: str) -> None:
    """The figure title, wrapped at the most characters per line that fit the figure's width."""
    text = fig.suptitle(title)
    renderer = fig.canvas.get_renderer()
    chars = len(title)
    while text.get_window_extent(renderer).width > 0.98 * fig.bbox.width and chars > MIN_TITLE_CHARS:
        chars -= 2
        text.set_text(textwrap.fill(title, chars))


def _legend(fig: Figure, handles: list) -> None:
    """One legend for all panels, below them (outside every axes, so it never covers data), in as few rows as fit
    the figure's width."""
    renderer = fig.canvas.get_renderer()
    for columns in range(len(handles), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize=LEGEND_FONT,
                            frameon=False)
        if legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            return
        legend.remove()


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI)


def _step_axis(ax: Axes, steps: np.ndarray) -> None:
    """Linear, or symmetric-log (linear below the first logged step, so step 0 is shown) for long runs."""
    positive = steps[steps > 0]
    if len(positive) and positive.max() / positive.min() >= LOG_STEPS_FROM_RATIO:
        first, last = float(positive.min()), float(positive.max())
        ax.set_xscale("symlog", linthresh=first, linscale=0.5)
        ax.set_xticks([0.0, *10.0 ** np.arange(math.ceil(math.log10(first)), math.floor(math.log10(last)) + 1)])
        ax.set_xlim(left=0)
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
                         threshold: float, path: Path, pair: AccuracyPair = ACCURACY) -> None:
    """One panel per depth: seed-mean in-domain (solid) and OOD (dashed) accuracy (`pair`'s keys), ±1 sd
    bands, each seed's OOD accuracy (thin), and the gap Δ of the mean curves at early stopping (best mean in-domain accuracy, ●) and at the
    last step (■), marked by a vertical bar and given in the panel's title."""
    fig, axes = _panels(len(groups), f"{experiment}: in-domain vs OOD accuracy (mean ± sd; thin: each seed)")
    plotted = False
    for ax, (depth, runs) in zip(axes, groups.items(), strict=True):
        val = mean_curve([curve(r.records, pair.val) for r in runs])
        gen = mean_curve([curve(r.records, pair.gen) for r in runs])
        unfinished = sum(r.state != "done" for r in runs)
        title = (f"{depth} layers, {len(runs)} seed{'s' if len(runs) != 1 else ''}"
                 + (f" ({unfinished} unfinished)" if unfinished else ""))
        if not len(val.steps) and not len(gen.steps):
            ax.set_title(title)
            _no_data(ax, f"{pair.val} and {pair.gen}")
            continue
        plotted = True
        for run in runs:  # each seed's OOD curve, thin, under the mean: the swings a mean hides
            seed_gen = curve(run.records, pair.gen)
            ax.plot(seed_gen.steps, seed_gen.values * 100, color=colors[depth], linewidth=0.6, alpha=0.45)
        _band(ax, val, colors[depth], 100, linestyle="-")
        _band(ax, gen, colors[depth], 100, linestyle="--")
        ax.axhline(threshold * 100, color="gray", linewidth=0.8, linestyle=":")
        if gap := mean_curve_gap(val, gen):
            for step, hi, lo, marker in ((gap.es_step, gap.es_val, gap.es_gen, ES_MARKER),
                                         (gap.end_step, gap.end_val, gap.end_gen, END_MARKER)):
                ax.plot([step, step], [lo * 100, hi * 100], color="black", marker=marker, markersize=5, linewidth=1)
            title += (f"\nΔ {(gap.es_val - gap.es_gen) * 100:.0f}% at early stop ●, "
                      f"{(gap.end_val - gap.end_gen) * 100:.0f}% at the end ■")
        ax.set_title(title)
        _step_axis(ax, np.concatenate([val.steps, gen.steps]))
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-3, 103)
    if plotted:
        _legend(fig, curve_legend(threshold, pair))
    _save(fig, path)


def curve_legend(threshold: float, pair: AccuracyPair) -> list[Line2D]:
    """Legend entries of the accuracy figure, drawn in black (every depth has its own colour)."""
    return [Line2D([], [], color="black", label=f"in-domain ({pair.val})"),
            Line2D([], [], color="black", linestyle="--", label=f"OOD ({pair.gen})"),
            Line2D([], [], color="black", linewidth=0.6, alpha=0.45, label=f"each seed's OOD ({pair.gen})"),
            Line2D([], [], color="gray", linewidth=0.8, linestyle=":", label=f"{threshold:.0%} OOD accuracy"),
            Line2D([], [], color="black", marker=ES_MARKER, markersize=5, linewidth=1,
                   label=f"Δ at early stop (best {pair.val})"),
            Line2D([], [], color="black", marker=END_MARKER, markersize=5, linewidth=1, label="Δ at the last step")]


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
        if note := success_note(by_depth, threshold):  # in the band above 1, clear of bars and paper ticks
            ax.text(0.5, 1.08, note, ha="center", va="center", transform=ax.get_yaxis_transform(), color="dimgray",
                    fontsize=LEGEND_FONT)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    _save(fig, path)


def success_note(by_depth: dict[int, tuple[float, float, int]], threshold: float) -> str | None:
    """What an empty success panel means: no OOD accuracy yet, or no seed above the threshold yet."""
    if not any(n for _, _, n in by_depth.values()):
        return "no OOD accuracy logged yet"
    if not np.nan_to_num([f for final, ever, _ in by_depth.values() for f in (final, ever)]).any():
        return f"no seed has reached OOD accuracy > {threshold:.0%} yet"
    return None


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
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}  # depths, baseline
    if handles:
        _legend(fig, sorted(handles.values(), key=lambda h: natural_label(h.get_label())))
    _save(fig, path)


def natural_label(label: str) -> tuple[int, str]:
    """`2 layers` before `10 layers`, baselines last."""
    number = label.split()[0]
    return (int(number), label) if number.isdigit() else (10**9, label)


def _right_branching(ax: Axes, experiment: str, groups: dict[int, list[Run]]) -> None:
    runs = [r for rs in groups.values() for r in rs]
    logged = np.concatenate([curve(r.records, "probe/tparseval_right_branching").values for r in runs])
    if len(logged):
        ax.axhline(float(logged.mean()), color="black", linestyle="--", linewidth=1, label="right-branching")
    elif published := RIGHT_BRANCHING.get(runs[0].task):
        ax.axhline(published.value, color="gray", linestyle=":", linewidth=1, label="right-branching (paper)")
