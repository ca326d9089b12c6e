"""The report figures render as non-empty PNGs of the expected pixel size, with and without data, and nothing
written on them collides: titles and legends stay inside the figure and off the data, Δ stays off the markers."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from grokking.report import figures
from grokking.report.collect import Run
from grokking.report.figures import (
    PROBE_COLUMNS,
    PROBE_PANELS,
    attention_sparsity,
    depth_colors,
    figure_size_px,
    has_probes,
    plot_grokking_curves,
    plot_probes,
    plot_success,
    success_note,
    weight_norm_per_layer,
)

STEPS = [3000 * i for i in range(1, 41)]


def make_run(depth, seed, probes=True, n_steps=None, task="qf"):
    records = []
    n_steps = len(STEPS) if n_steps is None else n_steps
    for step in STEPS[:n_steps]:
        record = {"step": step, "val/acc": min(1.0, step / 9000), "gen/acc": 0.2 + 0.7 * step / STEPS[-1]}
        if probes:
            record |= {"probe/weight_norm": 40.0 * depth + step / 1e4, "probe/attn_entropy": 2 - step / 2e5,
                       "probe/tscore": 0.5 + step / 1e6, "probe/tparseval": 0.6 + step / 2e6,
                       "probe/tparseval_right_branching": 0.66}
        records.append(record)
    return Run(path=Path("."), name=f"{task}/depth={depth}/seed={seed}", task=task, depth=depth, seed=seed,
               status="done" if n_steps == len(STEPS) else "running", records=records)


def read_png(path: Path) -> np.ndarray:
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 0.01  # something was drawn, not a blank canvas
    return image


GROUPS = {2: [make_run(2, 42), make_run(2, 52)], 6: [make_run(6, 42), make_run(6, 52, n_steps=10)]}
COLORS = depth_colors([2, 4, 6])


def test_depth_colours_are_distinct_and_independent_of_order():
    assert depth_colors([6, 2, 4]) == COLORS
    assert len(set(COLORS.values())) == 3


@pytest.mark.parametrize("n_depths", [1, 3, 5])
def test_grokking_curves_have_one_panel_per_depth(tmp_path, n_depths):
    groups = {d: [make_run(d, 42), make_run(d, 52, n_steps=5)] for d in range(2, 2 + 2 * n_depths, 2)}
    path = tmp_path / "curves.png"
    plot_grokking_curves("qf", groups, depth_colors(list(groups)), 0.8, path)
    width, height = figure_size_px(n_depths)
    assert read_png(path).shape[:2] == (height, width)


def test_grokking_curves_survive_a_depth_without_accuracies(tmp_path):
    empty = Run(path=Path("."), name="x", task="qf", depth=4, seed=1, records=[{"step": 3000, "train/loss": 1.0}])
    path = tmp_path / "curves.png"
    plot_grokking_curves("qf", {**GROUPS, 4: [empty]}, COLORS, 0.8, path)
    assert read_png(path).shape[:2] == figure_size_px(3)[::-1]


def test_success_figure_has_one_panel_per_task(tmp_path):
    fractions = {"qf": {2: (0.0, 0.1, 10), 6: (0.9, 1.0, 10)}, "ti": {4: (0.5, 0.6, 3)},
                 "dyck": {6: (float("nan"), float("nan"), 0)}}
    path = tmp_path / "success.png"
    plot_success(fractions, COLORS, 0.8, path, {"qf"})
    assert read_png(path).shape[:2] == figure_size_px(3)[::-1]


def test_one_panel_figures_are_wide_enough_for_their_titles():
    assert figure_size_px(1)[0] >= 700


def test_probe_figure_is_a_two_by_two_grid_even_with_missing_probes(tmp_path):
    path = tmp_path / "probes.png"
    partial = make_run(4, 42)
    for record in partial.records:
        del record["probe/tparseval"]
    plot_probes("qf", {**GROUPS, 4: [partial]}, COLORS, path)
    assert read_png(path).shape[:2] == figure_size_px(len(PROBE_PANELS), PROBE_COLUMNS)[::-1]
    assert figure_size_px(len(PROBE_PANELS), PROBE_COLUMNS)[0] < figure_size_px(len(PROBE_PANELS))[0]


def test_probe_extractors_normalise_by_depth_and_flip_entropy():
    run = make_run(4, 42)
    assert weight_norm_per_layer(run).values[0] == pytest.approx((160 + 0.3) / 4)
    assert attention_sparsity(run).values[0] == pytest.approx(-(2 - 3000 / 2e5))
    assert has_probes([run]) and not has_probes([make_run(4, 42, probes=False)])


# -- layout: what is drawn at the figure's real size -------------------------------------------------------------
@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """Call a plot function and return its figure, laid out and drawn as it is saved."""
    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig))

    def draw(plot, *args, **kwargs) -> Figure:
        plot(*args, path=tmp_path / "figure.png", **kwargs)
        saved[-1].canvas.draw()
        return saved[-1]
    return draw


def marker_boxes(fig: Figure) -> list[Bbox]:
    """Display-space boxes of every marker drawn in the figure's axes."""
    boxes = []
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_marker() in ("None", None, ""):
                continue
            half = line.get_markersize() * fig.dpi / 72 / 2
            for x, y in ax.transData.transform(np.column_stack(line.get_data())):
                boxes.append(Bbox([[x - half, y - half], [x + half, y + half]]))
    return boxes


