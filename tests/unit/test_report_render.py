"""report.md / report.html text: the document model, the paper's values beside ours, and the run lists."""

from pathlib import Path

from grokking.paperconfig import paper_training_config
from grokking.report import published
from grokking.report.collect import Run
from grokking.report.document import Bullets, Heading, Image, Paragraph, Table, to_html, to_markdown
from grokking.report.render import paper, report_blocks
from grokking.report.summary import group_runs


def make_run(task, depth, seed, gens, status="done", reason=None):
    records = [{"step": 3000 * (i + 1), "val/acc": 1.0, "gen/acc": g} for i, g in enumerate(gens)]
    return Run(path=Path("."), name=f"{task}/depth={depth}/seed={seed}", task=task, depth=depth, seed=seed,
               planned_steps=3000 * len(gens), status=status, reason=reason, records=records,
               training=paper_training_config(task))


def test_markdown_and_html_render_every_block_kind_and_escape_text():
    blocks = [Heading("Title <1>", 1), Paragraph("a & b"), Bullets(["x", "y"]),
              Table(["name", "value"], [["a|b", "1"]]), Image("fig.png", "a figure")]
    markdown = to_markdown(blocks)
    assert "# Title <1>" in markdown and "- x\n- y" in markdown
    assert "| a\\|b | 1 |" in markdown and "![a figure](fig.png)" in markdown
    page = to_html(blocks, "t")
    assert "<h1>Title &lt;1&gt;</h1>" in page and "<p>a &amp; b</p>" in page
    assert "<td>a|b</td>" in page and "<img src='fig.png'" in page


def test_published_values_keep_their_qualifier_and_format():
    assert paper(published.DELTA_EARLY_STOPPING[("qf", 6)]) == "≈65.0%"
    assert paper(published.EARLY_STOPPED_GEN_MEAN[("ti", 4)]) == "<50.0%"
    assert paper(published.RIGHT_BRANCHING["qf"], ".4f") == "0.6628"
    assert paper(None) == "—"
    assert all(v.source.startswith("Fig 3a") for v in published.SUCCESS_FRACTION.values())


def test_report_lists_unfinished_and_failed_runs_and_puts_paper_values_beside_ours():
    runs = [make_run("qf", 6, 42, [0.3, 0.9]), make_run("qf", 6, 52, [0.3], status="running"),
            make_run("qf", 6, 62, [0.1], status="failed", reason="loss is NaN"), make_run("ti", 4, 42, [0.5, 0.85])]
    text = to_markdown(report_blocks(Path("runs"), runs, group_runs(runs), 0.8, ["curves_qf.png"], "success.png",
                                     [], "metrics_tidy.csv", "now"))
    assert "4 run directories under runs; 3 included" in text
    assert "unfinished (1): qf/depth=6/seed=52 (running, step 3,000 of 3,000)" in text
    assert "failed (1, left out): qf/depth=6/seed=62 (loss is NaN)" in text
    assert "| qf | 6 | 2 (1 done) | 3,000 | 30.0 ± 0.0% | 60.0 ± 42.4% | <40.0% | 92.9% |" in text
    assert "| ti | 4 | 1 | 1/1 | 6,000 [6,000–6,000] | 1.00 | 1.00 | 0.7 | 0.8 / 0.9 |" in text
    assert "Probe dynamics" not in text  # no probe figures, no probe section
    assert "![" in text and "curves_qf.png" in text and "success.png" in text
