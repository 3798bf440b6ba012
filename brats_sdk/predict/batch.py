"""A prediction job over a folder: stream volumes, write files, skip and report failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from brats_sdk._version import __version__
from brats_sdk.data.broken import broken_volumes
from brats_sdk.data.clinical import AgeTable, PatientIdMap, patient_id_of
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.records import VolumeInfo
from brats_sdk.data.sources import source_dirs
from brats_sdk.distributed import DistContext
from brats_sdk.predict.output_set import claim_prediction_folder
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
from brats_sdk.predict.provenance import RecordingSource
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

    The run owns ``out_dir`` (:func:`~brats_sdk.predict.output_set.claim_prediction_folder`):
    it locks it, and removes an earlier run's outputs and orphan temporary files first.
    Writes ``predictions.csv`` and ``predictions.json`` (rewritten atomically after each
    volume, so an interrupted job keeps the rows done; ``"complete"`` is false until the
    last volume is written), ``errors.csv`` (failed volumes and why) and, on request,
    the mask and NIfTI files. Under torchrun each rank takes every N-th volume and rank 0
    merges the rows. Every per-volume problem is a failed
    volume, whether it shows when the volume is read or already when the source lists
    its volumes (:func:`~brats_sdk.data.broken.broken_volumes` of a source opened with
    ``skip_broken=True``).

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

    Raises:
        DataError: ``out_dir`` cannot be created or written, or another run holds it.
    """
    dist = dist or DistContext.from_env(predictor.device.type)
    with claim_prediction_folder(out_dir, dist=dist if dist.is_distributed else None):
        return _run_batch(
            predictor, source, out_dir, ages=ages, id_map=id_map, options=options, on_volume=on_volume,
            progress=progress, dist=dist,
        )


def _run_batch(
    predictor: CombinedPredictor,
    source: DataSource,
    out_dir: Path,
    *,
    ages: AgeTable | None = None,
    id_map: PatientIdMap | None = None,
    options: BatchOptions | None = None,
    on_volume: Callable[[VolumePrediction | VolumeFailure], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    dist: DistContext,
) -> BatchSummary:
    """The body of :func:`run_batch`, in a folder it owns."""
    t0 = time.perf_counter()
    options = options or BatchOptions()
    bins = predictor.bins
    n_bins = 0 if bins is None else bins.n_bins
    wanted = list(info.volume for info in source.volumes())
    broken = [b for b in broken_volumes(source) if options.volumes is None or b.volume in options.volumes]
    if options.volumes is not None:
        wanted = [v for v in wanted if v in set(options.volumes)]
    mine = wanted[dist.rank :: dist.world_size]
    rows: dict[int, Row] = {}
    summaries: dict[int, VolumeSummary] = {}
    failures: dict[int, VolumeFailure] = {}
    for b in broken if dist.is_main else ():
        pid = patient_id_of(VolumeInfo(volume=b.volume, name=b.name, n_slices=0), id_map)
        failure = VolumeFailure(volume=b.volume, name=b.name, patient_id=pid, reason=b.reason)
        failures[b.volume], rows[b.volume], summaries[b.volume] = failure, failure_row(failure), VolumeSummary.of(failure)
        if on_volume is not None:
            on_volume(failure)
    total = len(wanted) + len(broken)
    if progress is not None:
        progress(len(rows), total)
    writer = _nifti_writer(source) if options.save_nifti else None
    recorder = RecordingSource(source)  # what each volume was made from, for the report's check
    if dist.is_main:
        _write_tables(out_dir, predictor, source, rows, failures, options, recorder.inputs, complete=False)
    age_lookup = ages.age_for if ages is not None else None
    for result in predictor.predict_source(recorder, age_lookup, id_map=id_map, volumes=mine):
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
            _write_tables(out_dir, predictor, source, rows, failures, options, recorder.inputs, complete=False)
        if on_volume is not None:
            on_volume(result)
        if progress is not None:
            progress(min(len(rows) * dist.world_size, total), total)
    if dist.is_distributed:
        gathered = dist.gather_objects((rows, summaries, failures, recorder.inputs))
        rows, summaries, failures = {}, {}, {}
        for part_rows, part_summaries, part_failures, part_inputs in gathered:
            rows.update(part_rows)
            summaries.update(part_summaries)
            failures.update(part_failures)
            recorder.inputs.update(part_inputs)
        if dist.is_main:
            _write_tables(out_dir, predictor, source, rows, failures, options, recorder.inputs, complete=True)
    else:
        _write_tables(out_dir, predictor, source, rows, failures, options, recorder.inputs, complete=True)
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
    out_dir: Path, predictor: CombinedPredictor, source: DataSource, rows: dict[int, Row], failures: dict[int, VolumeFailure],
    options: BatchOptions, inputs: Mapping[int, dict[str, object]], *, complete: bool,
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
        # False until the last volume is written: an interrupted run says so.
        "complete": complete,
        "outputs": {"masks": options.save_masks, "nifti": options.save_nifti},
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
            "crop_padding": predictor.config.crop_padding.value,
            "fold_batchnorm": predictor.config.fold_batchnorm,
            "fuse_upsampling": predictor.config.fuse_upsampling,
            "tumour_windows": predictor.config.tumour_windows,
            "fast_convolutions": predictor.config.fast_convolutions,
            "skip_empty_slices": predictor.config.skip_empty_slices,
            "slice_step": predictor.config.slice_step,
            "min_component_voxels": predictor.config.min_component_voxels,
            "tta": predictor.config.tta.value,
            "uncertainty": None if predictor.config.uncertainty is None else predictor.config.uncertainty.value,
            "device": str(predictor.device),
        },
        "volumes": ordered,
        "failures": [{"volume": f.volume, "name": f.name, "reason": f.reason} for f in failures.values()],
        "inputs": {str(v): inputs[v] for v in sorted(inputs)},
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
