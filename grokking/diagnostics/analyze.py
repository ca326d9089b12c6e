"""`grok analyze`: learning-dynamics metrics of one run, and cross-run variability across seeds.

One run (`analyze_run`), written under <run_dir>/diagnostics/:
    analysis/token_metrics.csv   per position: final surprisal and within-run variability (mean and sd, ddof 0,
                                 over the evaluations in the last 25% of steps), sigmoid and smoothed-curve AoA
                                 (log10 step) with never-acquired flags, forgettability (bits), surprisal at early
                                 stopping and at the grokking step, and for critical positions aoa_linear / aoa_hier:
                                 the first evaluation step (> 0) at which the linear-rule / hierarchical-rule answer
                                 has the largest logit among the candidates
    analysis/type_metrics.csv    the same curve metrics for each (split, target type) mean curve
    analysis/token_fitting.csv   token-level fitting at early stopping (grokking.diagnostics.fitting; reconstructed)
    analysis/fitting_summary.csv over/fit/under counts by POS, frequency decade and structural involvement
    analysis/bifurcation.csv     per tensor: t_bif, final BC, dip and p (grokking.diagnostics.bifurcation)
    analysis/bifurcation.npz     steps, tensor names, dip and p-value per evaluation x tensor
    events.json                  grokking events (grokking.diagnostics.events; docs/diagnostics.md) and t_bif per tensor and group

Seeds (`analyze_seeds`): cross-run variability C_i = mean over run pairs of the mean over common evaluation steps of
the squared difference of their smoothed curves (bits²), per position and per type, into <out>/cross_run.csv and
<out>/cross_run_types.csv, plus every run's events in <out>/seeds.json. Runs must share the probe hash.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from grokking.diagnostics import DIAGNOSTICS_DIR
from grokking.diagnostics.bifurcation import bifurcation_table
from grokking.diagnostics.curves import forgettability, gam_aoa, sigmoid_aoa, smooth
from grokking.diagnostics.events import metric_events, read_records
from grokking.diagnostics.fitting import classify, fit_split, summarise, type_curves
from grokking.diagnostics.probesets import SPLITS, DiagnosticsError, corrupt, read_critical, read_positions
from grokking.diagnostics.store import Store, read_csv

ANALYSIS_DIR = "analysis"
FINAL_FRACTION = 0.25  # the "end of training" window: the last 25% of steps
MIN_CURVE_POINTS = 4  # evaluations with step > 0 needed to fit a curve


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)


def _cell(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def index_at(steps: np.ndarray, step: int | None) -> int | None:
    """The last evaluation at or before `step`."""
    if step is None:
        return None
    i = int(np.searchsorted(steps, step, side="right")) - 1
    return i if i >= 0 else None


def curve_metrics(steps: np.ndarray, curves: np.ndarray, chance: float) -> dict[str, np.ndarray]:
    """Chang et al.'s per-curve metrics (grokking.diagnostics.curves) of curves [N, E] (bits) over steps [E]."""
    n = len(curves)
    window = steps >= (1 - FINAL_FRACTION) * steps[-1]
    out = {"final_surprisal": curves[:, window].mean(1), "variability": curves[:, window].std(1)}
    positive = steps > 0
    if positive.sum() < MIN_CURVE_POINTS:
        nan = np.full(n, math.nan)
        return out | {"aoa_sigmoid": nan, "never_sigmoid": nan, "aoa_gam": nan, "never_gam": nan,
                      "forgettability": nan}
    x, y = np.log10(steps[positive]), curves[:, positive]
    sig = sigmoid_aoa(x, y, chance)
    fit = smooth(x, y)
    gam = gam_aoa(fit, chance)
    return out | {"aoa_sigmoid": sig.x, "never_sigmoid": sig.never, "aoa_gam": gam.x, "never_gam": gam.never,
                  "forgettability": forgettability(fit, x)}


