"""Model-internal probes (docs/metrics.md): weight norms, attention entropy and tree projections.

`Prober(cfg, data, run_dir, device)(model, step)` returns every `probe/*` metric of one model (`grok probe`);
`Prober.probe(members, model_of, step)` those of every member of a seed pack, the forward passes batched over
members (the training loop; a single run is a pack of one). Tree-projection keys are None when `cfg.probes.tree_projection` is off, and parseval keys are None
for a task without gold trees (`Task.has_gold_trees`; Dyck).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from grokking.pack import ScoredModels
from grokking.probes.entropy import attention_entropy, released_attention_sparsity
from grokking.probes.norms import weight_norms
from grokking.probes.parseval import bracket_f1, nltk_mask, tree_mask
from grokking.probes.sample import SAMPLE_FILE, load_or_create_sample
from grokking.probes.sci import sci_charts
from grokking.probes.trees import Projections, right_branching
from grokking.tasks import get_task

__all__ = ["Prober", "weight_norms"]

TREE_KEYS = ("probe/tscore", "probe/tscore_exact", "probe/tparseval", "probe/tparseval_right_branching")


class Prober:
    """Probes on a fixed, seeded sample of training inputs (built once per run, reused across resumes)."""

    def __init__(self, cfg, data, run_dir: Path, device: torch.device):
        probes = cfg.probes
        self.n_layers = int(cfg.depth)
        self.batch_size = int(probes.batch_size)
        self.sample_seed = int(probes.sample_seed)
        self.tree_projection = bool(probes.tree_projection)
        self.device = torch.device(device)
        self.sentences = load_or_create_sample(Path(run_dir) / SAMPLE_FILE, data.name, data.train,
                                               int(probes.sample_size), self.sample_seed,
                                               max_words=int(cfg.model.max_len) - 1)
        self.sos, self.pad = data.vocab.sos, data.vocab.pad
        self.word_ids = [data.vocab.encode(words) for words in self.sentences]
        self.gold = None
        self.right_branching_f1 = None
        task = get_task(data.name)
        if task.has_gold_trees:
            self.gold = [nltk_mask(task.gold_tree(words)) for words in self.sentences]
            branching = [tree_mask(right_branching(len(words)), len(words)) for words in self.sentences]
            self.right_branching_f1 = bracket_f1(branching, self.gold)

    def __call__(self, model, step: int) -> dict[str, float | None]:
        """Every probe of one model at `step`."""
        was_training = model.training
        model.eval()
        try:
            return self.probe(ScoredModels.of(model), lambda k: model, step)[0]
        finally:
            model.train(was_training)

    def shares_sample_with(self, other: Prober) -> bool:
        """Whether `other` probes the same sentences (a pack's members do: the sample depends on the probe seed
        and the data, not on the training seed), so one batched call serves both."""
        return self.sentences == other.sentences

    @torch.no_grad()
    def probe(self, members: ScoredModels, model_of: Callable[[int], nn.Module], step: int) -> list[dict[str, float | None]]:
        """Every probe of every member (already in eval mode), the forward passes batched over members;
        `model_of(k)` gives member k as a model, for its weight norms."""
        sequences = [[self.sos, *ids] for ids in self.word_ids]
        metrics: list[dict[str, float | None]] = [dict(weight_norms(model_of(k), self.n_layers))
                                                  for k in range(members.size)]
        released = released_attention_sparsity(members, sequences, self.pad, self.batch_size, self.device)
        entropies = attention_entropy(members, sequences, self.pad, self.batch_size, self.device)
        trees = (self.tree_metrics(members, step) if self.tree_projection
                 else [dict.fromkeys(TREE_KEYS) for _ in range(members.size)])
        for member, entropy, sparsity, tree in zip(metrics, entropies, released, trees, strict=True):
            member.update(entropy)
            member["probe/attn_sparsity_sg"] = sparsity
            member.update(tree)
        return metrics

    def tree_metrics(self, members: ScoredModels, step: int) -> list[dict[str, float | None]]:
        if not self.word_ids:
            return [dict.fromkeys(TREE_KEYS) for _ in range(members.size)]
        out = []
        for charts in sci_charts(members, self.word_ids, self.sos, self.pad, self.batch_size, self.device):
            projections = Projections(charts)
            tscore, tscore_exact = projections.tscores(np.random.default_rng([self.sample_seed, step]))
            metrics = {"probe/tscore": tscore, "probe/tscore_exact": tscore_exact, "probe/tparseval": None,
                       "probe/tparseval_right_branching": self.right_branching_f1}
            if self.gold is not None:
                metrics["probe/tparseval"] = bracket_f1(projections.node_masks(), self.gold)
            out.append(metrics)
        return out
