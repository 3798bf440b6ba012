"""Scoring a prediction folder against ground truth and a survival CSV.

One volume is in memory at a time: its predicted labels, its ground truth (when given)
and, for the few overlay volumes, its images. Segmentation uses
:func:`~brats_sdk.metrics.segmentation.score_volume` per volume and a
:class:`~brats_sdk.metrics.channels.SegmentationAccumulator` for the pooled channel
Dice and the pixel confusion matrix; survival uses :mod:`brats_sdk.metrics.survival`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt

from brats_sdk._version import __version__
from brats_sdk.constants import IMAGE_CHANNELS, VOXEL_SPACING_MM
from brats_sdk.data.clinical import read_survival_csv
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.sources import open_source
from brats_sdk.errors import BratsError, DataError
from brats_sdk.labels import classes_to_labels, labels_to_classes, one_hot_to_classes
from brats_sdk.metrics.channels import SegmentationAccumulator
from brats_sdk.metrics.qubrats import QuBratsCurves
from brats_sdk.metrics.segmentation import RegionScores, score_volume
from brats_sdk.predict.results import region_volumes_ml
from brats_sdk.report.baselines import with_baselines
from brats_sdk.report.exploratory import (
    FeatureExtractor,
    exploratory_result,
    slice_shares,
    used_slices,
)
from brats_sdk.report.folder import PredictedVolume, PredictionFolder, read_prediction_folder
from brats_sdk.report.provenance import GroundTruthMismatchError, check_ground_truth
from brats_sdk.report.report_data import (
    ModelSummary,
    OverlaySample,
    ReportData,
    ReportOptions,
    TrainingOverlap,
    VolumeReport,
)
from brats_sdk.report.survival_eval import TrueBin, score_survival, true_bins
from brats_sdk.report.truth import match_ground_truth
from brats_sdk.report.uncertainty_eval import UncertaintyResult, score_mask_uncertainty
from brats_sdk.run_files import SURVIVAL_FILE

__all__ = ["evaluate_predictions", "input_source", "largest_tumours", "resolve_survival_model"]

logger = logging.getLogger(__name__)

_FLAIR = IMAGE_CHANNELS.index("flair")
_T1CE = IMAGE_CHANNELS.index("t1ce")


def resolve_survival_model(survival_model: Path | None, model_dir: Path | None) -> Path | None:
    """The survival checkpoint for the PCA figure: ``survival_model``, else ``model_dir/survival.pt``.

    Raises:
        DataError: ``survival_model`` is given but is not a file.
    """
    if survival_model is not None:
        if not Path(survival_model).is_file():
            raise DataError(f"{survival_model}: survival model file not found")
        return Path(survival_model)
    if model_dir is not None and (Path(model_dir) / SURVIVAL_FILE).is_file():
        return Path(model_dir) / SURVIVAL_FILE
    return None


@dataclass
class _State:
    """What the volume loop accumulates (mutable, private)."""

    acc: SegmentationAccumulator = field(default_factory=SegmentationAccumulator)
    any_scored: bool = False
    volumes: list[VolumeReport] = field(default_factory=list)
    overlays: list[OverlaySample] = field(default_factory=list)
    slice_probs: dict[int, npt.NDArray[np.float64]] = field(default_factory=dict)
    shares: list[tuple[int, npt.NDArray[np.float64]]] = field(default_factory=list)
    features: list[tuple[int, npt.NDArray[np.float32]]] = field(default_factory=list)
    missing_in_gt: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    qubrats: dict[int, dict[str, QuBratsCurves]] = field(default_factory=dict)
    qubrats_problems: list[tuple[int, str]] = field(default_factory=list)


def evaluate_predictions(
    pred_dir: Path | str,
    *,
    ground_truth: Path | str | None = None,
    survival_csv: Path | str | None = None,
    survival_model: Path | str | None = None,
    options: ReportOptions | None = None,
    on_volume: Callable[[int], None] | None = None,
) -> ReportData:
    """Score a ``brats predict --save-masks`` folder.

    Args:
        pred_dir: The prediction folder.
        ground_truth: A labelled data folder of any layout (Kaggle h5, NIfTI cases,
            packed). Predicted volumes are matched to its volumes by case name when both
            name cases (NIfTI), else by volume number (:func:`~brats_sdk.report.truth.match_ground_truth`).
            Volumes it lacks are listed, not fatal.
        survival_csv: ``survival_info.csv``; patients are matched by ``patient_id``.
        survival_model: Survival checkpoint for the PCA of image features (Fig. 8);
            without it that figure is skipped with a note.
        options: Figure options.
        on_volume: Called with each volume number once it is done (progress).

    Returns:
        The :class:`ReportData`.

    Raises:
        DataError: ``pred_dir`` is not a prediction folder, or the ground-truth folder or
            survival CSV cannot be read.
        CheckpointError: ``survival_model`` is not a survival checkpoint.
    """
    t0 = time.perf_counter()
    opts = options or ReportOptions()
    folder = read_prediction_folder(pred_dir)
    gt = open_source(ground_truth, require_mask=True, label_convention=opts.label_convention) if ground_truth is not None else None
    gt_of = match_ground_truth(folder.volumes, gt.volumes()) if gt is not None else {}
    images = gt if gt is not None else input_source(folder)
    # Predicted volume -> its volume in ``images``: the matched ground truth, else the input.
    image_of = gt_of if gt is not None else (
        {i.volume: i.volume for i in images.volumes()} if images is not None else {}
    )
    extractor = FeatureExtractor(Path(survival_model), device=opts.device) if survival_model is not None else None
    per_volume_features = min(opts.feature_slices_per_volume, max(1, opts.max_feature_slices // max(len(folder.volumes), 1)))
    records = read_survival_csv(Path(survival_csv)) if survival_csv is not None else None
    state = _State()
    truth: dict[int, TrueBin] = {}
    if records is not None and folder.bins is not None:
        truth = true_bins(folder.volumes, records, folder.bins)
    elif records is not None:
        state.notes.append("survival not scored: the predictions have no survival bins (no survival model)")
    figure_volumes = set(largest_tumours(folder.volumes, opts.max_figure_volumes))

    for pv in folder.volumes:
        _one_volume(
            folder, pv, state, opts,
            gt=gt if pv.volume in gt_of else None,
            gt_given=gt is not None,
            images=images if pv.volume in figure_volumes and pv.volume in image_of else None,
            source_volume=image_of.get(pv.volume, pv.volume),
            figure=pv.volume in figure_volumes,
            extractor=extractor,
            feature_slices=per_volume_features,
            true_bin=truth.get(pv.volume),
        )
        if on_volume is not None:
            on_volume(pv.volume)

    survival = None
    if truth and folder.bins is not None:
        survival = score_survival(folder.volumes, truth, state.slice_probs, folder.bins)
        if records is not None:
            survival = with_baselines(survival, folder.volumes, truth, records, folder.bins, folder.models)
    if truth:
        bin_of = {v: t.bin for v, t in truth.items() if t.bin is not None}
        source = "true"
    else:
        bin_of = {v.volume: v.predicted_bin for v in folder.volumes if v.predicted_bin is not None}
        source = "predicted"
    pca_note = None if extractor is not None else "no survival model given (--survival-model or --model-dir)"
    exploratory = exploratory_result(
        features=state.features, shares=state.shares, bin_of=bin_of, bin_source=source, pca_note=pca_note
    )
    scored_ids = [v.volume for v in state.volumes]
    leaks = any(m.leaks_patients for m in folder.models)
    return ReportData(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        sdk_version=__version__,
        predict_sdk_version=folder.sdk_version,
        pred_dir=str(folder.root),
        ground_truth=None if ground_truth is None else str(ground_truth),
        survival_csv=None if survival_csv is None else str(survival_csv),
        survival_model=None if survival_model is None else str(survival_model),
        models=folder.models,
        leaks_patients=leaks,
        split_known=bool(folder.models) and all(m.leaks_patients is not None for m in folder.models),
        overlap=tuple(_overlap(m, scored_ids) for m in folder.models),
        volumes=tuple(state.volumes),
        missing_in_ground_truth=tuple(state.missing_in_gt),
        segmentation=state.acc.result() if state.any_scored else None,
        survival=survival,
        exploratory=exploratory,
        overlays=tuple(state.overlays),
        bin_labels=folder.bins.labels if folder.bins is not None else (),
        hd95_method=opts.hd95_method.value,
        notes=tuple(state.notes),
        seconds=time.perf_counter() - t0,
        uncertainty=UncertaintyResult(state.qubrats, tuple(state.qubrats_problems)) if state.qubrats or state.qubrats_problems else None,
    )


def input_source(folder: PredictionFolder) -> DataSource | None:
    """The folder the predictions were made from, opened for its images, or None when
    it is gone or unreadable."""
    path = folder.input_dir
    if path is None:
        return None
    try:
        return open_source(path, require_mask=False)
    except BratsError as exc:
        logger.info("input folder %s not readable for images: %s", path, exc)
        return None


def largest_tumours(volumes: Sequence[PredictedVolume], n: int) -> list[int]:
    """The ``n`` volumes with the largest predicted whole tumour, largest first."""
    ranked = sorted(volumes, key=lambda v: (-v.region_ml.get("WT", 0.0), v.volume))
    return [v.volume for v in ranked[: max(n, 0)]]


def _one_volume(
    folder: PredictionFolder,
    pv: PredictedVolume,
    state: _State,
    opts: ReportOptions,
    *,
    gt: DataSource | None,
    gt_given: bool,
    images: DataSource | None,
    source_volume: int,
    figure: bool,
    extractor: FeatureExtractor | None,
    feature_slices: int,
    true_bin: TrueBin | None,
) -> None:
    base = dict(
        volume=pv.volume, patient_id=pv.patient_id, status=pv.status, pred_ml=pv.region_ml,
        slices_used=pv.slices_used, predicted_bin=pv.predicted_bin, votes=pv.votes,
        true_bin=None if true_bin is None else true_bin.bin,
        survival_note=None if true_bin is None else true_bin.note,
        in_ground_truth=(gt is not None) if gt_given else None,
    )
    if gt_given and gt is None:
        state.missing_in_gt.append(pv.volume)
    try:
        labels, probs = folder.read_masks(pv.volume)
        pred = labels_to_classes(labels)
    except BratsError as exc:
        failed = pv.status.startswith("failed")
        logger.log(logging.INFO if failed else logging.WARNING, "volume %d: %s", pv.volume, exc)
        reason = "no mask file" if not folder.mask_path(pv.volume).is_file() else str(exc)
        state.volumes.append(VolumeReport(**base, has_mask=False, regions=None, not_scored=reason if gt_given else None, truth_ml=None))  # type: ignore[arg-type]  # keys match fields
        return
    finite = np.isfinite(probs).all(axis=1) if probs.shape[1] else np.zeros(probs.shape[0], dtype=bool)
    if finite.any():
        state.slice_probs[pv.volume] = probs[finite].astype(np.float64)
    used = used_slices(pred)
    if used.size:
        state.shares.append((pv.volume, slice_shares(pred, used)))
        if extractor is not None:
            state.features.append((pv.volume, extractor.features(pred, used, feature_slices)))

    regions: dict[str, RegionScores] | None = None
    not_scored = "not in ground truth" if gt_given and gt is None else None
    truth_classes: npt.NDArray[np.uint8] | None = None
    truth_ml: dict[str, float] | None = None
    image: npt.NDArray[np.float32] | None = None
    if gt is not None:
        try:
            rec = gt.load_volume(source_volume)
            if rec.mask is None:
                raise DataError(f"volume {pv.volume}: the ground truth has no mask")
            if not opts.force:
                check_ground_truth(folder.meta, pv.volume, rec, where=str(getattr(gt, "root", "ground truth")))
            truth_classes = one_hot_to_classes(rec.mask, channel_axis=1)
            spacing = rec.info.spacing if len(rec.info.spacing) == 3 else VOXEL_SPACING_MM
            regions = score_volume(labels, classes_to_labels(truth_classes), spacing, hd95_method=opts.hd95_method)
            _score_uncertainty(folder.mask_path(pv.volume), pv.volume, labels, classes_to_labels(truth_classes), rec.image, state)
            state.acc.update(pred, truth_classes)
            state.any_scored = True
            truth_ml = region_volumes_ml(truth_classes, spacing)
            image = rec.image if figure else None
        except GroundTruthMismatchError:
            raise
        except BratsError as exc:
            logger.warning("volume %d not scored: %s", pv.volume, exc)
            not_scored, truth_classes = str(exc).splitlines()[0], None
    if figure:
        if image is None and images is not None:
            try:
                image = images.load_volume(source_volume).image
            except BratsError as exc:
                logger.info("volume %d: no image for the overlay figure: %s", pv.volume, exc)
        state.overlays.extend(_overlays(pv.volume, pred, truth_classes, image, opts.slices_per_volume))
    state.volumes.append(
        VolumeReport(**base, has_mask=True, regions=regions, not_scored=not_scored, truth_ml=truth_ml)  # type: ignore[arg-type]  # keys match fields
    )


def _score_uncertainty(
    path: Path, volume: int, pred: npt.NDArray[np.uint8], truth: npt.NDArray[np.uint8], image: npt.NDArray[np.float32], state: _State
) -> None:
    """QU-BraTS curves of the volume's uncertainty maps, if it has any; a problem is noted, not raised."""
    try:
        curves = score_mask_uncertainty(path, pred, truth, image)
    except BratsError as exc:
        logger.warning("volume %d: uncertainty maps not scored: %s", volume, exc)
        state.qubrats_problems.append((volume, str(exc).splitlines()[0]))
        state.notes.append(f"volume {volume}: uncertainty maps not scored: {str(exc).splitlines()[0]}")
        return
    if curves:
        state.qubrats[volume] = curves


