"""Learning-dynamics diagnostics (docs/diagnostics.md): per-position surprisal curves on fixed probe sets, candidate
logits at critical positions, and parameter-distribution statistics, recorded on a log + linear schedule during
training; analysed afterwards by `grok analyze` (grokking.diagnostics.analyze).

The training loop drives `Diagnostics`:

    diag = Diagnostics(cfg, data, run_dir, device)   # builds (or checks) the probe sets
    diag.truncate_after(-1); diag.record(model, 0, 0.0)   # fresh run
    diag.truncate_after(step)                        # resume: evaluations after `step` are redone
    if diag.due(step): diag.record(model, step, lr)  # after each optimizer step
    diag.finalize()                                  # run complete: consolidate the chunks
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from grokking.data import TaskData
from grokking.diagnostics.params import HistogramEdges, ParamStats, stat_names
from grokking.diagnostics.probesets import DiagnosticsError, ProbeSet
from grokking.diagnostics.schedule import Schedule
from grokking.diagnostics.store import Store
from grokking.diagnostics.surprisal import score_split

__all__ = ["DIAGNOSTICS_DIR", "Diagnostics", "DiagnosticsError"]

DIAGNOSTICS_DIR = "diagnostics"
EDGES_FILE = "param_edges.npz"
log = logging.getLogger("grokking.diagnostics")


class Diagnostics:
    """Records one run's diagnostics under `<run_dir>/diagnostics/` (layout: grokking.diagnostics.store)."""

    def __init__(self, cfg, data: TaskData, run_dir: Path, device: torch.device):
        dcfg = cfg.diagnostics
        self.cfg, self.data, self.device = cfg, data, torch.device(device)
        self.store = Store(Path(run_dir) / DIAGNOSTICS_DIR)
        self.schedule = Schedule(int(cfg.train.steps), int(dcfg.log_start), float(dcfg.log_ratio),
                                 int(dcfg.linear_every))
        self.probes = ProbeSet(cfg, data)
        self.probes.save(self.store.dir)
        self._write_meta()
        self.param_stats: ParamStats | None = None
        self.n_evals = len(self.store.evals())

    def _write_meta(self) -> None:
        dcfg = self.cfg.diagnostics
        meta = {"probe_hash": self.probes.hash, "task": self.data.name, "vocab_size": self.data.vocab.size,
                "n_positions": {n: s.n_positions for n, s in self.probes.splits.items()},
                "n_sentences": {n: len(s.examples) for n, s in self.probes.splits.items()},
                "n_critical": {n: len(s.critical_rows) for n, s in self.probes.splits.items()},
                "dyck_min_dep": int(self.cfg.task.dyck_min_dep), "seed": int(dcfg.seed),
                "schedule": {"total_steps": int(self.cfg.train.steps), "log_start": int(dcfg.log_start),
                             "log_ratio": float(dcfg.log_ratio), "linear_every": int(dcfg.linear_every)},
                "hist_bins": int(dcfg.hist_bins), "hist_range_sigma": float(dcfg.hist_range_sigma)}
        path = self.store.dir / "meta.json"
        path.write_text(json.dumps(meta, indent=1))

    def due(self, step: int) -> bool:
        return self.schedule.due(step)

    def _stats_for(self, model) -> ParamStats:
        if self.param_stats is None:
            path = self.store.dir / EDGES_FILE
            if path.exists():
                edges = HistogramEdges.load(path)
            else:
                dcfg = self.cfg.diagnostics
                edges = HistogramEdges.from_model(model, int(dcfg.hist_bins), float(dcfg.hist_range_sigma))
                edges.save(path)
            self.param_stats = ParamStats(edges, int(self.cfg.diagnostics.seed))
        return self.param_stats

    def record(self, model, step: int, lr: float) -> None:
        """Score every probe split and the parameters at `step`; a step already recorded is skipped."""
        steps = self.store.steps()
        if len(steps) and step <= int(steps[-1]):
            return
        start = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            chunks = {}
            for name, split in self.probes.splits.items():
                scores = score_split(model, split, self.data.vocab, int(self.cfg.diagnostics.batch_size),
                                     self.device)
                chunks[f"surprisal/{name}"] = scores.surprisal
                chunks[f"critical_logits/{name}"] = scores.critical_logits
            stats = self._stats_for(model)
            rows, hist, weight_norm = stats(model)
        finally:
            model.train(was_training)
        chunks["param_hist"] = hist
        edges, names = stats.edges, stat_names()
        header = ["eval_idx", "step", "tensor", "group", "layer", *names]
        param_rows = [{"eval_idx": self.n_evals, "step": step, "tensor": edges.names[i], "group": edges.groups[i],
                       "layer": edges.layers[i], **{k: f"{v:.8g}" for k, v in zip(names, row, strict=True)}}
                      for i, row in enumerate(rows)]
        index_row = {"eval_idx": self.n_evals, "step": step, "lr": f"{lr:.8g}", "wall_time": f"{time.time():.3f}",
                     "record_s": f"{time.perf_counter() - start:.4f}", "weight_norm": f"{weight_norm:.8g}"}
        self.store.write_eval(self.n_evals, chunks, param_rows, header, index_row)
        self.n_evals += 1

    def truncate_after(self, step: int) -> None:
        """Drop every evaluation recorded after `step` (a resumed run redoes them); -1 drops all."""
        self.n_evals = self.store.truncate(step)
        if self.n_evals == 0:
            self.param_stats = None
        log.info("diagnostics: %d evaluations kept up to step %d", self.n_evals, step)

    def finalize(self) -> None:
        """Consolidate the per-evaluation chunks into one array per series (idempotent)."""
        self.store.consolidate()
