"""A run's randomness as a function of its seed: the training batches (`BatchOrder`, by seed and step) and the
global RNGs (`seed_everything`, which also decides the model's initialisation)."""

from __future__ import annotations

import math
import random

import numpy as np
import torch


class BatchOrder:
    """Training batches as a pure function of (seed, step): epoch e shuffles with default_rng([seed, e])."""

    def __init__(self, encoded: list[list[int]], vocab, batch_size: int, seed: int):
        lengths = np.array([len(row) + 1 for row in encoded])
        self.inputs = np.full((len(encoded), lengths.max()), vocab.pad, dtype=np.int64)
        self.targets = np.full((len(encoded), lengths.max()), -100, dtype=np.int64)
        for i, row in enumerate(encoded):
            self.inputs[i, : len(row) + 1] = [vocab.sos, *row]
            self.targets[i, : len(row) + 1] = [*row, vocab.eos]
        self.lengths = lengths
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = math.ceil(len(encoded) / batch_size)
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def epoch_of(self, step: int) -> int:
        return step // self.per_epoch

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.lengths))
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        width = int(self.lengths[rows].max())
        return torch.from_numpy(self.inputs[rows, :width]), torch.from_numpy(self.targets[rows, :width])


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = not deterministic
