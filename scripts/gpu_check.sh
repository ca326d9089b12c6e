#!/usr/bin/env bash
# The one prepared GPU check, hermetic (the GPU machine reaches no package registry; about 8 minutes in all):
#   1. install grok and the dependencies the device image lacks from .whl/ (scripts/gpu_wheels.sh fills it, here)
#      with --no-index, then a pre-flight import of everything the run needs (exits 1 with one line if not)
#   2. the real experiment=paper_qf K=10 seed pack (depth 6, seeds 42..132, bf16; GPU_CHECK_PACK_ARGS replaces
#      the overrides) for a fixed slice (PACK_S, 180 s: the tests and benchmarks need the rest of the 470 s); SIGTERM then saves every member
#   3. the gpu-marked tests (pytest -m gpu tests/gpu)
#   4. benchmarks at the paper shape: member-steps/s at K=1, 4, 10 (fp32, tf32, bf16; eager vs CUDA graphs),
#      a Dyck K=10 pack with its padding skipped vs kept, batched evaluation, and the trainer's step against a
#      plain PyTorch baseline
# Each step runs under its own timeout, and its status (ok, failed, timeout, skipped) goes to results.json; the
# script exits 1 if any step failed. Everything lands in $OUT (at most 8 files): gpu_check.log (every step's
# output), results.json, bench.md (the benchmark tables) and pack_metrics.tar.gz (every member's metrics.jsonl
# and status.json); runs, data and the installed packages stay under /tmp.
#
#   bash scripts/gpu_wheels.sh                          # here, with the registry: fills .whl/ and .whl/py311/
#   OUT=/tmp/out bash scripts/gpu_check.sh              # on the GPU machine, from the repository root
#   GPU_CHECK_REHEARSE=1 bash scripts/gpu_check.sh      # the CPU rehearsal, here (about 3 minutes): a fresh venv
#       with only what the device image has (GPU_CHECK_IMAGE=python reuses one), grok from .whl/py311 with
#       --no-index, the same steps CPU-sized (no compile: inductor on the CPU takes minutes)
#
# BENCHMARKS.md says how the figures are recorded.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
REHEARSE=${GPU_CHECK_REHEARSE:-}
OUT=${OUT:-/tmp/gpu_check_out}
WORK=${GPU_CHECK_WORK:-/tmp/grok-gpu-check}
BUDGET_S=${GPU_CHECK_BUDGET_S:-470}  # the whole script, install included (the device lends 8-10 minutes)
PACK_S=${PACK_S:-180}
START=$(date +%s)
mkdir -p "$OUT"
rm -rf "$WORK" "$OUT/gpu_check.log" "$OUT/results.json" "$OUT/bench.md" "$OUT/pack_metrics.tar.gz"
mkdir -p "$WORK"
LOG=$OUT/gpu_check.log
: > "$LOG"
: > "$OUT/bench.md"
RESULTS=()
FAILED=0

say() { echo "$*" | tee -a "$LOG"; }
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET_S - $(elapsed) )); }
write_results() {
    local IFS=,
    printf '{"rehearsal": %s, "elapsed_s": %d, "failed": %d, "steps": [%s]}\n' \
        "$([ -n "$REHEARSE" ] && echo true || echo false)" "$(elapsed)" "$FAILED" "${RESULTS[*]}" > "$OUT/results.json"
}
# step NAME CAP_S COMMAND...: run COMMAND (a program or an exported function; output to the log) under a timeout
# of CAP_S seconds, or what is left of the budget, and record its status; exit statuses in OK_RC (default 0) are ok
step() {
    local name=$1 cap=$2 rc=0 began status
    shift 2
    local limit=$(( cap < $(left) - 5 ? cap : $(left) - 5 ))
    if [ "$limit" -lt 10 ]; then
        say "== $name: skipped (no time left, $(elapsed) s)"
        RESULTS+=("{\"step\": \"$name\", \"status\": \"skipped\", \"rc\": null, \"seconds\": 0}")
        write_results
        return 0
    fi
    say "== $name (timeout ${limit} s, at $(elapsed) s)"
    began=$(date +%s)
    timeout --preserve-status -k 15 -s TERM "$limit" bash -c '"$@"' "$name" "$@" >> "$LOG" 2>&1 < /dev/null || rc=$?
    if [[ " ${OK_RC:-0} " == *" $rc "* ]]; then
        status=ok
    elif [ $(( $(date +%s) - began )) -ge "$limit" ]; then
        status=timeout
    else
        status=failed
    fi
    [ "$status" = ok ] || FAILED=$(( FAILED + 1 ))
    say "   $name: $status (exit $rc, $(( $(date +%s) - began )) s)"
    RESULTS+=("{\"step\": \"$name\", \"status\": \"$status\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - began ))}")
    write_results
}
trap 'say "gpu_check: stopped at line $LINENO (exit $?)"; FAILED=$((FAILED + 1)); write_results' ERR

