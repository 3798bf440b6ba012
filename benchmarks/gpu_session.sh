#!/usr/bin/env bash
# One prepared GPU session: CUDA figures, the survival acceptance runs and the segmenter's
# crop recipe on CUDA. Writes its logs under $OUT (default gpu_out/).
#
#   bash benchmarks/gpu_session.sh                       # everything, on the GPU machine
#   SECTIONS="survival" SURV_VOLUMES=12 SURV_EPOCHS=1 bash benchmarks/gpu_session.sh   # a part, or a dry run
#
# SURV_RUNS lists survival runs as seed:lr pairs; SURV_ARGS adds options to all of them.
# Packages missing on the machine can travel as wheels in .whl/ (installed to /tmp/site).
set -uo pipefail
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
BRATS=("$PY" -m cli)
WORK="${WORK:-/tmp/gpu_session}"
SECTIONS="${SECTIONS:-bench survival segmenter}"
rm -rf "$WORK"; mkdir -p "$WORK"
(nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || echo "no nvidia-smi") | tee "$OUT/gpu.txt"

survival() {
  echo "== survival acceptance: ${SURV_VOLUMES:=150} synthetic patients, runs ${SURV_RUNS:=0:1e-4 1:1e-4 2:1e-4}"
  "${BRATS[@]}" synth "$WORK/surv" --volumes "$SURV_VOLUMES" --slices "${SURV_SLICES:-48}" --size "${SURV_SIZE:-128}" --seed 0 --quiet
  local first=""
  for run in $SURV_RUNS; do
    local seed="${run%%:*}" lr="${run##*:}" dir="$WORK/surv_${run//:/_}" start=$SECONDS
    mkdir -p "$dir"
    [ -n "$first" ] && cp "$first/scan.json" "$dir/"  # the same data: reuse the first run's scan
    # shellcheck disable=SC2086  # SURV_ARGS is a list of options
    timeout "${SURV_TIMEOUT:-150}" "${BRATS[@]}" train survival "$WORK/surv" --out "$dir" --epochs "${SURV_EPOCHS:-30}" \
      --batch-size 32 --survival-lr "$lr" --num-workers "${WORKERS:-6}" --seed "$seed" --quiet ${SURV_ARGS:-} 2>&1 \
      | grep -v "^$" | tee "$OUT/survival_${run//:/_}.txt"
    echo "seconds=$((SECONDS - start))" | tee -a "$OUT/survival_${run//:/_}.txt"
    cut -d, -f1-8 "$dir/history.csv" 2>/dev/null | tee -a "$OUT/survival_${run//:/_}.txt"
    first="${first:-$dir}"
  done
}

bench() {
  echo "== throughput, AMP, prediction"
  timeout "${BENCH_TIMEOUT:-200}" "$PY" benchmarks/bench_gpu.py 2>&1 | tee "$OUT/bench_gpu.txt"
}

segmenter() {
  echo "== segmenter crop recipe on CUDA"
  "${BRATS[@]}" synth "$WORK/seg" --volumes "${SEG_VOLUMES:-6}" --slices "${SEG_SLICES:-155}" --seed 0 --quiet
  local start=$SECONDS
  timeout 150 "${BRATS[@]}" train segmenter "$WORK/seg" --out "$WORK/seg_run" --stage-epochs 5,0,0 --lr 1e-3 --step-size 3 \
    --batch-dice --background-weight 0.25 --drop-no-brain --crop-size 96 --tumour-fraction 0.5 --batch-size 8 \
    --num-workers "${WORKERS:-6}" --quiet 2>&1 | tee "$OUT/segmenter_crops.txt"
  echo "seconds=$((SECONDS - start))" | tee -a "$OUT/segmenter_crops.txt"
  cut -d, -f1-11 "$WORK/seg_run/history.csv" 2>/dev/null | tee -a "$OUT/segmenter_crops.txt"
}

for section in $SECTIONS; do "$section"; done
echo "== done"
