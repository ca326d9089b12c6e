#!/usr/bin/env bash
# The one prepared GPU check (about 8 minutes on a fresh GPU machine): the gpu-marked tests, training-step rates
# at the paper config (depth 6: eager single run, CUDA-graph single run, K=10 seed pack in fp32 and bf16, and one
# evaluation of the pack's members batched vs one by one), then the
# real experiment=paper_qf K=10 pack (depth 6, seeds 42..132) for the remaining minutes. Everything lands in one
# folder ($OUT when set): gpu_check.log and pack_metrics.tar.gz (every member's metrics.jsonl and status.json).
#
#   OUT=/tmp/gpu bash scripts/gpu_check.sh           # on the GPU machine, from the repository root
#   GPU_CHECK_DRY=1 bash scripts/gpu_check.sh        # anywhere: the same steps, CPU-sized, in about two minutes
#
# Needs python3 with torch (CUDA) and grok's other dependencies; wheels in .whl/ are installed first if present.
# BENCHMARKS.md says how the figures were recorded.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}  # the whole script, set-up included
START=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/grok-site .whl/*.whl || exit 1
    export PYTHONPATH=$PYTHONPATH:/tmp/grok-site
fi
exec > >(tee "$OUT/gpu_check.log") 2>&1

if [ -n "${GPU_CHECK_DRY:-}" ]; then  # every step, CPU-sized: checks the script, measures nothing
    DEVICE=cpu SHAPE=(--shapes cpu) BENCH=(--steps 2 --rounds 1) FAST=() PACK=(experiment=smoke task.steps=200) PRECISION=()
    TESTS=(tests/unit/test_pack.py) DEPTH=(--depths 2) EVAL=(--eval-sentences 50)
else
    DEVICE=cuda SHAPE=(--shapes paper) BENCH=(--steps 50 --rounds 2) FAST=(--compile --precision bf16) PRECISION=(precision=bf16)
    PACK=(experiment=paper_qf depth=6 logger=none compile=true) TESTS=(-m gpu tests) DEPTH=(--depths 6)
    EVAL=(--eval-sentences 2000)
fi
elapsed() { echo $(( $(date +%s) - START )); }
section() { echo; echo "== $* ($(elapsed) s)"; }

section "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

section "gpu-marked tests"
$PY -m pytest -q -p no:cacheprovider "${TESTS[@]}"

section "steps/s at the paper config, depth 6: grok eager vs plain PyTorch, then CUDA graphs + bf16"
$PY scripts/bench_train.py --device "$DEVICE" "${DEPTH[@]}" "${BENCH[@]}"
[ ${#FAST[@]} -gt 0 ] && $PY scripts/bench_train.py --device "$DEVICE" "${DEPTH[@]}" "${BENCH[@]}" "${FAST[@]}"

section "member-steps/s: K=10 seed pack vs 10 single runs (fp32 with one evaluation of every member, bf16, bf16 + CUDA graphs)"
$PY scripts/bench_pack.py --device "$DEVICE" "${SHAPE[@]}" --ks 10 "${BENCH[@]}" "${EVAL[@]}"
$PY scripts/bench_pack.py --device "$DEVICE" "${SHAPE[@]}" --ks 10 "${BENCH[@]}" --precision bf16
[ ${#FAST[@]} -gt 0 ] && $PY scripts/bench_pack.py --device "$DEVICE" "${SHAPE[@]}" --ks 10 "${BENCH[@]}" "${FAST[@]}"

LEFT=$(( BUDGET_S - $(elapsed) - 20 ))
section "the real pack: ${PACK[*]}, seeds 42..132, for the remaining ${LEFT} s (SIGTERM then saves every member)"
if [ "$LEFT" -gt 30 ]; then
    timeout -s TERM "$LEFT" $PY -m cli.main train "${PACK[@]}" 'seeds=[42,52,62,72,82,92,102,112,122,132]' \
        device="$DEVICE" "${PRECISION[@]}" paths.runs="$OUT/runs" data.dir="$OUT/data"
    echo "grok exited with $? (75: stopped by the time limit after saving)"
    (cd "$OUT" && tar czf pack_metrics.tar.gz $(find runs -name metrics.jsonl -o -name status.json -o -name train_log.jsonl))
    $PY - "$OUT/runs" <<'PY'
import json, sys
from pathlib import Path
for metrics in sorted(Path(sys.argv[1]).glob("*/depth=*/seed=*/metrics.jsonl")):
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    last = rows[-1] if rows else {}
    print(f"{metrics.parent}: step {last.get('step')} val/acc {last.get('val/acc')} gen/acc {last.get('gen/acc')} "
          f"elapsed {last.get('elapsed_s')} s")
PY
    rm -rf "$OUT/runs" "$OUT/data"
else
    echo "no time left for the pack run"
fi
section "done"
