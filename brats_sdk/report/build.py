"""Writing a report folder: ``report.html``, ``metrics.json``, ``per_volume.csv``, ``figures/*.png``."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brats_sdk.atomic import atomic_path, atomic_write_text
from brats_sdk.out_dir import prepare_out_dir
from brats_sdk.predict.outputs import write_json, write_rows_csv
from brats_sdk.report.evaluate import evaluate_predictions
from brats_sdk.report.figures import render_figures
from brats_sdk.report.html import render_html
from brats_sdk.report.report_data import ReportData, ReportOptions
from brats_sdk.report.summary import metrics_dict, per_volume_rows
from brats_sdk.report.uncertainty_eval import compare_dice
from brats_sdk.report.view import ViewerBuild, build_viewer
from brats_sdk.report.viewer_page import viewer_fragment
from brats_sdk.run_files import FIGURES_DIR, METRICS_JSON, PER_VOLUME_CSV, REPORT_HTML

__all__ = ["ReportFiles", "write_report"]

logger = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What :func:`write_report` wrote.

    Attributes:
        out_dir: The report folder.
        html: ``report.html``.
        metrics: ``metrics.json``.
        per_volume: ``per_volume.csv``.
        figures: ``figures/*.png`` in display order.
        data: The report's data.
        seconds: Wall time, evaluation and rendering together.
        viewer: The slice viewer's volumes, or None when it is left out.
    """

    out_dir: Path
    html: Path
    metrics: Path
    per_volume: Path
    figures: tuple[Path, ...]
    data: ReportData
    seconds: float
    viewer: ViewerBuild | None = None


def write_report(
    pred_dir: Path | str,
    out_dir: Path | str,
    *,
    ground_truth: Path | str | None = None,
    survival_csv: Path | str | None = None,
    survival_model: Path | str | None = None,
    options: ReportOptions | None = None,
    on_volume: Callable[[int], None] | None = None,
    compare: Path | str | None = None,
) -> ReportFiles:
    """Score a prediction folder and write the report folder.

    Args:
        pred_dir: What ``brats predict --save-masks`` wrote.
        out_dir: The report folder (created; files in it are replaced atomically).
        ground_truth: Labelled data folder of any layout to score segmentation against
            (see :func:`~brats_sdk.report.evaluate.evaluate_predictions`).
        survival_csv: ``survival_info.csv`` to score survival against.
        survival_model: Survival checkpoint for the PCA figure (Fig. 8).
        options: Figure and viewer options.
        on_volume: Called with each volume number once scored (progress).
        compare: A second prediction folder (e.g. the same volumes without TTA) whose Dice
            and HD95 against ``ground_truth`` the report shows beside this folder's.

    Returns:
        The paths written and the data.

    Raises:
        DataError: ``pred_dir`` is not a prediction folder, or an input cannot be read.
        CheckpointError: ``survival_model`` is not a survival checkpoint.
    """
    t0 = time.perf_counter()
    opts = options or ReportOptions()
    prepare_out_dir(Path(out_dir))  # before the scoring: an unwritable --out fails at once
    data = evaluate_predictions(
        pred_dir, ground_truth=ground_truth, survival_csv=survival_csv, survival_model=survival_model,
        options=opts, on_volume=on_volume,
    )
    if compare is not None and ground_truth is not None:
        other = evaluate_predictions(compare, ground_truth=ground_truth,
                                     options=dataclasses.replace(opts, max_figure_volumes=0, viewer_volumes=0))
        data = dataclasses.replace(data, comparison=compare_dice(data.pred_dir, other.pred_dir, data.volumes, other.volumes))
    out = Path(out_dir)
    fig_dir = out / FIGURES_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = render_figures(data, opts)
    paths: list[Path] = []
    for f in figures:
        path = fig_dir / f"{f.name}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(f.png)
        paths.append(path)
    rel = {f.name: f"{FIGURES_DIR}/{f.name}.png" for f in figures}
    write_json(out / METRICS_JSON, metrics_dict(data, rel))
    write_rows_csv(out / PER_VOLUME_CSV, per_volume_rows(data))
    viewer = None
    if opts.viewer_volumes > 0:
        viewer = build_viewer(pred_dir, ground_truth=ground_truth, max_volumes=opts.viewer_volumes)
    atomic_write_text(out / REPORT_HTML, render_html(data, figures, viewer=None if viewer is None else viewer_fragment(viewer.payloads)))
    seconds = time.perf_counter() - t0
    logger.info("report of %d volumes written to %s in %.1f s", len(data.volumes), out, seconds)
    return ReportFiles(out, out / REPORT_HTML, out / METRICS_JSON, out / PER_VOLUME_CSV, tuple(paths), data, seconds, viewer)
