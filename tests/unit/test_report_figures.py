"""The report figures render as non-empty PNGs of the expected pixel size, with and without data."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

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
