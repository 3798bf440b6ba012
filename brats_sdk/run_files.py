"""The names of the files and folders that the package writes and reads back.

A training run folder (``brats train ... --out RUN``)::

    RUN/segmenter.pt  survival.pt  survival_eval.json  split.csv  scan.json  history.csv
    RUN/stage1/ stage2/ stage3/ survival/     per-stage ``last.pt`` / ``best.pt``

A prediction folder (``brats predict ... --out OUT``) and the report written into it::

    OUT/predictions.csv  predictions.json  errors.csv  masks/  nifti/
    OUT/report.html  metrics.json  per_volume.csv  figures/

Training, prediction and report import these names from here and nowhere else.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ERRORS_CSV",
    "FIGURES_DIR",
    "HISTORY_FILE",
    "MASKS_DIR",
    "METRICS_JSON",
    "NIFTI_DIR",
    "PER_VOLUME_CSV",
    "PREDICTIONS_CSV",
    "PREDICTIONS_JSON",
    "REPORT_HTML",
    "SCAN_FILE",
    "SEGMENTER_FILE",
    "SPLIT_FILE",
    "SURVIVAL_EVAL_FILE",
    "SURVIVAL_FILE",
]

# Run folder
SEGMENTER_FILE: Final[str] = "segmenter.pt"
SURVIVAL_FILE: Final[str] = "survival.pt"
SURVIVAL_EVAL_FILE: Final[str] = "survival_eval.json"
SPLIT_FILE: Final[str] = "split.csv"
SCAN_FILE: Final[str] = "scan.json"
HISTORY_FILE: Final[str] = "history.csv"

# Prediction folder
PREDICTIONS_CSV: Final[str] = "predictions.csv"
PREDICTIONS_JSON: Final[str] = "predictions.json"
ERRORS_CSV: Final[str] = "errors.csv"
MASKS_DIR: Final[str] = "masks"
NIFTI_DIR: Final[str] = "nifti"

# Report, written into the prediction folder
REPORT_HTML: Final[str] = "report.html"
METRICS_JSON: Final[str] = "metrics.json"
PER_VOLUME_CSV: Final[str] = "per_volume.csv"
FIGURES_DIR: Final[str] = "figures"
