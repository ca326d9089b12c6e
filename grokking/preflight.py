"""Checks of a training run that need more than its config, made before its run directory is created, so that a
run that cannot start leaves nothing behind: its data (a data.source directory with a missing or empty file, a
model.max_len shorter than the longest sequence, a batch larger than the training set) and its memory (a model
that cannot fit: grokking.memory).

`grok train` runs them for a single run before it creates the run directory, and `train()` again for every job
(a sweep's jobs, a SLURM task): the dataset is loaded once per process (grokking.data.load_task_data reuses it), so
the second call and the training that follows read no file again.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from grokking.errors import ConfigError, DataError
from grokking.memory import check_fits
from grokking.rundir import RunDir


def preflight(cfg: DictConfig, device: torch.device, members: int = 1) -> None:
    """ConfigError / DataError (one line) if the run `cfg` (a seed pack of `members`) cannot start on `device`."""
    from grokking.data import load_task_data

    check_fits(cfg, device, members)  # the weights alone, before generating a dataset for a model that cannot fit
    data = load_task_data(cfg)
    check_data(cfg, data)
    longest = max(len(e.tokens) for split in (data.train, data.val, data.gen) for e in split) + 1  # <sos>/<eos>
    check_fits(cfg, device, members, data.vocab.size, longest)


def check_data(cfg: DictConfig, data) -> None:
    """Refuse data that cannot be trained on faithfully: an empty split (e.g. an empty file under data.source
    would log made-up zero metrics), a training set smaller than a batch, sequences longer than model.max_len."""
    empty = [name for name in ("train", "val", "gen") if not getattr(data, name)]
    if empty:
        where = f"data.source={cfg.data.source}" if cfg.data.source else str(data.directory)
        raise DataError(f"empty {'/'.join(empty)} split in {where}")
    if cfg.train.batch_size > len(data.train):
        raise ConfigError(f"train.batch_size ({cfg.train.batch_size}) is larger than the training set "
                          f"({len(data.train)})")
    longest = max(len(e.tokens) for split in (data.train, data.val, data.gen) for e in split) + 1  # + <sos>/<eos>
    if longest > cfg.model.max_len:
        raise ConfigError(f"model.max_len ({cfg.model.max_len}) is shorter than the longest sequence of the data "
                          f"({longest} tokens with <sos>/<eos>)")


def needs_training(cfg: DictConfig) -> bool:
    """False for a run that `train()` will skip as finished (done at its planned steps, no force/resume=never):
    re-launching a finished sweep neither loads nor generates data."""
    if cfg.force or cfg.resume == "never":
        return True
    status = RunDir(cfg.run_dir).status()
    return not (status and status["status"] == "done" and status["step"] >= cfg.train.steps)
