"""The report's text and tables as document blocks: which runs went in, the Fig 2 / Fig 3a / Fig 3b-4 (tree-structuredness) tables with the
paper's values beside ours, success after in-domain saturation (the released logs' beside ours when given),
and per-run tables. Figures are referenced by their paths in the report directory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from grokking.report import published
from grokking.report.collect import Run
from grokking.report.document import Block, Bullets, Heading, Image, Paragraph, Table
from grokking.report.figures import attention_sparsity, logged, weight_norm_per_layer
from grokking.report.success import DEMO_LAST_MEAN, JUMP, LAST_EVALUATIONS, SATURATION, group_success
from grokking.report.summary import (
    ACCURACY_PAIRS,
    AccuracyPair,
    Curve,
    RunSummary,
    Stat,
    logs_pair,
    mean_sd,
    success_fractions,
    summarise_run,
)

Groups = dict[tuple[str, int], list[Run]]
Summaries = list[tuple[str, int, list[Run], list[RunSummary]]]
DASH = "—"


def pct(value: float | None) -> str:
    return DASH if value is None or math.isnan(value) else f"{value * 100:.1f}%"


def stat_pct(stat: Stat) -> str:
    if stat.n == 0:
        return DASH
    return f"{stat.mean * 100:.1f}%" if math.isnan(stat.sd) else f"{stat.mean * 100:.1f} ± {stat.sd * 100:.1f}%"


def stat_num(stat: Stat) -> str:
    if stat.n == 0:
        return DASH
    return f"{stat.mean:.3g}" if math.isnan(stat.sd) else f"{stat.mean:.3g} ± {stat.sd:.2g}"


def paper(value: published.Published | None, fmt: str = "") -> str:
    """A published value with its qualifier; as a percentage unless a format spec is given."""
    if value is None:
        return DASH
    return value.qualifier + (format(value.value, fmt) if fmt else pct(value.value))


def step_text(step: int | None) -> str:
    return DASH if step is None else f"{step:,}"


def median_span(values: list[int]) -> str:
    """`median [min–max]` of sorted integers (steps, counts); a median between two values keeps its .5."""
    if not values:
        return DASH
    median = float(np.median(values))
    return f"{median:,.{0 if median.is_integer() else 1}f} [{values[0]:,}–{values[-1]:,}]"


def last_value(run: Run, extract: Callable[[Run], Curve]) -> float:
    c = extract(run)
    return float(c.values[-1]) if len(c) else math.nan


def seeds_text(runs: list[Run]) -> str:
    done = sum(r.state == "done" for r in runs)
    return f"{len(runs)} ({done} done)" if done < len(runs) else str(len(runs))


def definitions(threshold: float, pairs: Sequence[AccuracyPair]) -> Bullets:
    t = f"{threshold:g}"
    primary, filtered = pairs
    return Bullets([
        f"in-domain accuracy = {primary.val}, OOD accuracy = {primary.gen} (Dyck: unfiltered, as the code "
        f"measured; the rows marked '{filtered.label.strip(' ()')}' use the paper's filtered {filtered.val}, "
        f"{filtered.gen}).",
        "early stopping: per seed, the first evaluation with the best in-domain accuracy (among evaluations that "
        "logged both accuracies); 'end' is the last such evaluation.",
        "Δ = in-domain − OOD accuracy. Tables give the mean ± sd over seeds of per-seed values; the figures mark "
        "Δ on the seed-mean curves (early stopping = best mean in-domain accuracy), as the paper's Fig 2 does.",
        f"grokking step: the first evaluation from which OOD accuracy ≥ {t} at it and at every later evaluation.",
        f"success 'final': the last OOD accuracy > {t}; success 'ever': the largest OOD accuracy > {t}. The paper "
        "says 'eventually crosses 80%' without saying which (docs/paper-vs-code.md #27), so both are shown.",
        "sd is the sample standard deviation over seeds (ddof=1). Unfinished runs are included with the last step "
        "they logged, so their 'end', grokking step and success are provisional; failed runs are left out of "
        "means and fractions and listed below.",
        "runs are averaged only with runs of the same training config (all but seed and depth); when one task and "
        "tag hold several configs, each is its own row, labelled [key=value, ...] with the keys in which they "
        "differ. The paper's numbers stand only beside rows trained with the paper's config; other rows show "
        f"{DASH}.",
    ])


def runs_section(root: Path, runs: list[Run], groups: Groups, skipped: Sequence[Run],
                 pair: AccuracyPair) -> list[Block]:
    """The included, unfinished, failed and left-out runs; `skipped` are the runs without `pair`'s keys (a
    report on weight-averaged evaluations), listed but in no table."""
    included = {id(r) for rs in groups.values() for r in rs if r.records}
    unfinished = [r for r in runs if r.state == "unfinished"]
    failed = [r for r in runs if r.state == "failed"]
    left_out = [r for r in runs if id(r) not in included and r.state != "failed"]
    items = [f"{len(runs) + len(skipped)} run directories under {root}; {len(included)} included in figures "
             "and tables."]
    items.append(f"unfinished ({len(unfinished)}): " + (", ".join(
        f"{r.name} ({r.status}, step {step_text(r.last_step)} of {step_text(r.planned_steps)}"
        + (f", updated {r.updated})" if r.updated else ")") for r in unfinished)
        or "none"))
    items.append(f"failed ({len(failed)}, left out): " + (", ".join(
        f"{r.name} ({r.reason or 'no reason given'})" for r in failed) or "none"))
    if left_out:
        items.append(f"left out for lack of identity or evaluations ({len(left_out)}): "
                     + ", ".join(r.name for r in left_out))
    if skipped:
        items.append(f"skipped, no {pair.val} or {pair.gen} logged ({len(skipped)}): "
                     + ", ".join(r.name for r in skipped))
    with_problems = [r for r in runs if r.problems]
    items.append(f"runs with problems ({len(with_problems)}): see the last column of the table.")
    rows = [[r.name, r.task or DASH, str(r.depth) if r.depth is not None else DASH,
             str(r.seed) if r.seed is not None else DASH, r.status, r.state,
             f"{step_text(r.last_step)} / {step_text(r.planned_steps)}", str(len(r.records)),
             "yes" if id(r) in included else "no", "; ".join(r.problems) or DASH] for r in runs]
    header = ["run", "task", "depth", "seed", "status.json", "state", "last step / planned", "logged steps",
              "included", "problems"]
    return [Heading("Runs"), Bullets(items), Table(header, rows)]


def group_summaries(groups: Groups, threshold: float, pairs: Sequence[AccuracyPair]) -> Summaries:
    """(experiment, depth, runs, per-run summaries) for each group and each accuracy pair the group logged
    (the primary pair always)."""
    out = []
    for (experiment, depth), runs in groups.items():
        for pair in pairs:
            if pair.primary or any(logs_pair(r, pair) for r in runs):
                out.append((experiment + pair.label, depth, runs, [summarise_run(r, pair, threshold) for r in runs]))
    return out


def fig2_table(summaries: Summaries) -> Table:
    header = ["task", "depth", "seeds", "early-stop step (median)", "OOD @ early stop", "OOD @ end",
              "paper OOD @ early stop ¹", "paper OOD @ end ²", "Δ @ early stop", "Δ @ end",
              "paper Δ early stop → end ³"]
    rows = []
    for label, depth, runs, sums in summaries:
        gaps = [s.gap for s in sums if s.gap]
        key = paper_key(runs, depth) if sums[0].pair.primary else None
        es_steps = [g.es_step for g in gaps]
        rows.append([label, str(depth), seeds_text(runs),
                     step_text(int(np.median(es_steps))) if es_steps else DASH,
                     stat_pct(mean_sd(g.es_gen for g in gaps)), stat_pct(mean_sd(g.end_gen for g in gaps)),
                     paper(published.EARLY_STOPPED_GEN_MEAN.get(key)), paper(published.FINAL_GEN_MEAN.get(key)),
                     stat_pct(mean_sd(g.delta_es for g in gaps)), stat_pct(mean_sd(g.delta_end for g in gaps)),
                     _paper_delta(key)])
    return Table(header, rows)


def paper_key(runs: list[Run], depth: int) -> tuple[str, int] | None:
    """The key of the paper's published numbers, for a group trained with the paper's config only."""
    return (runs[0].task, depth) if all(r.paper_config for r in runs) else None


def _paper_delta(key: tuple[str, int] | None) -> str:
    es, end = published.DELTA_EARLY_STOPPING.get(key), published.DELTA_END.get(key)
    return f"{paper(es)} → {paper(end)}" if es and end else DASH


def success_table(summaries: Summaries, threshold: float) -> Table:
    header = ["task", "depth", "seeds with OOD acc", "grokked", "grokking step median [min–max]",
              "success final", "success ever", "paper ¹", "released logs final / ever ²"]
    rows = []
    for label, depth, runs, sums in summaries:
        final, ever, n = success_fractions(sums, threshold)
        steps = sorted(s.grok_step for s in sums if s.grok_step is not None)
        key = paper_key(runs, depth) if sums[0].pair.primary else None
        released_final, released_ever = published.RELEASED_SUCCESS_FINAL.get(key), published.RELEASED_SUCCESS_EVER.get(key)
        rows.append([label, str(depth), str(n), f"{len(steps)}/{n}", median_span(steps),
                     DASH if n == 0 else f"{final:.2f}", DASH if n == 0 else f"{ever:.2f}",
                     paper(published.SUCCESS_FRACTION.get(key), ".1f"),
                     f"{released_final.value:.1f} / {released_ever.value:.1f}" if released_final and released_ever
                     else DASH])
    return Table(header, rows)


def probes_table(groups: Groups) -> Table:
    header = ["task", "depth", "weight norm / L @ end", "attention sparsity @ end", "t_score @ end",
              "paper t_score @300k ¹", "t_parseval @ end", "paper t_parseval @300k ¹",
              "right-branching t_parseval (logged)", "right-branching (paper) ¹"]
    rows = []
    for (experiment, depth), runs in groups.items():
        key = paper_key(runs, depth)
        task = key[0] if key else None
        tscore = published.TSCORE_END.get(key)
        rows.append([experiment, str(depth),
                     stat_num(mean_sd(last_value(r, weight_norm_per_layer) for r in runs)),
                     stat_num(mean_sd(last_value(r, attention_sparsity) for r in runs)),
                     stat_num(mean_sd(last_value(r, logged("probe/tscore")) for r in runs)),
                     f"{tscore[0].value:.3f} ± {tscore[1]:.3f}" if tscore else DASH,
                     stat_num(mean_sd(last_value(r, logged("probe/tparseval")) for r in runs)),
                     paper(published.TPARSEVAL_END.get(key), ".3f"),
                     stat_num(mean_sd(last_value(r, logged("probe/tparseval_right_branching")) for r in runs)),
                     paper(published.RIGHT_BRANCHING.get(task), ".4f")])
    return Table(header, rows)


def per_run_table(summaries: Summaries, threshold: float) -> Table:
    header = ["task", "depth", "seed", "state", "last step", "early-stop step", "val @ early stop",
              "OOD @ early stop", "OOD @ end", "max OOD", "grokking step", "success final / ever"]
    rows = []
    for label, depth, _, sums in summaries:
        for s in sums:
            g, (final, ever) = s.gap, s.success(threshold)
            rows.append([label, str(depth), str(s.run.seed), s.run.state, step_text(s.run.last_step),
                         step_text(g.es_step) if g else DASH, pct(g.es_val if g else None),
                         pct(g.es_gen if g else None), pct(s.final_gen), pct(s.max_gen), step_text(s.grok_step),
                         DASH if final is None else f"{'yes' if final else 'no'} / {'yes' if ever else 'no'}"])
    return Table(header, rows)


def success_by_group_table(summaries: Summaries, threshold: float) -> Table:
    t = f"{threshold:g}"
    header = ["task", "depth", "seeds", "saturated", "S median [min–max]", "OOD @ S", "max OOD after S",
              f"crossed {t} after S", "crossing step median [min–max]", f"last-{LAST_EVALUATIONS} mean OOD",
              "jumps median [min–max]"]
    rows = []
    for label, depth, _, sums in summaries:
        results = [s.after_saturation for s in sums]
        group = group_success(results)
        fraction = f" ({group.crossed_fraction:.2f})" if group.seeds else ""
        rows.append([label, str(depth), str(group.seeds), f"{group.saturated}/{group.seeds}",
                     median_span(group.saturation_steps),
                     stat_pct(mean_sd(r.gen_at_saturation for r in results)),
                     stat_pct(mean_sd(r.max_gen_after for r in results)),
                     f"{group.crossed}/{group.seeds}{fraction}",
                     median_span(group.crossing_steps), stat_pct(mean_sd(r.last_mean for r in results)),
                     median_span(group.jumps)])
    return Table(header, rows)


def demo_lines(summaries: Summaries, threshold: float) -> Bullets:
    """The demo criterion per group: seeds that crossed the threshold after saturation and end high."""
    lines = []
    for label, depth, _, sums in summaries:
        group = group_success([s.after_saturation for s in sums])
        lines.append(f"demo criterion, {label} depth {depth}: {group.demo}/{group.seeds} seeds crossed "
                     f"{threshold:g} after saturation and end with a last-{LAST_EVALUATIONS} mean OOD "
                     f"accuracy ≥ {DEMO_LAST_MEAN:g}")
    return Bullets(lines)


def success_per_run_table(summaries: Summaries, threshold: float) -> Table:
    header = ["task", "depth", "seed", "state", "S", "OOD @ S", "max OOD after S",
              f"crossed {threshold:g} at", f"last-{LAST_EVALUATIONS} mean OOD", "jumps", "demo criterion"]
    rows = []
    for label, depth, _, sums in summaries:
        for s in sums:
            a = s.after_saturation
            rows.append([label, str(depth), str(s.run.seed), s.run.state, step_text(a.saturation_step),
                         pct(a.gen_at_saturation), pct(a.max_gen_after),
                         step_text(a.crossing_step) if a.crossed else "no", pct(a.last_mean), str(a.jumps),
                         "yes" if a.demo else "no"])
    return Table(header, rows)


def success_section(summaries: Summaries, released: Summaries, threshold: float,
                    released_per_seed: bool) -> list[Block]:
    """Success after in-domain saturation (grokking.report.success), as report.md holds it and `grok report`
    prints it: one row per group, ours then the released logs' (`released`, from --released), the demo
    criterion per group, and one row per run (and per released seed when `released_per_seed`)."""
    t = f"{threshold:g}"
    note = (" Rows labelled [released logs]: the paper's own per-seed logs (--released), computed the same "
            "way." if released else "")
    blocks: list[Block] = [
        Heading("Success after in-domain saturation (the paper's Fig 3a criterion)"),
        Paragraph(f"Seeds: those with OOD accuracy. S: the first evaluation with in-domain accuracy ≥ "
                  f"{SATURATION:g} (saturated: seeds that reached it). Crossed: OOD accuracy > {t} at or "
                  f"after S ('eventually crosses 80%'). Last-{LAST_EVALUATIONS} mean: of the last "
                  f"{LAST_EVALUATIONS} OOD evaluations. Jumps: consecutive OOD evaluations more than "
                  f"{JUMP * 100:g} points apart. "
                  f"Accuracies are mean ± sd over seeds; steps and jumps median [min–max].{note}"),
        success_by_group_table(summaries + released, threshold),
        demo_lines(summaries + released, threshold),
        Heading("Per run", 3), success_per_run_table(summaries, threshold),
    ]
    if released and released_per_seed:
        blocks += [Heading("Per seed of the released logs", 3), success_per_run_table(released, threshold)]
    return blocks


def report_blocks(root: Path, runs: list[Run], groups: Groups, threshold: float, curve_figures: list[str],
                  success_figure: str | None, probe_figures: list[str], tidy_csv: str, generated: str,
                  pairs: Sequence[AccuracyPair] = ACCURACY_PAIRS, released: Groups | None = None,
                  skipped: Sequence[Run] = ()) -> list[Block]:
    """The whole report; `pairs` are the accuracy keys read (`summary.accuracy_pairs`), `released` the groups
    of the paper's released logs and `skipped` the runs left out for lack of `pairs`' keys."""
    summaries = group_summaries(groups, threshold, pairs)
    blocks: list[Block] = [
        Heading(f"grok report: {root}", 1),
        Paragraph(f"Generated {generated}. Threshold {threshold:g}. Accuracies read from {pairs[0].val} "
                  f"(in-domain) and {pairs[0].gen} (OOD). Tidy metrics (one row per run × logged step, every "
                  f"logged key): {tidy_csv}."),
        *runs_section(root, runs, groups, skipped, pairs[0]),
        Heading("Definitions"), definitions(threshold, pairs),
    ]
    if not summaries:
        return blocks + [Paragraph("No identified, non-failed run has logged an evaluation yet.")]
    blocks += [Heading("Grokking curves (Fig 2 style)")]
    blocks += [Image(path, f"{Path(path).stem.removeprefix('curves_')}: in-domain (solid) and OOD (dashed) accuracy, "
                           "mean ± sd over seeds; Δ of the mean curves at early stopping (●) and the last step (■), "
                           f"values in each panel's title; dotted line at {threshold:.0%}.") for path in curve_figures]
    blocks += [Heading("OOD accuracy at early stopping vs at the end", 3), fig2_table(summaries),
               Paragraph(f"Paper columns (docs/metrics.md, published numbers): ¹ {published.TEXT_31}, an upper bound; ² {published.FIG2_MEANS}; "
                         f"³ {published.FIG2}, read off the seed-mean curves.")]
    blocks += [Heading("Grokking step and success by depth (Fig 3a style)")]
    if success_figure:
        blocks.append(Image(success_figure, f"fraction of seeds with OOD accuracy > {threshold:g}, at the final "
                                            "step (solid) and ever (hatched); black ticks: the paper's Fig 3a."))
    blocks += [success_table(summaries, threshold),
               Paragraph(f"Paper columns (docs/metrics.md, published numbers): ¹ {published.FIG3A}; ² {published.RELEASED_LOGS}.")]
    released_summaries = group_summaries(released or {}, threshold, ACCURACY_PAIRS)
    blocks += success_section(summaries, released_summaries, threshold, released_per_seed=True)
    if probe_figures:
        blocks += [Heading("Probe dynamics (Fig 3b / Fig 4 style)")]
        blocks += [Image(path, f"{Path(path).stem.removeprefix('probes_')}: probes by depth, mean ± sd over "
                               "seeds; dashed line on t_parseval: right-branching baseline.") for path in probe_figures]
        blocks += [probes_table(groups), Paragraph(f"Paper columns (docs/metrics.md, published numbers): ¹ {published.FIG3B}.")]
    blocks += [Heading("Per-run results"), per_run_table(summaries, threshold)]
    return blocks
