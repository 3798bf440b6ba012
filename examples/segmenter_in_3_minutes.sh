#!/usr/bin/env bash
# The segmenter acceptance run: six synthetic 155 x 240 x 240 volumes, at most three
# minutes of CPU training, then Dice on four held-out synthetic volumes.
#
#   bash examples/segmenter_in_3_minutes.sh [OUT_DIR]
#
# SLICES, SIZE and EPOCHS shrink it (the tests run it tiny). Needs `brats` on PATH.
set -euo pipefail
OUT="${1:-seg3_run}"
SLICES="${SLICES:-155}"
SIZE="${SIZE:-240}"
mkdir -p "$OUT"

brats synth "$OUT/train_data" --volumes 6 --slices "$SLICES" --size "$SIZE" --seed 0 --overwrite --quiet
brats synth "$OUT/heldout_data" --volumes 4 --slices "$SLICES" --size "$SIZE" --seed 1 --overwrite --quiet

start=$(date +%s)
brats train segmenter "$OUT/train_data" --out "$OUT/run" --stage-epochs "${EPOCHS:-5},0,0" --lr 1e-3 --step-size 3 \
  --batch-dice --background-weight 0.25 --drop-no-brain --crop-size 96 --tumour-fraction 0.5 --batch-size 8 --quiet
echo "training took $(( $(date +%s) - start )) s"

brats predict "$OUT/heldout_data" --model-dir "$OUT/run" --out "$OUT/predictions" --save-masks --quiet > /dev/null
brats report "$OUT/predictions" --out "$OUT/report" --ground-truth "$OUT/heldout_data" --quiet > /dev/null
python3 - "$OUT/report/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["segmentation"]
regions = " / ".join(f"{m['regions'][r]['dice']['mean']:.3f}" for r in ("WT", "TC", "ET"))
print(f"held-out Dice WT / TC / ET: {regions}")
print(f"held-out Dice NCR / ED / ET, mean: {m['channel_dice_mean']:.3f}")
PY
