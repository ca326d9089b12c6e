"""`grok data` through the real console script, run from a scratch working directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import check_one_line_error, run_grok

SMALL = ["task.n_train=200", "task.n_val=20", "task.n_gen=20"]


def grok(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_grok("data", *args, cwd=cwd, timeout=120)


def test_generates_caches_and_exports_from_any_directory(tmp_path):
    result = grok(tmp_path, "task=ti", *SMALL, "export=orig")
    assert result.returncode == 0, result.stderr
    assert "ti: 200 train, 20 val, 20 gen -> data/ti/" in result.stdout
    cache = next((tmp_path / "data" / "ti").iterdir())
    assert sorted(p.name for p in cache.iterdir()) == ["gen.txt", "manifest.json", "train.txt", "val.txt"]
    assert sorted(p.name for p in (tmp_path / "orig").iterdir()) == ["tense.dev", "tense.gen", "tense.train"]
    assert (tmp_path / "orig" / "tense.gen").read_bytes() == (cache / "gen.txt").read_bytes()


def test_unknown_task(tmp_path):
    check_one_line_error(grok(tmp_path, "task=xyz"), "xyz")
    assert not (tmp_path / "data").exists()


def test_unwritable_data_directory(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a directory")
    check_one_line_error(grok(tmp_path, "task=qf", *SMALL, "data.dir=blocker/data"), "cannot write data directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path):
    assert grok(tmp_path, "task=dyck", *SMALL).returncode == 0
    cache = next((tmp_path / "data" / "dyck").iterdir())
    original = (cache / "val.txt").read_bytes()
    (cache / "val.txt").write_bytes(original[: len(original) // 2])
    result = grok(tmp_path, "task=dyck", *SMALL)
    assert result.returncode == 0, result.stderr
    assert "invalid" in result.stderr and "rebuilding" in result.stderr
    assert (cache / "val.txt").read_bytes() == original


@pytest.mark.parametrize("task,files,bad", [
    ("qf", {"question.train": "the yak does smile . decl\tthe yak does smile .\n",
            "question.dev": "the yak does smile . quest\tdoes the yak smile ?\n",
            "question.gen": "the yak does smile . decl\n"}, "question.gen:1"),
    ("dyck", {"k-20_d-10_train.txt": "(a a) (b b) END\n", "k-20_d-10_val.txt": "(a (b b) a) END\n",
              "k-20_d-10_test.txt": "(a (b b) a) END\n(a b) END\n"}, "k-20_d-10_test.txt:2"),
])
def test_malformed_imported_file(tmp_path, task, files, bad):
    source = tmp_path / "src"
    source.mkdir()
    for name, text in files.items():
        (source / name).write_text(text)
    check_one_line_error(grok(tmp_path, f"task={task}", "data.source=src"), bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
