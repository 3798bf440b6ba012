#!/usr/bin/env bash
# `brats audit` end to end on a synthetic cohort: how much of a survival accuracy is the
# slice split's leak, and how much age alone explains.
#
#   bash examples/audit_synthetic.sh OUT_DIR
#
# Writes the cohort to OUT_DIR/cohort and the audit to OUT_DIR/audit (audit.json,
# audit.csv, audit.html). The cohort gives every tumour a per-patient outline unrelated to
# survival (--patient-signature), the patient-specific shape a network can learn to
# recognise. 96 patients (63 with survival data) x 64 slices of 64 x 64 (SLICES changes the
# count: fewer slices per patient, less to memorise, a smaller leak), masks fed to the
# ResNet-50 at 48 x 48: the whole audit takes minutes on a 2-core CPU (see README).
# Set AUDIT_ARGS to pass more options (e.g. AUDIT_ARGS="--device cuda --input-size 224").
set -euo pipefail
OUT="${1:?usage: $0 OUT_DIR}"
BRATS="${BRATS:-brats}"
mkdir -p "$OUT"
$BRATS synth "$OUT/cohort" --volumes "${VOLUMES:-96}" --slices "${SLICES:-64}" --size 64 --seed 0 --patient-signature --overwrite --quiet
# shellcheck disable=SC2086  # AUDIT_ARGS is a list of options
$BRATS audit "$OUT/cohort" --out "$OUT/audit" --epochs "${EPOCHS:-30}" --input-size 48 --batch-size 16 \
    --lr 3e-4 --step-size 30 --patience 8 --val-fraction 0.1 --test-fraction 0.3 --seed 0 --device "${DEVICE:-auto}" ${AUDIT_ARGS:-}
echo "audit: $OUT/audit/audit.json"
