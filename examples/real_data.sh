#!/usr/bin/env bash
# What a user with the BraTS release runs first: pack the cases, train the segmenter
# with the cpu preset, predict the patients the run held out, and score them.
#
# Usage: examples/real_data.sh DATA_DIR OUT_DIR
#   DATA_DIR  the NIfTI release (a folder of case folders, e.g. MICCAI_BraTS2020_TrainingData)
#             or Kaggle's h5 release (BraTS2020_training_data/content/data or a parent of it)
#   OUT_DIR   receives packed/ (the cases, brain boxes in float16), run/ (segmenter.pt,
#             split.csv, history.csv), predictions/ (labels as h5 and NIfTI) and report/.
# Environment:
#   PRESET=cpu        the training recipe (`brats train segmenter --show-preset cpu`)
#   SPLIT_CSV=FILE    use this split (volumes by number) instead of a patient split by seed
#   TRAIN_ARGS="..."  more options of `brats train segmenter`, e.g. "--time-limit 30"
#   BRATS=brats       the command to run (e.g. "python -m cli")
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 DATA_DIR OUT_DIR" >&2
  exit 2
fi
DATA="$1"
OUT="$2"
BRATS="${BRATS:-brats}"
mkdir -p "$OUT"
start=$(date +%s)
stamp() { echo "   ($(( $(date +%s) - start )) s)"; }
# A batch that skipped broken volumes (exit 3, listed above) goes on with the others.
partial_ok() { "$@" || { rc=$?; [ "$rc" -eq 3 ] || exit "$rc"; echo "   (some volumes skipped; see above)"; }; }

echo "== 1/4 pack the cases: one file per volume, brain boxes only (checks every file; resumable)"
partial_ok $BRATS pack "$DATA" "$OUT/packed" --dtype float16 --quiet
stamp

echo "== 2/4 train the segmenter (preset ${PRESET:-cpu})"
# shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
$BRATS train segmenter "$OUT/packed" --out "$OUT/run" --preset "${PRESET:-cpu}" \
  ${SPLIT_CSV:+--split-csv "$SPLIT_CSV"} ${TRAIN_ARGS:-} --quiet
stamp

echo "== 3/4 predict the held-out patients (the run's test part) from the original files"
partial_ok $BRATS predict "$DATA" --model-dir "$OUT/run" --part test --out "$OUT/predictions" --save-masks --save-nifti --quiet
stamp

echo "== 4/4 score them against their ground truth"
$BRATS report "$OUT/predictions" --ground-truth "$DATA" --model-dir "$OUT/run" --out "$OUT/report" --quiet
stamp
echo "Run folder: $OUT/run (segmenter.pt)"
echo "Report: $OUT/report/report.html"
