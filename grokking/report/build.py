"""`build_report`: read every run under a directory and write the report directory.

    <out>/metrics_tidy.csv        one row per run x logged step, every logged key
    <out>/curves_<task>.png       grokking curves, one panel per depth (Fig 2 style)
    <out>/success.png             success fraction by depth, final and ever (Fig 3a style)
    <out>/probes_<task>.png       probe dynamics by depth (Fig 3b / Fig 4 style), if probes were logged
    <out>/diag_<run>_*.png        learning-dynamics figures of runs with diagnostics (grokking.report.diagnostics)
    <out>/report.md, report.html  everything above with the tables and the list of included/unfinished/failed runs
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from grokking.report.collect import ReportError, Run, collect_runs, write_tidy_csv
from grokking.report.diagnostics import diagnostics_section
from grokking.report.document import to_html, to_markdown
from grokking.report.figures import depth_colors, has_probes, plot_grokking_curves, plot_probes, plot_success
from grokking.report.render import report_blocks
from grokking.report.summary import ACCURACY, group_runs, success_fractions, summarise_run

TIDY_CSV = "metrics_tidy.csv"


@dataclass(frozen=True)
class ReportResult:
    out: Path
    runs: list[Run]
    markdown: Path
    figures: list[Path]


def file_stem(experiment: str) -> str:
    """`qf-smoke [model.d_model=32]` -> `qf-smoke_model.d_model=32`: safe in file names and Markdown links."""
    return re.sub(r"[^\w.=+-]+", "_", experiment).strip("_")


def build_report(root: str | Path, out: str | Path | None = None, threshold: float = 0.8) -> ReportResult:
    root = Path(root)
    runs = collect_runs(root)
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
        plot_grokking_curves(experiment, depth_groups, colors, threshold, curve_figures[-1])
        if has_probes([r for rs in depth_groups.values() for r in rs]):
            probe_figures.append(out / f"probes_{file_stem(experiment)}.png")
            plot_probes(experiment, depth_groups, colors, probe_figures[-1])
    success_figure = None
    if by_experiment:
        success_figure = out / "success.png"
        fractions = {experiment: {depth: success_fractions([summarise_run(r, ACCURACY, threshold) for r in rs],
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
                           generated=datetime.now().astimezone().isoformat(timespec="seconds"))
    diagnostic_blocks, diagnostic_figures = diagnostics_section(runs, out, threshold)
    blocks += diagnostic_blocks
    markdown = out / "report.md"
    markdown.write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, title=f"grok report: {root}"))
    figures = curve_figures + ([success_figure] if success_figure else []) + probe_figures + diagnostic_figures
    return ReportResult(out=out, runs=runs, markdown=markdown, figures=figures)