def rule_aoa(steps: np.ndarray, logits: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """First step (> 0) at which candidate `choice[i]` has the largest logit at critical position i (NaN: never)."""
    out = np.full(logits.shape[1], math.nan)
    if logits.shape[1] == 0:
        return out
    winner = np.nanargmax(np.where(np.isnan(logits), -np.inf, logits), axis=2)  # [E, n_critical]
    wins = (winner == choice[None, :]) & (choice[None, :] >= 0) & (steps[:, None] > 0)
    first = np.argmax(wins, axis=0)
    hit = wins.any(axis=0)
    out[hit] = steps[first[hit]]
    return out


def load_split(store: Store, split: str) -> np.ndarray:
    array = store.load(f"surprisal/{split}")
    if array is None:
        raise DiagnosticsError(f"{store.dir} holds no surprisal evaluations")
    return array.astype(np.float32)


def analyze_positions(store: Store, positions: dict[str, np.ndarray], steps: np.ndarray, chance: float,
                      events: dict[str, Any]) -> tuple[list[dict], list[dict], dict[str, np.ndarray]]:
    """(position rows, type rows, surprisal per split)."""
    critical = read_critical(store.dir)
    es, grok = index_at(steps, events["early_stop"]), index_at(steps, events["grok_step"])
    position_rows, type_rows, surprisal = [], [], {}
    meta_columns = ("pos_id", "split", "sentence", "t", "target", "segment", "pos", "role", "train_freq")
    for split in SPLITS:
        mask = positions["split"] == split
        s = surprisal[split] = load_split(store, split)
        metrics = curve_metrics(steps, s, chance)
        metrics["s_at_es"] = s[:, es] if es is not None else np.full(len(s), math.nan)
        metrics["s_at_grok"] = s[:, grok] if grok is not None else np.full(len(s), math.nan)
        for rule in ("linear", "hier"):
            metrics[f"aoa_{rule}"] = np.full(len(s), math.nan)
        logits = store.load(f"critical_logits/{split}")
        info = critical[split]
        if logits is not None and len(info["rows"]):
            logits = logits.astype(np.float32)
            metrics["aoa_linear"][info["rows"]] = rule_aoa(steps, logits, info["linear"])
            metrics["aoa_hier"][info["rows"]] = rule_aoa(steps, logits, info["hierarchical"])
        columns = {c: positions[c][mask] for c in meta_columns}
        position_rows += [dict(zip(list(columns) + list(metrics), values, strict=True))
                          for values in zip(*columns.values(), *metrics.values(), strict=True)]
        targets = positions["target"][mask]
        types = type_curves(s, targets)
        names = list(types)
        type_metric = curve_metrics(steps, np.stack([types[v] for v in names]), chance) if names else {}
        for i, v in enumerate(names):
            at = targets == v
            type_rows.append({"split": split, "target": v, "pos": positions["pos"][mask][at][0], "n": int(at.sum()),
                              "train_freq": int(positions["train_freq"][mask][at][0]),
                              **{k: values[i] for k, values in type_metric.items()}})
    return position_rows, type_rows, surprisal


def analyze_fitting(positions: dict[str, np.ndarray], surprisal: dict[str, np.ndarray], steps: np.ndarray,
                    early_stop: int | None) -> list[dict]:
    es = index_at(steps, early_stop)
    if es is None:
        return []
    train_mask = positions["split"] == "train"
    train_curves = type_curves(surprisal["train"], positions["target"][train_mask])
    rows = []
    for split in ("val", "gen"):
        mask = positions["split"] == split
        targets, roles = positions["target"][mask], positions["role"][mask]
        meta = {v: {"pos": positions["pos"][mask][targets == v][0],
                    "train_freq": int(positions["train_freq"][mask][targets == v][0]),
                    "structural": bool((roles[targets == v] != "other").any())} for v in np.unique(targets)}
        split_rows = fit_split(surprisal[split], targets, train_curves, steps, es, meta)
        classify(split_rows)
        rows += [{"split": split, **r} for r in split_rows]
    return rows


def analyze_parameters(store: Store, steps: np.ndarray, range_sigma: float) -> tuple[list[dict], dict]:
    stats = read_csv(store.dir / "param_stats.csv")
    hists = store.load("param_hist")
    if not stats or hists is None:
        return [], {}
    names = list(dict.fromkeys(r["tensor"] for r in stats))
    info = {r["tensor"]: (r["group"], int(r["layer"]), int(r["numel"])) for r in stats}
    bc = np.full((len(steps), len(names)), math.nan)
    for r in stats:
        bc[int(r["eval_idx"]), names.index(r["tensor"])] = float(r["bc"])
    dips, pvalues = np.zeros_like(bc), np.ones_like(bc)
    rows = []
    for j, name in enumerate(names):
        dips[:, j], pvalues[:, j], t_bif = bifurcation_table(steps, bc[:, j], hists[:, j], range_sigma)
        group, layer, numel = info[name]
        rows.append({"tensor": name, "group": group, "layer": layer, "numel": numel, "t_bif": t_bif,
                     "bc_final": bc[-1, j], "dip_final": dips[-1, j], "p_final": pvalues[-1, j]})
    np.savez(store.dir / ANALYSIS_DIR / "bifurcation.npz", steps=steps, tensors=np.array(names), dip=dips,
             p=pvalues, bc=bc)
    return rows, {"steps": steps, "dip": dips, "p": pvalues}


def read_meta(run_dir: Path, store: Store) -> dict[str, Any]:
    """The diagnostics' meta.json, after checking the store is there: DiagnosticsError naming what is missing (the
    whole diagnostics/ directory, meta.json or the evals.csv index) or unreadable."""
    if not store.dir.is_dir():
        raise DiagnosticsError(f"{run_dir} has no diagnostics (train with diagnostics=on)")
    path = store.dir / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise corrupt(path, "missing (written when the run starts)") from None
    except (OSError, ValueError) as exc:
        raise corrupt(path, f"unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(meta, dict) or not {"probe_hash", "vocab_size", "hist_range_sigma"} <= set(meta):
        raise corrupt(path, "not the diagnostics' meta record")
    if not store.evals_file.exists():
        raise corrupt(store.evals_file, "missing (the index of the recorded evaluations)")
    if not store.evals():
        raise DiagnosticsError(f"{store.evals_file} records no evaluation yet (the first is at step 0)")
    return meta


def analyze_run(run_dir: str | Path) -> dict[str, Any]:
    """Write every per-run analysis file (module docstring); returns the events."""
    run_dir = Path(run_dir)
    store = Store(run_dir / DIAGNOSTICS_DIR)
    meta = read_meta(run_dir, store)
    steps = store.steps()
    (store.dir / ANALYSIS_DIR).mkdir(exist_ok=True)
    events = metric_events(read_records(run_dir))
    positions = read_positions(store.dir / "positions.csv")
    chance = math.log2(meta["vocab_size"])
    position_rows, type_rows, surprisal = analyze_positions(store, positions, steps, chance, events)
    out = store.dir / ANALYSIS_DIR
    write_table(out / "token_metrics.csv", position_rows)
    write_table(out / "type_metrics.csv", type_rows)
    fitting = analyze_fitting(positions, surprisal, steps, events["early_stop"])
    write_table(out / "token_fitting.csv", fitting)
    write_table(out / "fitting_summary.csv", summarise(fitting))
    bif_rows, _ = analyze_parameters(store, steps, float(meta["hist_range_sigma"]))
    write_table(out / "bifurcation.csv", bif_rows)
    groups: dict[str, int | None] = {}
    for r in bif_rows:
        if r["t_bif"] is not None:
            groups[r["group"]] = min(r["t_bif"], groups.get(r["group"]) or r["t_bif"])
    events |= {"t_bif": {r["tensor"]: r["t_bif"] for r in bif_rows}, "t_bif_group": groups,
               "diagnostic_steps": [int(steps[0]), int(steps[-1]), len(steps)], "probe_hash": meta["probe_hash"]}
    (store.dir / "events.json").write_text(json.dumps(events, indent=1))
    return events


def analyze_seeds(run_dirs: list[str | Path], out: str | Path | None = None) -> Path:
    """Cross-run variability over runs that share probe sets (module docstring); returns the output directory."""
    runs = [Path(r) for r in run_dirs]
    if len(runs) < 2:
        raise DiagnosticsError("--seeds needs at least two run directories")
    stores = [Store(r / DIAGNOSTICS_DIR) for r in runs]
    metas = []
    for run, store in zip(runs, stores, strict=True):
        metas.append(read_meta(run, store))
    if len({m["probe_hash"] for m in metas}) > 1:
        raise DiagnosticsError("the runs' probe sets differ (probe_hash); cross-run metrics need identical probes")
    all_steps = [s.steps() for s in stores]
    common = np.array(sorted(set.intersection(*(set(s.tolist()) for s in all_steps))), dtype=np.int64)
    common = common[common > 0]
    if len(common) < MIN_CURVE_POINTS:
        raise DiagnosticsError(f"the runs share only {len(common)} diagnostic steps > 0")
    out = Path(out) if out is not None else Path(_common_parent(runs)) / "diagnostics_seeds"
    out.mkdir(parents=True, exist_ok=True)
    positions = read_positions(stores[0].dir / "positions.csv")
    x = np.log10(common)
    rows, type_rows = [], []
    for split in SPLITS:
        mask = positions["split"] == split
        curves = [load_split(st, split)[:, np.searchsorted(steps, common)] for st, steps in zip(stores, all_steps,
                                                                                                 strict=True)]
        smoothed = [smooth(x, c)(x) for c in curves]
        cross = np.mean([((a - b) ** 2).mean(1) for a, b in itertools.combinations(smoothed, 2)], axis=0)
        final = np.mean([c[:, common >= (1 - FINAL_FRACTION) * common[-1]].mean(1) for c in curves], axis=0)
        for i, pos_id in enumerate(positions["pos_id"][mask]):
            rows.append({"pos_id": pos_id, "split": split, "target": positions["target"][mask][i],
                         "pos": positions["pos"][mask][i], "role": positions["role"][mask][i],
                         "cross_run_var": cross[i], "final_surprisal_mean": final[i]})
        targets = positions["target"][mask]
        for v in np.unique(targets):
            type_rows.append({"split": split, "target": v, "n": int((targets == v).sum()),
                              "cross_run_var": float(cross[targets == v].mean())})
    write_table(out / "cross_run.csv", rows)
    write_table(out / "cross_run_types.csv", type_rows)
    seeds = {str(r): _read_events(r) for r in runs}
    (out / "seeds.json").write_text(json.dumps({"runs": seeds, "common_steps": len(common)}, indent=1))
    return out


def _read_events(run_dir: Path) -> dict[str, Any]:
    path = run_dir / DIAGNOSTICS_DIR / "events.json"
    return json.loads(path.read_text()) if path.exists() else metric_events(read_records(run_dir))


def _common_parent(paths: list[Path]) -> Path:
    parts = [p.resolve().parts for p in paths]
    shared = [names[0] for names in zip(*parts, strict=False) if len(set(names)) == 1]
    return Path(*shared) if shared else Path(".")