def _overlays(
    volume: int,
    pred: npt.NDArray[np.uint8],
    truth: npt.NDArray[np.uint8] | None,
    image: npt.NDArray[np.float32] | None,
    k: int,
) -> list[OverlaySample]:
    """The ``k`` slices with the most tumour (truth when known, else prediction), in slice order."""
    if truth is not None and truth.shape != pred.shape:
        truth = None
    if image is not None and (image.ndim != 4 or image.shape[0] != pred.shape[0] or image.shape[2:] != pred.shape[1:]):
        logger.info("volume %d: image shape %s does not match the masks %s", volume, image.shape, pred.shape)
        image = None
    ref = truth if truth is not None and truth.any() else pred
    counts = (ref.reshape(ref.shape[0], -1) > 0).sum(axis=1)
    if counts.max(initial=0) == 0:
        picks = [ref.shape[0] // 2]
    else:
        order = np.argsort(-counts, kind="stable")
        picks = sorted(int(s) for s in order[:k] if counts[s] > 0)
    rows, cols = _crop_box(picks, pred, truth, image)
    return [
        OverlaySample(
            volume=volume,
            slice_index=s,
            flair=None if image is None else np.asarray(image[s, _FLAIR, rows, cols], dtype=np.float32).copy(),
            t1ce=None if image is None else np.asarray(image[s, _T1CE, rows, cols], dtype=np.float32).copy(),
            truth=None if truth is None else truth[s, rows, cols].copy(),
            pred=pred[s, rows, cols].copy(),
        )
        for s in picks
    ]


def _crop_box(
    picks: list[int],
    pred: npt.NDArray[np.uint8],
    truth: npt.NDArray[np.uint8] | None,
    image: npt.NDArray[np.float32] | None,
    margin: int = 4,
) -> tuple[slice, slice]:
    """Rows and columns of the brain (non-background pixels) and masks of the picked slices, plus a margin."""
    h, w = int(pred.shape[1]), int(pred.shape[2])
    fg: npt.NDArray[np.bool_] = np.zeros((h, w), dtype=bool)
    for s in picks:
        fg |= pred[s] > 0
        if truth is not None:
            fg |= truth[s] > 0
        if image is not None:
            for ch in (_FLAIR, _T1CE):
                fg |= image[s, ch] > image[s, ch].min()
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    if rows.size == 0:
        return slice(None), slice(None)
    return (slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, h)),
            slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, w)))


def _overlap(model: ModelSummary, volumes: list[int]) -> TrainingOverlap:
    train = set(model.train_volumes or ())
    test = set(model.test_volumes or ())
    n_train = sum(1 for v in volumes if v in train)
    n_test = sum(1 for v in volumes if v in test and v not in train)
    return TrainingOverlap(model.role, n_train, n_test, len(volumes) - n_train - n_test)
