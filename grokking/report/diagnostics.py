"""Report figures for runs trained with diagnostics=on (docs/diagnostics.md), one set per run:

    diag_<run>_heatmap.png       per-position surprisal (rows, sorted by smoothed-curve AoA) over log step, per probe
                                 split, under the ID/OOD accuracy curves; early stopping and grokking step marked
    diag_<run>_aoa.png           smoothed-curve AoA distributions by role, one panel per split
    diag_<run>_auxiliaries.png   QF only: mean surprisal of each auxiliary at the critical position, ID vs OOD
    diag_<run>_bifurcation.png   fixed-bin weight histograms over log step (a bifurcation diagram) for one tensor
                                 per group (the last layer's), with t_bif, early stopping and grokking step

`grok analyze` runs first for any run whose analysis files are missing.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from grokking.diagnostics import DIAGNOSTICS_DIR, DiagnosticsError
from grokking.diagnostics.analyze import ANALYSIS_DIR, analyze_run
from grokking.diagnostics.probesets import ROLES, SPLITS, read_positions
from grokking.diagnostics.store import Store
from grokking.report.collect import Run
from grokking.report.document import Block, Heading, Image, Paragraph, Table
from grokking.runfiles import curve, first_argmax, grokking_step
from grokking.tasks import TASKS

log = logging.getLogger(__name__)
DPI = 100
MAX_ROWS = 300  # heat-map rows per split (critical and structure-sensitive positions first)
BIFURCATION_GROUPS = ("embedding", "attn_q", "attn_k", "attn_v", "attn_out", "mlp_in", "mlp_out", "unembedding")
SPLIT_LABELS = {"train": "train probe", "val": "in-domain (val)", "gen": "OOD (gen)"}


def has_diagnostics(run: Run) -> bool:
    return (run.path / DIAGNOSTICS_DIR / "evals.csv").exists()


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _label(run: Run) -> str:
    return run.path.name if run.name == "." else run.name


def _slug(run: Run) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", _label(run)).strip("_") or "run"


def _edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges on a log axis around positive steps (geometric midpoints)."""
    logs = np.log10(steps.astype(float))
    mid = (logs[1:] + logs[:-1]) / 2
    width = (logs[-1] - logs[0]) / max(len(logs) - 1, 1) or 0.1
    return 10 ** np.concatenate([[logs[0] - width / 2], mid, [logs[-1] + width / 2]])


def _mark(ax, marks: dict[str, int | None]) -> None:
    for (label, step), color in zip(marks.items(), ("black", "crimson", "darkorange"), strict=False):
        if step:
            ax.axvline(step, color=color, linestyle="--", linewidth=1, label=label)


def _empty(ax, note: str) -> None:
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, color="dimgray")
    ax.set_xticks([])


def _read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def plot_heatmap(run: Run, store: Store, metrics: list[dict[str, str]], marks: dict, path: Path) -> None:
    steps = store.steps()
    keep = steps > 0
    fig = _figure(9, 11)
    axes = fig.subplots(4, 1, sharex=True, height_ratios=[1, 2, 2, 2])
    for key, style in (("val/acc", "-"), ("gen/acc", "--")):
        c = curve(run.records, key)
        axes[0].plot(c.steps[c.steps > 0], c.values[c.steps > 0] * 100, style, color="tab:blue", label=key)
    axes[0].set_ylabel("accuracy (%)")
    _mark(axes[0], marks)
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"{_label(run)}: per-position surprisal (bits)")
    positions = read_positions(store.dir / "positions.csv")
    aoa = np.array([float(m["aoa_gam"] or "nan") for m in metrics])
    image = None
    for ax, split in zip(axes[1:], SPLITS, strict=True):
        rows = np.flatnonzero(positions["split"] == split)
        surprisal = store.load(f"surprisal/{split}")[:, keep].astype(np.float32)
        priority = np.where(positions["role"][rows] == "other", 1, 0)
        chosen = np.lexsort((rows, priority))[:MAX_ROWS]
        chosen = chosen[np.argsort(np.nan_to_num(aoa[rows][chosen], nan=np.inf), kind="stable")]
        image = ax.pcolormesh(_edges(steps[keep]), np.arange(len(chosen) + 1), surprisal[chosen], cmap="magma_r",
                              shading="flat")
        ax.set_ylabel(f"{SPLIT_LABELS[split]}\npositions (by AoA)")
        _mark(ax, marks)
    axes[-1].set_xscale("log")
    axes[-1].set_xlabel("training step (log scale)")
    if image is not None:
        fig.colorbar(image, ax=axes[1:], label="surprisal (bits)")
    fig.savefig(path, dpi=DPI)


