"""Per-position surprisal (bits) and candidate logits at critical positions, from one no-grad forward pass per
batch of probe sentences (docs/diagnostics.md).

s(w_t) = −log2 p(w_t | [SOS] w_<t), computed in float32 from the log-softmax over the full output vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from grokking.data import Vocab
from grokking.diagnostics.probesets import SplitProbe
from grokking.evaluate import chunks, lm_batch

LN2 = math.log(2.0)


@dataclass
class SplitScores:
    surprisal: np.ndarray  # [n_positions] float32 bits, in positions.csv order
    critical_logits: np.ndarray  # [n_critical, n_candidates] float32; NaN for candidates outside the vocabulary


@torch.no_grad()
def score_split(model, split: SplitProbe, vocab: Vocab, batch_size: int, device: torch.device) -> SplitScores:
    """Surprisal of every target of every probe sentence, and the logits of the critical positions' candidates.

    The caller puts the model in eval mode."""
    pieces, logit_rows = [], []
    for batch in chunks(split.examples, batch_size):
        inputs, targets = lm_batch(batch, vocab, device)
        logits = model(inputs).float()
        logp = torch.log_softmax(logits, dim=-1)
        real = targets != -100
        gathered = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        pieces.append((-gathered[real] / LN2).cpu())  # row-major: sentence by sentence, t ascending
        logit_rows.append(logits[real].cpu())
    surprisal = torch.cat(pieces).numpy() if pieces else np.zeros(0, dtype=np.float32)
    critical = np.zeros(split.candidates.shape, dtype=np.float32)
    if len(split.critical_rows):
        rows = torch.cat(logit_rows)[torch.from_numpy(split.critical_rows)]
        ids = torch.from_numpy(split.candidates)
        critical = rows.gather(1, ids.clamp(min=0)).numpy()
        critical[split.candidates < 0] = np.nan
    return SplitScores(surprisal, critical)