if [ -n "$REHEARSE" ]; then  # the CPU stand-in for the device image: only what the image has, then the same steps
    PY=${GPU_CHECK_IMAGE:-$WORK/image/bin/python}
    WHEELS=${GPU_CHECK_WHEELS:-$REPO/.whl/py311}
    DEVICE=cpu
    PACK_S=${GPU_CHECK_PACK_S:-45}
    PACK=(experiment=paper_qf depth=2 model.d_model=32 model.n_heads=2 model.d_ff=64 task.n_train=2000
          task.n_val=100 task.n_gen=100 task.eval_every=20 task.eval_gen_sample=0 train.log_every=10
          probes.sample_size=20 logger=none)
    SHAPES=(--shapes cpu) BENCH=(--steps 2 --rounds 1) DEPTH=(--depths 1) EVAL=(--eval-sentences 20) KS=(--ks 1 4)
    DYCK_KS=(--ks 2)
    GRAPHS=()  # inductor on the CPU takes minutes to compile; the gpu tests' CPU twins cover compile=true
    export GROK_GPU_REHEARSAL=1 OMP_NUM_THREADS=1
    if [ -z "${GPU_CHECK_IMAGE:-}" ]; then
        say "== rehearsal: a fresh venv with the device image's packages (torch, numpy, tqdm, matplotlib, pytest, pyyaml, regex)"
        python3 -m venv "$WORK/image" >> "$LOG" 2>&1
        "$PY" -m pip install -q torch==2.13.0 numpy tqdm matplotlib pytest pyyaml regex >> "$LOG" 2>&1 \
            || { say "gpu_check: could not build the rehearsal's image venv (see $LOG)"; exit 1; }
        START=$(date +%s)  # the budget covers what the device does
    fi
else
    PY=${PYTHON:-python3}
    WHEELS=${GPU_CHECK_WHEELS:-$REPO/.whl}
    DEVICE=cuda
    PACK=(experiment=paper_qf depth=6 logger=none precision=bf16)
    SHAPES=(--shapes paper) BENCH=(--steps 30 --rounds 1) DEPTH=(--depths 6) EVAL=(--eval-sentences 2000)
    KS=(--ks 1 4 10) GRAPHS=(--compile) DYCK_KS=(--ks 10)
fi
say "gpu_check: $([ -n "$REHEARSE" ] && echo "CPU rehearsal" || echo "device run"), python $PY, wheels $WHEELS, out $OUT"