def plot_aoa(run: Run, metrics: list[dict[str, str]], path: Path) -> None:
    fig = _figure(12, 3.8)
    axes = fig.subplots(1, len(SPLITS), sharey=True)
    for ax, split in zip(axes, SPLITS, strict=True):
        data, labels, never_total = [], [], 0
        for role in ROLES:
            values = [float(m["aoa_gam"]) for m in metrics if m["split"] == split and m["role"] == role and m["aoa_gam"]]
            never = sum(m["never_gam"] == "True" for m in metrics if m["split"] == split and m["role"] == role)
            never_total += never
            if values:
                data.append(values)
                labels.append(f"{role}\nn={len(values)}, never={never}")
        if data:
            ax.boxplot(data, tick_labels=labels, vert=True)
        else:
            _empty(ax, f"no AoA: {never_total} positions never acquired" if never_total
                   else "no AoA yet: too few evaluations")
        ax.set_title(SPLIT_LABELS[split])
        ax.tick_params(axis="x", labelsize=7)
    axes[0].set_ylabel("smoothed-curve AoA (log10 step)")
    fig.suptitle(f"{_label(run)}: age of acquisition by role")
    fig.savefig(path, dpi=DPI)


def plot_auxiliaries(run: Run, store: Store, marks: dict, path: Path) -> None:
    from grokking.data import AUXILIARIES

    steps = store.steps()
    keep = steps > 0
    positions = read_positions(store.dir / "positions.csv")
    fig = _figure(12, 3.5)
    axes = fig.subplots(1, len(AUXILIARIES), sharey=True)
    for ax, aux in zip(axes, AUXILIARIES, strict=True):
        for split, style in (("val", "-"), ("gen", "--")):
            mask = positions["split"] == split
            rows = np.flatnonzero((positions["role"][mask] == "critical") & (positions["target"][mask] == aux))
            if len(rows):
                s = store.load(f"surprisal/{split}")[rows][:, keep].astype(np.float32).mean(0)
                ax.plot(steps[keep], s, style, label=f"{SPLIT_LABELS[split]} (n={len(rows)})")
        _mark(ax, marks)
        ax.set_xscale("log")
        ax.set_title(aux)
        ax.set_xlabel("training step (log scale)")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("surprisal at the critical position (bits)")
    fig.suptitle(f"{_label(run)}: the four auxiliaries after `quest`")
    fig.savefig(path, dpi=DPI)


