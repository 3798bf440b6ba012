"""Reports on a prediction folder: metrics, figures and a self-contained HTML page.

- :func:`write_report`: score ``brats predict --save-masks`` output and write
  ``report.html``, ``metrics.json``, ``per_volume.csv`` and ``figures/*.png``.
- :func:`evaluate_predictions`: the scoring alone, returning a frozen :class:`ReportData`.
- :func:`headline`: the headline figures (each accuracy with its count).
- :func:`write_viewer`: the interactive slice viewer of a prediction folder as one HTML
  file (``report.html`` embeds the same viewer); :func:`build_viewer`: its payloads.
"""

from __future__ import annotations

from brats_sdk.report.build import ReportFiles, write_report
from brats_sdk.report.evaluate import evaluate_predictions, resolve_survival_model
from brats_sdk.report.report_data import Headline, ReportData, ReportOptions
from brats_sdk.report.summary import headline, metrics_dict
from brats_sdk.report.view import ViewerBuild, ViewerVolume, build_viewer, write_viewer
from brats_sdk.report.viewer_data import ImageFormat, ViewerOptions

__all__ = [
    "Headline",
    "ImageFormat",
    "ReportData",
    "ReportFiles",
    "ReportOptions",
    "ViewerBuild",
    "ViewerOptions",
    "ViewerVolume",
    "build_viewer",
    "evaluate_predictions",
    "headline",
    "metrics_dict",
    "resolve_survival_model",
    "write_report",
    "write_viewer",
]
