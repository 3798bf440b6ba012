"""Reports on a prediction folder: metrics, figures and a self-contained HTML page.

- :func:`write_report`: score ``brats predict --save-masks`` output and write
  ``report.html``, ``metrics.json``, ``per_volume.csv`` and ``figures/*.png``.
- :func:`evaluate_predictions`: the scoring alone, returning a frozen :class:`ReportData`.
- :func:`headline`: the headline figures (each accuracy with its count).
"""

from __future__ import annotations

from brats_sdk.report.build import ReportFiles, write_report
from brats_sdk.report.evaluate import evaluate_predictions, resolve_survival_model
from brats_sdk.report.report_data import Headline, ReportData, ReportOptions
from brats_sdk.report.summary import headline, metrics_dict

__all__ = [
    "Headline",
    "ReportData",
    "ReportFiles",
    "ReportOptions",
    "evaluate_predictions",
    "headline",
    "metrics_dict",
    "resolve_survival_model",
    "write_report",
]
