"""A prediction job over a folder: stream volumes, write files, skip and report failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from brats_sdk._version import __version__
from brats_sdk.data.clinical import AgeTable, PatientIdMap
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.sources import source_dirs
from brats_sdk.distributed import DistContext
from brats_sdk.predict.outputs import (
    Row,
    failure_row,
    mask_file_name,
    prediction_row,
    write_json,
    write_prediction_masks,
    write_rows_csv,
)
from brats_sdk.predict.predictor import CombinedPredictor
from brats_sdk.predict.results import VolumeFailure, VolumePrediction, VolumeSummary
from brats_sdk.run_files import ERRORS_CSV, MASKS_DIR, NIFTI_DIR, PREDICTIONS_CSV, PREDICTIONS_JSON

__all__ = ["BatchOptions", "BatchSummary", "run_batch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """What a prediction job writes besides the tables.

    Attributes:
        save_masks: ``masks/volume_<V>_pred.h5`` per volume.
        save_nifti: ``nifti/<case>_pred.nii.gz`` per volume (input affine when NIfTI).
        volumes: Only these volumes (None: all).
    """

    save_masks: bool = False
    save_nifti: bool = False
    volumes: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What a job wrote, in volume order: the table rows, typed summaries of every volume
    and the failures."""

    out_dir: Path
    rows: list[Row]
    predictions: int
    volumes: list[VolumeSummary] = field(default_factory=list)
    failures: list[VolumeFailure] = field(default_factory=list)
    seconds: float = 0.0


