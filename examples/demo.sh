#!/usr/bin/env bash
# The main job end to end on a synthetic cohort the tool makes itself:
#   synthesise -> train both models -> predict held-out volumes -> report.
# Usage: examples/demo.sh [OUT_DIR]   (make demo runs it with OUT_DIR=demo_run)
set -euo pipefail
OUT="${1:-demo_run}"
mkdir -p "$OUT"
SIZE="${DEMO_SIZE:-128}"
SLICES="${DEMO_SLICES:-40}"

echo "== 1/5 synthesise a training cohort and a held-out cohort (Kaggle h5 layout)"
brats synth "$OUT/train_data" --volumes 10 --slices "$SLICES" --size "$SIZE" --seed 0 --overwrite --quiet
brats synth "$OUT/heldout_data" --volumes 4 --slices "$SLICES" --size "$SIZE" --seed 1 --overwrite --quiet

echo "== 2/5 check the data"
brats inspect "$OUT/train_data" --quiet

echo "== 3/5 train the segmenter and the survival classifier (small CPU budget)"
# One stage, Dice + cross-entropy, a cosine schedule and the last epoch's weights: no early
# stopping or best-epoch choice that a few float roundings could tip one way or the other.
# Half of the slices drawn hold tumour, so that the split a seed draws does not decide
# whether the network sees enough necrotic core to learn it within the budget.
brats train all "$OUT/train_data" --out "$OUT/run" \
  --stage-epochs "${DEMO_SEG_EPOCHS:-14,0,0}" --lr 2e-3,1e-3,1e-5 --schedule cosine --warmup-steps 20 --keep last \
  --batch-dice --background-weight 0.25 --ce-weight 1 --drop-no-brain --tumour-fraction 0.5 \
  --survival-epochs "${DEMO_SURVIVAL_EPOCHS:-5}" --batch-size 8 --patience 14 --seed "${DEMO_SEED:-0}"

echo "== 4/5 predict the held-out volumes (ages from their survival table)"
AGES="$(find "$OUT/heldout_data" -name survival_info.csv | head -n 1)"
brats predict "$OUT/heldout_data" --model-dir "$OUT/run" --age-csv "$AGES" \
  --out "$OUT/predictions" --save-masks --quiet

echo "== 5/5 score and report"
brats report "$OUT/predictions" --out "$OUT/report" --ground-truth "$OUT/heldout_data" \
  --survival-csv "$AGES" --model-dir "$OUT/run" --quiet
echo "Report: $OUT/report/report.html"