def plot_bifurcation(run: Run, store: Store, t_bif: dict[str, int | None], marks: dict, path: Path) -> bool:
    hists = store.load("param_hist")
    edges_file = store.dir / "param_edges.npz"
    if hists is None or not edges_file.exists():
        return False
    with np.load(edges_file) as z:
        names, groups, lo, hi = z["names"].tolist(), z["groups"].tolist(), z["lo"], z["hi"]
    chosen = []
    for group in BIFURCATION_GROUPS:
        members = [i for i, g in enumerate(groups) if g == group and names[i].endswith("weight")]
        if members:
            chosen.append(members[-1])
    steps = store.steps()
    keep = steps > 0
    columns = 4
    fig = _figure(4 * columns, 3.2 * -(-len(chosen) // columns))
    axes = np.atleast_1d(fig.subplots(-(-len(chosen) // columns), columns, squeeze=False)).ravel()
    for ax in axes[len(chosen):]:
        ax.set_visible(False)
    for ax, i in zip(axes, chosen, strict=False):
        counts = hists[keep, i, 1:-1].astype(np.float64)
        density = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        values = np.linspace(lo[i], hi[i], counts.shape[1] + 1)
        ax.pcolormesh(_edges(steps[keep]), values, density.T, cmap="viridis", shading="flat",
                      norm=LogNorm(vmin=1e-5, vmax=1.0))
        _mark(ax, marks | {"t_bif": t_bif.get(names[i])})
        ax.set_xscale("log")
        ax.set_title(names[i], fontsize=9)
        ax.set_ylabel("weight value")
        ax.set_xlabel("training step (log scale)")
    if axes[0].get_legend_handles_labels()[0]:  # early stop, grokking, t_bif: whichever happened
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{_label(run)}: weight distributions over training (fixed bins, ±σ range set at init)")
    fig.savefig(path, dpi=DPI)
    return True


def run_section(run: Run, out: Path, threshold: float) -> tuple[list[Block], list[Path]]:
    store = Store(run.path / DIAGNOSTICS_DIR)
    analysis = store.dir / ANALYSIS_DIR / "token_metrics.csv"
    if not analysis.exists() or not (store.dir / "events.json").exists():
        analyze_run(run.path)
    events = json.loads((store.dir / "events.json").read_text())
    val, gen = curve(run.records, "val/acc"), curve(run.records, "gen/acc")
    best = first_argmax(val.values)
    marks = {"early stop": int(val.steps[best]) if best is not None else None,
             "grokking": grokking_step(gen.steps, gen.values, threshold)}
    metrics = _read_table(analysis)
    slug = _slug(run)
    figures = [out / f"diag_{slug}_heatmap.png", out / f"diag_{slug}_aoa.png"]
    plot_heatmap(run, store, metrics, marks, figures[0])
    plot_aoa(run, metrics, figures[1])
    captions = ["surprisal heat-map: rows are probe positions (critical and structure-sensitive first, sorted by "
                "smoothed-curve AoA), columns diagnostic evaluations on a log-step axis",
                "smoothed-curve (P-spline) age of acquisition by role and split"]
    if (task := TASKS.get(run.task)) and task.plots_critical_candidates:
        figures.append(out / f"diag_{slug}_auxiliaries.png")
        plot_auxiliaries(run, store, marks, figures[-1])
        captions.append("mean surprisal of each auxiliary at the critical position, in-domain vs OOD")
    bifurcation = out / f"diag_{slug}_bifurcation.png"
    if plot_bifurcation(run, store, events.get("t_bif", {}), marks, bifurcation):
        figures.append(bifurcation)
        captions.append("bifurcation diagrams: per-evaluation weight histograms (log density) of one tensor per group")
    onsets = events.get("t_bif_group", {})
    table = Table(["event", "step"], [
        ["early stop (best val/acc)", _text(marks["early stop"])], ["t_ID (val/acc ≥ 0.99)", _text(events["t_id"])],
        [f"grokking (gen/acc ≥ {threshold:g} from here on)", _text(marks["grokking"])],
        ["early stop (val/loss, patience 5)", _text(events["early_stop_loss"])],
        *[[f"t_bif {group}", _text(step)] for group, step in sorted(onsets.items())]])
    blocks: list[Block] = [Heading(_label(run), 3), table]
    blocks += [Image(p.name, c) for p, c in zip(figures, captions, strict=True)]
    return blocks, figures


def _text(step: int | None) -> str:
    return "—" if step is None else f"{step:,}"


def diagnostics_section(runs: list[Run], out: Path, threshold: float) -> tuple[list[Block], list[Path]]:
    """Report blocks and figure paths for every run with diagnostics (nothing if none has them)."""
    chosen = [r for r in runs if has_diagnostics(r)]
    if not chosen:
        return [], []
    blocks: list[Block] = [Heading("Learning-dynamics diagnostics"), Paragraph(
        "Runs trained with diagnostics=on (docs/diagnostics.md); metrics from `grok analyze` in "
        "<run>/diagnostics/analysis/. t_bif: first of 3 consecutive evaluations with bimodality coefficient > 5/9 "
        "and dip-test p < 0.01 (earliest tensor per group).")]
    figures: list[Path] = []
    for run in chosen:
        try:
            run_blocks, run_figures = run_section(run, out, threshold)
        except DiagnosticsError as exc:  # one run's missing or damaged diagnostics never stop the report
            log.warning("grok: warning: %s: diagnostics skipped: %s", _label(run), exc)
            run_blocks, run_figures = [Heading(_label(run), 3), Paragraph(f"diagnostics not analysed: {exc}")], []
        blocks += run_blocks
        figures += run_figures
    return blocks, figures
