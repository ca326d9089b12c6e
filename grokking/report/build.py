"""`build_report`: read every run under a directory and write the report directory.

    <out>/metrics_tidy.csv        one row per run x logged step, every logged key
    <out>/curves_<task>.png       grokking curves, one panel per depth (Fig 2 style)
    <out>/success.png             success fraction by depth, final and ever (Fig 3a style)
    <out>/probes_<task>.png       probe dynamics by depth (Fig 3b / Fig 4 style), if probes were logged
    <out>/diag_<run>_*.png        learning-dynamics figures of runs with diagnostics (grokking.report.diagnostics)
    <out>/report.md, report.html  everything above with the tables and the list of included/unfinished/failed runs

`weights` picks the evaluation read (`raw`, or `ema<decay>` for the weight-averaged one:
`summary.accuracy_pairs`); under `ema<decay>`, runs that logged none of its keys are skipped with a warning.
`released` is a directory of the paper's released logs (grokking.report.released), whose success table goes
beside ours.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from grokking.report.collect import ReportError, Run, collect_runs, write_tidy_csv
from grokking.report.diagnostics import diagnostics_section
from grokking.report.document import Block, to_html, to_markdown
from grokking.report.figures import depth_colors, has_probes, plot_grokking_curves, plot_probes, plot_success
from grokking.report.released import read_released
from grokking.report.render import group_summaries, report_blocks, success_section
from grokking.report.summary import (
    ACCURACY_PAIRS,
    RAW_WEIGHTS,
    accuracy_pairs,
    group_runs,
    logs_pair,
    success_fractions,
    summarise_run,
)

TIDY_CSV = "metrics_tidy.csv"


@dataclass(frozen=True)
class ReportResult:
    out: Path
    runs: list[Run]
    markdown: Path
    figures: list[Path]
    success: list[Block]  # success after saturation, as `grok report` prints it
    warnings: list[str]  # one line each: the runs skipped for lack of the chosen weights' accuracies


def file_stem(experiment: str) -> str:
    """`qf-smoke [model.d_model=32]` -> `qf-smoke_model.d_model=32`: safe in file names and Markdown links."""
    return re.sub(r"[^\w.=+-]+", "_", experiment).strip("_")


def build_report(root: str | Path, out: str | Path | None = None, threshold: float = 0.8,
                 weights: str = RAW_WEIGHTS, released: str | Path | None = None) -> ReportResult:
    root = Path(root)
    pairs = accuracy_pairs(weights)
    primary = pairs[0]
    released_groups = group_runs(read_released(released)) if released is not None else {}
    runs = collect_runs(root, (primary.val, primary.gen))
    skipped: list[Run] = []
    if weights != RAW_WEIGHTS:
        skipped = [r for r in runs if not logs_pair(r, primary)]
        runs = [r for r in runs if logs_pair(r, primary)]
        if not runs:
            raise ReportError(f"no run under {root} logged {primary.val} or {primary.gen} "
                              f"(--weights {weights})")
    out = Path(out) if out is not None else root / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create report directory {out}: {exc.strerror}") from exc
    groups = group_runs(runs)
    by_experiment: dict[str, dict[int, list[Run]]] = defaultdict(dict)
    for (experiment, depth), members in groups.items():
        by_experiment[experiment][depth] = members
    colors = depth_colors([depth for _, depth in groups])

    write_tidy_csv(runs, out / TIDY_CSV)
    curve_figures, probe_figures = [], []
    for experiment, depth_groups in by_experiment.items():
        curve_figures.append(out / f"curves_{file_stem(experiment)}.png")
        plot_grokking_curves(experiment, depth_groups, colors, threshold, curve_figures[-1], primary)
        if has_probes([r for rs in depth_groups.values() for r in rs]):
            probe_figures.append(out / f"probes_{file_stem(experiment)}.png")
            plot_probes(experiment, depth_groups, colors, probe_figures[-1])
    success_figure = None
    if by_experiment:
        success_figure = out / "success.png"
        fractions = {experiment: {depth: success_fractions([summarise_run(r, primary, threshold) for r in rs],
                                                            threshold)
                                  for depth, rs in depth_groups.items()}
                     for experiment, depth_groups in by_experiment.items()}
        paper = {e for e, depth_groups in by_experiment.items() if all(r.paper_config for rs in depth_groups.values()
                                                                       for r in rs)}
        plot_success(fractions, colors, threshold, success_figure, paper)

    blocks = report_blocks(root, runs, groups, threshold,
                           curve_figures=[p.name for p in curve_figures],
                           success_figure=success_figure.name if success_figure else None,
                           probe_figures=[p.name for p in probe_figures], tidy_csv=TIDY_CSV,
                           generated=datetime.now().astimezone().isoformat(timespec="seconds"), pairs=pairs,
                           released=released_groups, skipped=skipped)
    diagnostic_blocks, diagnostic_figures = diagnostics_section(runs, out, threshold)
    blocks += diagnostic_blocks
    markdown = out / "report.md"
    markdown.write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, title=f"grok report: {root}"))
    figures = curve_figures + ([success_figure] if success_figure else []) + probe_figures + diagnostic_figures
    success: list[Block] = []
    if summaries := group_summaries(groups, threshold, pairs):
        released_summaries = group_summaries(released_groups, threshold, ACCURACY_PAIRS)
        success = success_section(summaries, released_summaries, threshold, released_per_seed=False)
    warnings = [f"skipped {r.name}: no {primary.val} or {primary.gen} logged" for r in skipped]
    return ReportResult(out=out, runs=runs, markdown=markdown, figures=figures, success=success,
                        warnings=warnings)