def run_batch(
    predictor: CombinedPredictor,
    source: DataSource,
    out_dir: Path,
    *,
    ages: AgeTable | None = None,
    id_map: PatientIdMap | None = None,
    options: BatchOptions | None = None,
    on_volume: Callable[[VolumePrediction | VolumeFailure], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    dist: DistContext | None = None,
) -> BatchSummary:
    """Predict every volume of ``source`` into ``out_dir``.

    Writes ``predictions.csv`` and ``predictions.json`` (rewritten atomically after each
    volume, so an interrupted job keeps the rows done), ``errors.csv`` (failed volumes
    and why) and, on request, the mask and NIfTI files. Under torchrun each rank takes
    every N-th volume and rank 0 merges the rows.

    Args:
        predictor: The loaded models.
        source: Volumes to predict.
        out_dir: Output folder (created).
        ages: Age per volume or patient id; volumes without one get no survival class.
        id_map: Volume -> patient id for h5 sources.
        options: Extra outputs and volume subset.
        on_volume: Called after each volume with its result.
        progress: Called as ``progress(done, total)`` before the first volume and after
            each one; under torchrun ``done`` counts all ranks' volumes (estimated as
            this rank's times the world size).
        dist: Process group; default: the one torchrun describes in the environment
            (joined here, left at exit), else a single process.

    Returns:
        The summary; ``failures`` lists volumes whose data was bad.
    """
    t0 = time.perf_counter()
    options = options or BatchOptions()
    dist = dist or DistContext.from_env(predictor.device.type)
    out_dir.mkdir(parents=True, exist_ok=True)
    bins = predictor.bins
    n_bins = 0 if bins is None else bins.n_bins
    wanted = list(info.volume for info in source.volumes())
    if options.volumes is not None:
        wanted = [v for v in wanted if v in set(options.volumes)]
    mine = wanted[dist.rank :: dist.world_size]
    if progress is not None:
        progress(0, len(wanted))
    writer = _nifti_writer(source) if options.save_nifti else None
    rows: dict[int, Row] = {}
    summaries: dict[int, VolumeSummary] = {}
    failures: dict[int, VolumeFailure] = {}
    age_lookup = ages.age_for if ages is not None else None
    for result in predictor.predict_source(source, age_lookup, id_map=id_map, volumes=mine):
        summaries[result.volume] = VolumeSummary.of(result)
        if isinstance(result, VolumeFailure):
            failures[result.volume] = result
            rows[result.volume] = failure_row(result)
        else:
            if options.save_masks:
                write_prediction_masks(out_dir / MASKS_DIR / mask_file_name(result.volume), result, n_bins)
            if writer is not None:
                writer(out_dir, result)
            rows[result.volume] = prediction_row(result, bins)
        if not dist.is_distributed:
            _write_tables(out_dir, predictor, source, rows, failures)
        if on_volume is not None:
            on_volume(result)
        if progress is not None:
            progress(min(len(rows) * dist.world_size, len(wanted)), len(wanted))
    if dist.is_distributed:
        gathered = dist.gather_objects((rows, summaries, failures))
        rows, summaries, failures = {}, {}, {}
        for part_rows, part_summaries, part_failures in gathered:
            rows.update(part_rows)
            summaries.update(part_summaries)
            failures.update(part_failures)
        if dist.is_main:
            _write_tables(out_dir, predictor, source, rows, failures)
    elif not rows:
        _write_tables(out_dir, predictor, source, rows, failures)
    ordered = [rows[v] for v in sorted(rows)]
    return BatchSummary(
        out_dir=out_dir,
        rows=ordered,
        predictions=len(rows) - len(failures),
        volumes=[summaries[v] for v in sorted(summaries)],
        failures=[failures[v] for v in sorted(failures)],
        seconds=time.perf_counter() - t0,
    )


def _write_tables(
    out_dir: Path, predictor: CombinedPredictor, source: DataSource, rows: dict[int, Row], failures: dict[int, VolumeFailure]
) -> None:
    ordered = [rows[v] for v in sorted(rows)]
    write_rows_csv(out_dir / PREDICTIONS_CSV, ordered)
    write_rows_csv(
        out_dir / ERRORS_CSV,
        [{"volume": f.volume, "patient_id": f.patient_id, "name": f.name, "reason": f.reason} for f in sorted(failures.values(), key=lambda f: f.volume)],
        columns=("volume", "patient_id", "name", "reason"),
    )
    bins = predictor.bins
    payload: dict[str, object] = {
        "sdk_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": str(getattr(source, "root", "")),
        "input_dirs": source_dirs(source),
        "models": dict(predictor.models_metadata()),
        "bins": None if bins is None else bins.to_dict(),
        "bin_ranges": None if bins is None else [bins.range_text(b) for b in range(bins.n_bins)],
        "predictor": {
            "precision": predictor.config.precision.value,
            "crop_to_brain": predictor.config.crop_to_brain,
            "crop_margin": predictor.config.crop_margin,
            "fold_batchnorm": predictor.config.fold_batchnorm,
            "fuse_upsampling": predictor.config.fuse_upsampling,
            "tumour_windows": predictor.config.tumour_windows,
            "skip_empty_slices": predictor.config.skip_empty_slices,
            "slice_step": predictor.config.slice_step,
            "tta": predictor.config.tta.value,
            "uncertainty": None if predictor.config.uncertainty is None else predictor.config.uncertainty.value,
            "device": str(predictor.device),
        },
        "volumes": ordered,
        "failures": [{"volume": f.volume, "name": f.name, "reason": f.reason} for f in failures.values()],
    }
    write_json(out_dir / PREDICTIONS_JSON, payload)


def _nifti_writer(source: DataSource) -> Callable[[Path, VolumePrediction], None]:
    from brats_sdk.data.nifti_out import write_label_nifti
    from brats_sdk.predict.outputs import write_map_niftis

    reference = getattr(source, "reference_image", None)

    def write(out_dir: Path, p: VolumePrediction) -> None:
        ref = reference(p.volume) if callable(reference) else None
        write_label_nifti(out_dir / NIFTI_DIR / f"{p.name}_pred.nii.gz", p.labels, reference=ref)
        write_map_niftis(out_dir / NIFTI_DIR, p, ref)

    return write
