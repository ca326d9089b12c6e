"""Materialise, verify and load a task's splits: the on-disk cache, and importing original files.

A generated dataset lives in `<data.dir>/<task>/<hash12>/` (hash of the generation config, the seed and
GENERATOR_VERSION) as train.txt, val.txt, gen.txt in the original line formats plus manifest.json (config, line
counts, sha256 per file), written last. It is built in a temporary sibling directory and renamed into place, so a
crash leaves no half-written cache; a cache whose manifest or checksums do not verify is reported and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from grokking import tasks  # a module, not its names: the task modules import grokking.data
from grokking.data.examples import Example, TaskData
from grokking.data.formats import SPLITS, read_original, write_lines
from grokking.data.generate import GENERATOR_VERSION, generate, generation_config
from grokking.data.vocab import Vocab
from grokking.errors import DataError

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


class InvalidCache(Exception):
    """A cache directory that must not be used (the message says why)."""


def cache_config(cfg) -> dict[str, Any]:
    return {**generation_config(cfg.task), "seed": cfg.data.seed, "generator_version": GENERATOR_VERSION}


def cache_key(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _split_file(directory: Path, split: str) -> Path:
    return directory / f"{split}.txt"


def read_cache(directory: Path, config: dict[str, Any]) -> dict[str, list[Example]]:
    """The verified splits of a cache directory; InvalidCache if anything is missing, partial or corrupt."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise InvalidCache("no manifest.json") from None
    except (OSError, ValueError) as exc:
        raise InvalidCache(f"unreadable manifest.json ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("config") != config:
        raise InvalidCache("manifest.json does not match the configuration")
    from_line, out = tasks.get_task(config["task"]).from_line, {}
    for split in SPLITS:
        path = _split_file(directory, split)
        entry = manifest.get("files", {}).get(path.name, {})
        try:
            data = path.read_bytes()
        except OSError:
            raise InvalidCache(f"missing {path.name}") from None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise InvalidCache(f"checksum mismatch in {path.name}")
        lines = data.decode("utf-8").splitlines()
        if len(lines) != entry.get("lines"):
            raise InvalidCache(f"wrong line count in {path.name}")
        try:
            out[split] = [from_line(line, check=False) for line in lines]
        except ValueError as exc:
            raise InvalidCache(f"malformed line in {path.name} ({exc})") from None
    return out


def write_cache(directory: Path, config: dict[str, Any], splits: dict[str, list[Example]]) -> None:
    """Write the splits into a temporary sibling and rename it to `directory` (keeping a valid one that appeared)."""
    parent = directory.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=parent))
        tmp.chmod(0o755)
    except OSError as exc:
        raise DataError(f"cannot write data directory {parent}: {exc.strerror or exc}") from None
    try:
        files = {}
        for split in SPLITS:
            path = _split_file(tmp, split)
            write_lines(path, config["task"], splits[split])
            files[path.name] = {"lines": len(splits[split]), "sha256": _sha256(path)}
        manifest = {"config": config, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _install(tmp, directory, config)
    except OSError as exc:
        raise DataError(f"cannot write data directory {parent}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, directory: Path, config: dict[str, Any]) -> None:
    """Rename `tmp` to `directory`; move an invalid existing one aside first; keep a valid one from another writer."""
    for _ in range(3):
        try:
            os.replace(tmp, directory)
            return
        except OSError:
            if not directory.exists():
                raise
        try:
            read_cache(directory, config)
            return  # another run finished the same cache meanwhile
        except InvalidCache:
            trash = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
            try:
                os.replace(directory, trash / "old")
            except FileNotFoundError:
                pass
            shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp, directory)


def load_generated(cfg) -> TaskData:
    config = cache_config(cfg)
    directory = Path(cfg.data.dir) / cfg.task.name / cache_key(config)
    try:
        found = read_cache(directory, config)
    except InvalidCache as reason:
        if directory.exists():
            log.warning("data cache %s is invalid (%s); rebuilding it", directory, reason)
        train, val, gen = generate(generation_config(cfg.task), cfg.data.seed)
        found = {"train": train, "val": val, "gen": gen}
        write_cache(directory, config, found)
    return _task_data(cfg.task.name, found, directory, config)


def load_source(cfg) -> TaskData:
    source = Path(cfg.data.source)
    if not source.is_dir():
        raise DataError(f"data.source {source} is not a directory")
    task = tasks.get_task(cfg.task.name)
    params = task.file_params(cfg.task)
    names = task.original_names(params)
    found = {}
    for split in SPLITS:
        path = next((source / n for n in names[split] if (source / n).is_file()), None)
        if path is None:
            raise DataError(f"missing data file {source / names[split][0]} (data.source)")
        found[split] = read_original(path, cfg.task.name)
    return _task_data(cfg.task.name, found, source, params)


def _task_data(name: str, found: dict[str, list[Example]], directory: Path, params: dict[str, Any]) -> TaskData:
    vocab = Vocab.from_examples(found["train"], found["val"], found["gen"])
    return TaskData(name, found["train"], found["val"], found["gen"], vocab, directory, dict(params))


_last: tuple[tuple, TaskData] | None = None  # the last dataset loaded, with its files' signature


def files_signature(cfg) -> tuple | None:
    """What identifies the files `load_task_data(cfg)` reads: their resolved paths, sizes, mtimes and inodes, with
    the config that selects them; None while one of them is missing (nothing to reuse)."""
    if cfg.data.source:
        source = Path(cfg.data.source)
        task = tasks.get_task(cfg.task.name)
        names = task.original_names(task.file_params(cfg.task))
        files = [next((source / n for n in names[split] if (source / n).is_file()), None) for split in SPLITS]
        key: tuple = ("source", str(source), cfg.task.name, cfg.task.dyck_k, cfg.task.dyck_m)
    else:
        config = cache_config(cfg)
        directory = Path(cfg.data.dir) / cfg.task.name / cache_key(config)
        files = [directory / MANIFEST, *(_split_file(directory, split) for split in SPLITS)]
        key = ("generated", str(cfg.data.dir), json.dumps(config, sort_keys=True))
    stats = []
    for path in files:
        try:
            resolved = path.resolve(strict=True)
            info = resolved.stat()
        except (OSError, AttributeError):
            return None
        stats.append((str(resolved), info.st_size, info.st_mtime_ns, info.st_ino))
    return (*key, tuple(stats))


def load_task_data(cfg) -> TaskData:
    """The task's splits: imported from `cfg.data.source`, or generated (and cached) under `cfg.data.dir`.
    A second call for the same, unchanged files returns the same TaskData (read-only by convention): `grok train`
    loads the data to check it before it creates a run directory, and training then uses it without reading the
    files again."""
    global _last
    tasks.get_task(cfg.task.name)  # an unknown task: one line naming the known ones
    signature = files_signature(cfg)
    if signature is not None and _last is not None and _last[0] == signature:
        return _last[1]
    data = load_source(cfg) if cfg.data.source else load_generated(cfg)
    signature = files_signature(cfg)  # a generated cache exists now
    _last = (signature, data) if signature is not None else None
    return data