def texts(fig: Figure) -> list:
    """The figure's own words (tick labels are matplotlib's): titles, axis labels, annotations, legends."""
    found = [fig._suptitle, *(t for legend in fig.legends for t in legend.get_texts())]
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        legend = ax.get_legend()
        found += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts, *(legend.get_texts() if legend else [])]
    return [t for t in found if t is not None and t.get_visible() and t.get_text().strip()]


def assert_inside_and_clear(fig: Figure) -> None:
    renderer = fig.canvas.get_renderer()
    for text in texts(fig):
        box = text.get_window_extent(renderer)
        assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, f"{text.get_text()!r} is cut off"
        assert fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1, f"{text.get_text()!r} is cut off"
        assert not any(box.overlaps(marker) for marker in marker_boxes(fig)), f"{text.get_text()!r} covers a marker"
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes if ax.get_visible())


@pytest.mark.parametrize("n_depths", [1, 2, 5])
def test_accuracy_figures_keep_delta_titles_and_legend_clear_of_data(drawn, n_depths):
    # Δ at early stop and at the end close together (best val/acc late) and a zero Δ: the hard cases for labels
    groups = {d: [make_run(d, 42), make_run(d, 52, n_steps=38)] for d in range(2, 2 + 2 * n_depths, 2)}
    for run in groups[2]:  # best val/acc one evaluation before the end, OOD equal to in-domain
        for i, record in enumerate(run.records):
            record["val/acc"] = record["gen/acc"] = 0.5 + 0.01 * min(i, 36 - i % 2)
    fig = drawn(plot_grokking_curves, "qf-smoke [model.d_model=32, optim.lr=0.0003, train.batch_size=64]", groups,
                depth_colors(list(groups)), 0.8)
    assert_inside_and_clear(fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert "Δ 0% at early stop ●, 0% at the end ■" in titles[0]
    assert not any(len(ax.texts) for ax in fig.axes)  # nothing written over the curves
    assert len(fig.legends) == 1 and fig.axes[0].get_xscale() == "symlog" and fig.axes[0].get_xlim()[0] == 0


def test_a_long_title_is_wrapped_inside_a_one_panel_figure(drawn):
    fig = drawn(plot_grokking_curves, "qf-smoke [" + ", ".join(f"model.key_{i}={i}" for i in range(6)) + "]",
                {2: [make_run(2, 42)]}, COLORS, 0.8)
    assert "\n" in fig._suptitle.get_text()
    assert_inside_and_clear(fig)


def test_success_panels_say_why_they_are_empty_above_the_bars(drawn):
    fractions = {"qf": {2: (0.0, 0.0, 3), 6: (0.0, 0.0, 3)}, "ti": {4: (0.5, 0.6, 3)},
                 "dyck": {6: (float("nan"), float("nan"), 0)}}
    fig = drawn(plot_success, fractions, COLORS, 0.8, paper_experiments={"qf", "ti"})
    assert_inside_and_clear(fig)
    notes = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in fig.axes if ax.get_visible()}
    assert notes == {"qf": ["no seed has reached OOD accuracy > 80% yet"], "ti": [],
                     "dyck": ["no OOD accuracy logged yet"]}
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for note in ax.texts:  # above every bar and paper tick (all at most 1)
            assert note.get_window_extent(renderer).y0 > ax.transData.transform((0, 1.0))[1]


def test_success_note():
    assert success_note({2: (0.0, 0.5, 3)}, 0.8) is None
    assert success_note({2: (0.0, 0.0, 3)}, 0.9) == "no seed has reached OOD accuracy > 90% yet"
    assert success_note({2: (float("nan"), float("nan"), 0)}, 0.8) == "no OOD accuracy logged yet"


def test_probe_figure_has_one_legend_of_depths_below_the_panels(drawn):
    fig = drawn(plot_probes, "qf", GROUPS, COLORS)
    assert_inside_and_clear(fig)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["2 layers", "6 layers", "right-branching"]
