"""The cache (manifest, checksums, atomic install, rebuild), importing original files, export and Vocab."""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from grokking.data import Vocab, export_original, load_task_data, read_original, store
from grokking.errors import DataError
from grokking.tasks import get_task


def make_cfg(root: Path, name: str = "qf", seed: int = 1234, source=None, n_train: int = 300):
    task = SimpleNamespace(name=name, n_train=n_train, n_val=40, n_gen=40, dyck_k=20, dyck_m=10, dyck_min_len=4)
    return SimpleNamespace(task=task, data=SimpleNamespace(dir=str(root), seed=seed, source=source))


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("name", ["qf", "ti", "dyck"])
def test_cache_layout_and_reuse(tmp_path, monkeypatch, name):
    data = load_task_data(make_cfg(tmp_path, name))
    assert data.directory.parent == tmp_path / name and len(data.directory.name) == 12
    assert sorted(p.name for p in data.directory.iterdir()) == ["gen.txt", "manifest.json", "train.txt", "val.txt"]
    manifest = json.loads((data.directory / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 1234 and manifest["files"]["train.txt"]["lines"] == 300
    assert [p.name for p in tmp_path.joinpath(name).iterdir()] == [data.directory.name]  # no temp dirs left
    monkeypatch.setattr(store, "generate", lambda *a: pytest.fail("the valid cache was not reused"))
    monkeypatch.setattr(store, "_last", None)  # read the cache from disk, not the dataset this process holds
    again = load_task_data(make_cfg(tmp_path, name))
    assert again is not data
    assert (again.train, again.val, again.gen, again.vocab) == (data.train, data.val, data.gen, data.vocab)


def test_a_second_load_of_unchanged_files_is_the_same_dataset(tmp_path, monkeypatch):
    """grok train loads the data before it creates the run directory and again to train: read once."""
    data = load_task_data(make_cfg(tmp_path))
    monkeypatch.setattr(store, "read_cache", lambda *a: pytest.fail("the files were read again"))
    assert load_task_data(make_cfg(tmp_path)) is data
    monkeypatch.undo()
    export_original(data, tmp_path / "orig")
    source = make_cfg(tmp_path, source=str(tmp_path / "orig"))
    imported = load_task_data(source)
    assert load_task_data(source) is imported and imported is not data
    dev = tmp_path / "orig" / "question.dev"
    dev.write_text("".join(dev.read_text().splitlines(keepends=True)[:-1]))  # a changed file is read again
    assert len(load_task_data(source).val) == len(imported.val) - 1


def test_same_seed_gives_byte_identical_files_other_seed_differs(tmp_path):
    first = load_task_data(make_cfg(tmp_path / "a"))
    second = load_task_data(make_cfg(tmp_path / "b"))
    other = load_task_data(make_cfg(tmp_path / "c", seed=99))
    assert files_of(first.directory) == files_of(second.directory)
    assert other.directory.name != first.directory.name
    assert files_of(other.directory)["train.txt"] != files_of(first.directory)["train.txt"]


@pytest.mark.parametrize("damage", ["edit", "truncate", "no-manifest", "no-file", "bad-manifest"])
def test_damaged_cache_is_reported_and_rebuilt(tmp_path, caplog, damage):
    good = load_task_data(make_cfg(tmp_path))
    expected = files_of(good.directory)
    train, manifest = good.directory / "train.txt", good.directory / "manifest.json"
    if damage == "edit":
        train.write_text(train.read_text().replace("the", "a", 1))
    elif damage == "truncate":
        train.write_bytes(train.read_bytes()[:100])
    elif damage == "no-manifest":
        manifest.unlink()
    elif damage == "no-file":
        train.unlink()
    else:
        manifest.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        rebuilt = load_task_data(make_cfg(tmp_path))
    assert "rebuilding" in caplog.text
    assert files_of(rebuilt.directory) == expected and rebuilt.train == good.train


def test_crash_while_writing_leaves_nothing(tmp_path, monkeypatch):
    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_lines", crash)
    with pytest.raises(DataError, match="cannot write data directory"):
        load_task_data(make_cfg(tmp_path))
    assert list((tmp_path / "qf").iterdir()) == []


def test_unwritable_data_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DataError, match="cannot write data directory"):
        load_task_data(make_cfg(blocker / "data"))
    assert blocker.read_text() == "not a directory"


def _load_directory(root: str) -> str:
    return str(load_task_data(make_cfg(Path(root), n_train=20_000)).directory)


def test_concurrent_writers_leave_one_valid_cache(tmp_path):
    with ProcessPoolExecutor(2) as pool:
        directories = list(pool.map(_load_directory, [str(tmp_path)] * 2))
    assert directories[0] == directories[1]
    assert [p.name for p in (tmp_path / "qf").iterdir()] == [Path(directories[0]).name]
    config = store.cache_config(make_cfg(tmp_path, n_train=20_000))
    store.read_cache(Path(directories[0]), config)  # verifies


def test_writer_keeps_a_valid_cache_that_appeared_meanwhile(tmp_path):
    data = load_task_data(make_cfg(tmp_path))
    config = store.cache_config(make_cfg(tmp_path))
    before = os.stat(data.directory / "manifest.json").st_mtime_ns
    store.write_cache(data.directory, config, {"train": data.train, "val": data.val, "gen": data.gen})
    assert os.stat(data.directory / "manifest.json").st_mtime_ns == before
    assert [p.name for p in (tmp_path / "qf").iterdir()] == [data.directory.name]


@pytest.mark.parametrize("name", ["qf", "ti", "dyck"])
def test_export_then_import_round_trip(tmp_path, name):
    data = load_task_data(make_cfg(tmp_path / "cache", name))
    written = export_original(data, tmp_path / "export")
    expected = {"qf": ["question.train", "question.dev", "question.gen"],
                "ti": ["tense.train", "tense.dev", "tense.gen"],
                "dyck": ["k-20_d-10_train.txt", "k-20_d-10_val.txt", "k-20_d-10_test.txt"]}[name]
    assert [p.name for p in written] == expected
    imported = load_task_data(make_cfg(tmp_path / "unused", name, source=str(tmp_path / "export")))
    assert (imported.train, imported.val, imported.gen, imported.vocab) == (data.train, data.val, data.gen,
                                                                             data.vocab)
    assert imported.directory == tmp_path / "export" and not (tmp_path / "unused").exists()
    for path, split in zip(written, ("train", "val", "gen"), strict=True):
        assert path.read_bytes() == (data.directory / f"{split}.txt").read_bytes()


def test_import_accepts_sg_names_and_reports_problems(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "question.train").write_text("the yak does smile . decl\tthe yak does smile .\n")
    (source / "question.val").write_text("the yak does smile . quest\tdoes the yak smile ?\n")
    with pytest.raises(DataError, match="missing data file .*question.gen"):
        load_task_data(make_cfg(tmp_path, source=str(source)))
    (source / "question.test").write_text("the yak does smile . quest\tdoes the yak smile ?\n"
                                          "the yak does smile . quest does the yak smile ?\n")
    with pytest.raises(DataError, match=r"question.test:2: malformed line"):
        load_task_data(make_cfg(tmp_path, source=str(source)))
    (source / "question.test").write_text("the yak does smile . quest\tdoes the yak smile ?\n")
    data = load_task_data(make_cfg(tmp_path, source=str(source)))
    assert data.vocab.tokens == ["<pad>", ".", "?", "decl", "does", "quest", "smile", "the", "yak"]


@pytest.mark.parametrize("line", ["(a a) (b b", "(a b) END", "(a a) a) END", "", "(a (b b) a) END END"])
def test_malformed_dyck_lines(tmp_path, line):
    path = tmp_path / "k-20_d-10_val.txt"
    path.write_text("(a a) (b b) END\n" + line + "\n")
    with pytest.raises(DataError, match=f"{path}:2: malformed line"):
        read_original(path, "dyck")


@pytest.mark.parametrize("name,task", [("question.dev", "qf"), ("tense.dev", "ti"), ("dyck-k20-d10.val", "dyck")])
def test_reference_files_round_trip_byte_for_byte(reference_data, name, task):
    text = (reference_data / name).read_text()
    examples = read_original(reference_data / name, task)
    assert "".join(get_task(task).to_line(e) + "\n" for e in examples) == text


def test_vocab_ids():
    vocab = Vocab(["<pad>", "a)", "(a"])
    assert (vocab.pad, vocab.eos, vocab.sos, vocab.size) == (0, 3, 4, 5)
    assert vocab.encode(["(a", "a)"]) == [2, 1] and vocab.decode([2, 1, 3, 4]) == ["(a", "a)", "<eos>", "<sos>"]
    with pytest.raises(DataError, match="not in the vocabulary"):
        vocab.id("(b")


@pytest.mark.slow  # generates the paper-sized training sets
def test_vocab_sizes_at_paper_scale_match_sg(tmp_path):
    sizes = {name: load_task_data(make_cfg(tmp_path, name, n_train=100_000)).vocab.size for name in ("qf", "ti")}
    assert sizes == {"qf": 71, "ti": 101}  # SG: 69 and 99 tokens incl. <pad>, plus EOS and SOS