# 1. install: every wheel of the folder, without an index, into a directory put first on PYTHONPATH (the image's
#    own torch stays in charge); pip if the image has it, else the wheels unpacked (a wheel is a zip archive)
SITE=$WORK/site
export PY WHEELS SITE REPO DEVICE OUT
install_wheels() {
    ls "$WHEELS"/grok-*.whl > /dev/null || { echo "no grok wheel in $WHEELS: run scripts/gpu_wheels.sh"; return 1; }
    if "$PY" -m pip --version > /dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check --target "$SITE" \
            "$WHEELS"/*.whl
    else
        local wheel
        for wheel in "$WHEELS"/*.whl; do "$PY" -m zipfile -e "$wheel" "$SITE"; done
    fi
}
export -f install_wheels
step install 120 install_wheels
if [ "$FAILED" -gt 0 ]; then  # one line: why
    echo "gpu_check: install from $WHEELS failed: $(grep -v '^ *install: \|^== install' "$LOG" | tail -n 1)"
    exit 1
fi
export PYTHONPATH=$SITE PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

preflight() {
    "$PY" - "$DEVICE" "$REPO" <<'PY'
import importlib, sys
for name in ("torch", "numpy", "tqdm", "matplotlib", "pytest", "yaml", "regex", "omegaconf", "hydra", "antlr4",
             "nltk", "submitit", "hydra_plugins.hydra_submitit_launcher", "wandb", "grokking.train",
             "grokking.probes", "grokking.report", "cli.main"):
    try:
        importlib.import_module(name)
    except Exception as exc:
        sys.exit(f"gpu_check: preflight: cannot import {name} ({type(exc).__name__}: {exc})")
import filecmp, os
from pathlib import Path
site, repo = Path(os.environ["PYTHONPATH"]), Path(sys.argv[2])


def differs(f: Path) -> bool:  # git-ignored local configs (conf/local/, local_*.yaml) are not shipped
    twin = site / f.relative_to(repo)
    local = "local" in f.parts or f.name.startswith("local_")
    return not local and (not twin.is_file() or not filecmp.cmp(f, twin, shallow=False))


stale = [str(f.relative_to(repo)) for package in ("grokking", "cli", "conf", "hydra_plugins")
         for f in sorted((repo / package).rglob("*"))
         if f.suffix in (".py", ".yaml", ".cfg") and "__pycache__" not in f.parts and differs(f)]
if stale:
    sys.exit(f"gpu_check: preflight: the grok wheel in .whl/ is not this working tree ({stale[0]} and "
             f"{len(stale) - 1} more differ): rerun scripts/gpu_wheels.sh")
import torch
from cli.compose import compose_config
try:
    compose_config(["experiment=paper_qf", "seed=42", "seeds=[42,52]", f"device={sys.argv[1]}"])
except Exception as exc:
    sys.exit(f"gpu_check: preflight: experiment=paper_qf does not compose ({type(exc).__name__}: {exc})")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit(f"gpu_check: preflight: torch {torch.__version__} sees no CUDA device")
print("preflight: torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "(no CUDA)")
PY
}
export -f preflight
step preflight 60 preflight
if [ "$FAILED" -gt 0 ]; then  # one line: what is missing
    grep -h "^gpu_check: preflight:" "$LOG" | tail -n 1 | grep . || echo "gpu_check: preflight failed (see $LOG)"
    exit 1
fi
cd "$WORK"  # runs and data under /tmp; the code comes from $SITE
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$LOG" 2>&1 || echo "no nvidia-smi" >> "$LOG"

# 2. the real pack for a fixed slice; SIGTERM -> every member saved, exit 75
SEEDS='seeds=[42,52,62,72,82,92,102,112,122,132]'
[ -z "${GPU_CHECK_PACK_ARGS:-}" ] || read -ra PACK <<< "$GPU_CHECK_PACK_ARGS"
say "   the pack: ${PACK[*]} seed=42 $SEEDS device=$DEVICE"
OK_RC="0 75" step "pack K=10 for ${PACK_S} s" $((PACK_S + 30)) \
    timeout --preserve-status -k 20 -s TERM "$PACK_S" "$PY" -m cli.main train "${PACK[@]}" seed=42 "$SEEDS" \
    device="$DEVICE" paths.runs="$WORK/runs" data.dir="$WORK/data"
(cd "$WORK" && find runs -name metrics.jsonl -o -name status.json -o -name train_log.jsonl 2>/dev/null \
    | tar czf "$OUT/pack_metrics.tar.gz" -T -) >> "$LOG" 2>&1 || true
"$PY" - "$WORK/runs" <<'PY' >> "$OUT/bench.md" 2>> "$LOG" || true
import json, sys
from pathlib import Path
print("\n## the real pack (K=10, one process)\n\n| member | step | val/acc | gen/acc | elapsed s | steps/s |\n|---|---|---|---|---|---|")
total = 0.0
for metrics in sorted(Path(sys.argv[1]).glob("*/depth=*/seed=*/metrics.jsonl")):
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    last = rows[-1] if rows else {}
    steps, seconds = last.get("step") or 0, last.get("elapsed_s") or 0
    total += steps / seconds if seconds else 0
    print(f"| {metrics.parent.name} | {steps} | {last.get('val/acc')} | {last.get('gen/acc')} | {seconds} | "
          f"{steps / seconds if seconds else 0:.1f} |")
print(f"\nmember-steps/s, all members (from the last evaluation's elapsed time, start-up included): {total:.1f}")
PY

# 3. the gpu-marked tests (the rehearsal: each up to its first CUDA call, the hook in tests/conftest.py)
step "pytest -m gpu tests/gpu" 150 "$PY" -m pytest -q -p no:cacheprovider -m gpu "$REPO/tests/gpu" -rxs

# 4. benchmarks (tables into bench.md as well)
bench() { set -o pipefail; "$PY" "$REPO/scripts/$1" "${@:2}" | tee -a "$OUT/bench.md"; echo >> "$OUT/bench.md"; }
export -f bench
GRAPHED=${GRAPHS[*]:+ + CUDA graphs}
step "bench_pack fp32" 90 bench bench_pack.py --device "$DEVICE" "${SHAPES[@]}" "${KS[@]}" "${BENCH[@]}"
step "bench_pack bf16$GRAPHED" 150 bench bench_pack.py --device "$DEVICE" "${SHAPES[@]}" "${KS[@]}" "${BENCH[@]}" --precision bf16 "${GRAPHS[@]}"
dyck_padding() { bench bench_pack.py --task dyck "$@" && bench bench_pack.py --task dyck "$@" --keep-padding; }
export -f dyck_padding
step "bench_pack dyck: padding skipped vs kept" 90 dyck_padding --device "$DEVICE" "${SHAPES[@]}" "${DYCK_KS[@]}" "${BENCH[@]}"
step "bench_pack tf32" 60 bench bench_pack.py --device "$DEVICE" "${SHAPES[@]}" --ks 10 "${BENCH[@]}" --precision tf32
step "batched evaluation, K=10" 90 bench bench_pack.py --device "$DEVICE" "${SHAPES[@]}" --ks 10 --steps 2 --rounds 1 "${EVAL[@]}"
step "bench_train bf16$GRAPHED vs baseline" 90 bench bench_train.py --device "$DEVICE" "${DEPTH[@]}" "${BENCH[@]}" --precision bf16 "${GRAPHS[@]}"

trap - ERR
write_results
say "== done in $(elapsed) s: $FAILED step(s) failed; $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
grep -h "^|\|^device=\|member-steps/s" "$OUT/bench.md" || true
[ "$FAILED" -eq 0 ]
