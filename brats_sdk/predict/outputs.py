"""Files a prediction job writes: per-volume masks, and the table of volumes.

Every file is written atomically (temporary file, then rename): a second run into the
same folder replaces each file whole, and an interrupted run never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from brats_sdk.atomic import atomic_path, atomic_write_text
from brats_sdk.bins import SurvivalBins
from brats_sdk.constants import MASK_CHANNELS
from brats_sdk.data.nifti import NiftiReference
from brats_sdk.labels import classes_to_one_hot, labels_to_classes
from brats_sdk.predict.results import REGION_NAMES, VolumeFailure, VolumePrediction

__all__ = [
    "PROBABILITY_CHANNELS",
    "failure_row",
    "mask_file_name",
    "prediction_row",
    "read_prediction_masks",
    "write_json",
    "write_map_niftis",
    "write_prediction_masks",
    "write_rows_csv",
]


Row = dict[str, object]

#: Channel order of saved class probabilities: the segmenter's classes.
PROBABILITY_CHANNELS: tuple[str, ...] = ("background", *MASK_CHANNELS)


def mask_file_name(volume: int) -> str:
    return f"volume_{volume}_pred.h5"


def prediction_row(p: VolumePrediction, bins: SurvivalBins | None) -> Row:
    """One row of ``predictions.csv``: identity, survival class, votes, region volumes, status."""
    labels = bins.labels if bins is not None else ()
    row: Row = {
        "volume": p.volume,
        "patient_id": p.patient_id,
        "name": p.name,
        "age": p.age,
        "predicted_bin": p.predicted_bin,
        "bin_label": p.bin_label,
        "bin_days": p.bin_days,
        "mean_prob_bin": p.mean_prob_bin,
    }
    for b, label in enumerate(labels):
        row[f"prob_{label}"] = None if p.mean_probs is None else round(p.mean_probs[b], 6)
    for b, label in enumerate(labels):
        row[f"votes_{label}"] = None if p.votes is None else p.votes[b]
    row["slices_used"] = p.slices_used
    for name in REGION_NAMES:
        row[f"{name}_ml"] = round(p.region_ml[name], 3)
    row["status"] = p.status
    row["seconds"] = round(p.seconds, 3)
    return row


def failure_row(f: VolumeFailure) -> Row:
    return {"volume": f.volume, "patient_id": f.patient_id, "name": f.name, "status": f"failed: {f.reason}"}


def write_rows_csv(path: Path, rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> None:
    """Write ``rows`` as CSV atomically (columns: ``columns`` or the union in order of appearance)."""
    cols: list[str] = list(columns) if columns is not None else []
    if columns is None:
        for r in rows:
            cols.extend(k for k in r if k not in cols)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in cols})
    atomic_write_text(path, buf.getvalue())


def write_json(path: Path, payload: Mapping[str, object]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, default=_json_default))


def _json_default(o: object) -> object:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_prediction_masks(path: Path, p: VolumePrediction, n_bins: int) -> None:
    """``masks/volume_<V>_pred.h5``: ``labels`` (D, H, W) uint8 BraTS labels, ``mask``
    (D, H, W, 3) uint8 one-hot in the h5 release's channel order, ``survival_probs``
    (D, n_bins) float32 (NaN on slices the survival network did not see) and, when the
    prediction carries them, ``probabilities`` (D, 4, H, W) float16 (channels: attribute
    ``channels``, background, NCR, ED, ET) and ``unc_whole``, ``unc_core``, ``unc_enhance``
    (D, H, W) uint8 in [0, 100]."""
    classes = labels_to_classes(p.labels)
    one_hot = classes_to_one_hot(classes, channel_axis=-1)
    probs = np.full((p.labels.shape[0], n_bins), np.nan, dtype=np.float32)
    if p.slice_indices and p.slice_probs.size:
        probs[list(p.slice_indices)] = p.slice_probs
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("labels", data=p.labels, compression="gzip", compression_opts=1, chunks=(1, *p.labels.shape[1:]))
        f.create_dataset("mask", data=one_hot, compression="gzip", compression_opts=1, chunks=(1, *one_hot.shape[1:]))
        f.create_dataset("survival_probs", data=probs)
        if p.probabilities is not None:
            ds = f.create_dataset("probabilities", data=p.probabilities, compression="gzip", compression_opts=1,
                                  chunks=(1, *p.probabilities.shape[1:]))
            ds.attrs["channels"] = ",".join(PROBABILITY_CHANNELS)
        for name, m in (p.uncertainty or {}).items():
            f.create_dataset(f"unc_{name}", data=m, compression="gzip", compression_opts=1, chunks=(1, *m.shape[1:]))
        f.attrs["volume"] = p.volume
        f.attrs["name"] = p.name
        f.attrs["patient_id"] = p.patient_id
        f.attrs["status"] = p.status
        if p.predicted_bin is not None:
            f.attrs["predicted_bin"] = p.predicted_bin


def read_prediction_masks(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(labels (D, H, W) uint8, survival_probs (D, n_bins) float32)`` from a mask file."""
    with h5py.File(path, "r") as f:
        return np.asarray(f["labels"][()]), np.asarray(f["survival_probs"][()])


def write_map_niftis(nifti_dir: Path, p: VolumePrediction, reference: NiftiReference | None) -> None:
    """``<case>_unc_<name>.nii.gz`` (uint8) per uncertainty map and ``<case>_probabilities.nii.gz``
    (float32, NIfTI has no float16; channels on the 4th axis in :data:`PROBABILITY_CHANNELS`
    order) for what ``p`` carries, with the input's geometry."""
    from brats_sdk.data.nifti_maps import write_map_nifti

    for name, m in (p.uncertainty or {}).items():
        write_map_nifti(nifti_dir / f"{p.name}_unc_{name}.nii.gz", m, reference=reference, description=f"brats_sdk uncertainty {name} 0-100")
    if p.probabilities is not None:
        write_map_nifti(nifti_dir / f"{p.name}_probabilities.nii.gz", p.probabilities.astype(np.float32), reference=reference,
                        description="brats_sdk probabilities " + ",".join(PROBABILITY_CHANNELS))
