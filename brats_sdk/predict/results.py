"""Frozen records of a prediction: one volume's result, or why it failed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import MASK_CHANNELS, VOXEL_SPACING_MM

__all__ = ["REGION_NAMES", "VolumeFailure", "VolumePrediction", "VolumeSummary", "region_volumes_ml"]

REGION_NAMES: tuple[str, ...] = ("NCR", "ED", "ET", "WT", "TC")


@dataclass(frozen=True, slots=True)
class VolumePrediction:
    """Segmentation and survival class of one volume.

    Attributes:
        volume: Volume number in its source.
        name: Case name (``volume_<V>`` for h5, the case folder for NIfTI).
        patient_id: Patient id used for the age lookup.
        labels: ``(D, H, W)`` uint8 BraTS labels {0, 1, 2, 4}; slice ``s`` at index ``s``.
        age: Age in years, or None when unknown.
        slice_indices: Slices whose predicted mask is not empty (the survival input).
        slice_probs: ``(len(slice_indices), n_bins)`` survival probabilities.
        predicted_bin: Majority vote over ``slice_indices`` (ties: larger summed
            probability), or None when no survival prediction was made.
        mean_prob_bin: Bin of the mean probability, or None.
        mean_probs: Mean probability per bin, or None.
        votes: Votes per bin, or None.
        bin_label: ``short`` / ``mid`` / ``long`` for ``predicted_bin``.
        bin_days: Day range of ``predicted_bin`` (e.g. ``268-476``).
        region_ml: Tumour volume per region (NCR, ED, ET, WT, TC) in mL.
        status: ``ok``, or why the survival fields are empty.
        seconds: Wall time of the prediction.
        probabilities: ``(D, 4, H, W)`` float16 class probabilities, channels in the
            segmenter's class order (background, NCR, ED, ET; their argmax is the labels,
            after TTA when on), when ``PredictorConfig.probabilities``; else None.
        uncertainty: ``{"whole", "core", "enhance"}`` -> ``(D, H, W)`` uint8 in [0, 100]
            (100 = most uncertain) for WT, TC, ET, when ``PredictorConfig.uncertainty``; else None.
    """

    volume: int
    name: str
    patient_id: str
    labels: npt.NDArray[np.uint8] = field(repr=False)
    age: float | None
    slice_indices: tuple[int, ...]
    slice_probs: npt.NDArray[np.float64] = field(repr=False)
    predicted_bin: int | None
    mean_prob_bin: int | None
    mean_probs: tuple[float, ...] | None
    votes: tuple[int, ...] | None
    bin_label: str | None
    bin_days: str | None
    region_ml: dict[str, float]
    status: str
    seconds: float
    probabilities: npt.NDArray[np.float16] | None = field(default=None, repr=False)
    uncertainty: Mapping[str, npt.NDArray[np.uint8]] | None = field(default=None, repr=False)

    @property
    def slices_used(self) -> int:
        return len(self.slice_indices)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class VolumeFailure:
    """A volume that could not be predicted (its data is bad); others go on."""

    volume: int
    name: str
    patient_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class VolumeSummary:
    """A volume's prediction or failure without its arrays: what a results table shows.

    Attributes:
        volume, name, patient_id: Identity.
        status: ``ok``, why the survival fields are empty, or ``failed: <reason>``.
        age: Age in years, or None.
        predicted_bin, bin_label, bin_days, votes: The survival class and its vote, or None.
        region_ml: Tumour volume per region in mL, to 3 decimals as ``predictions.csv``
            holds it (empty for a failure).
    """

    volume: int
    name: str
    patient_id: str
    status: str
    age: float | None = None
    predicted_bin: int | None = None
    bin_label: str | None = None
    bin_days: str | None = None
    votes: tuple[int, ...] | None = None
    region_ml: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, result: VolumePrediction | VolumeFailure) -> VolumeSummary:
        """The summary of one result of :meth:`CombinedPredictor.predict_source`."""
        if isinstance(result, VolumeFailure):
            return cls(result.volume, result.name, result.patient_id, f"failed: {result.reason}")
        return cls(
            result.volume, result.name, result.patient_id, result.status, age=result.age,
            predicted_bin=result.predicted_bin, bin_label=result.bin_label, bin_days=result.bin_days,
            votes=result.votes, region_ml={k: round(v, 3) for k, v in result.region_ml.items()},
        )


def region_volumes_ml(classes: npt.NDArray[np.integer], spacing: Sequence[float] = VOXEL_SPACING_MM) -> dict[str, float]:
    """Tumour volume per region in mL from a class-index map (1 mL = 1000 mm^3).

    Args:
        classes: ``(D, H, W)`` class indices (0 background, then NCR, ED, ET).
        spacing: Voxel spacing in mm.

    Returns:
        ``{"NCR", "ED", "ET", "WT", "TC"}`` -> mL.
    """
    voxel_ml = float(np.prod(np.asarray(spacing, dtype=np.float64))) / 1000.0
    counts = np.bincount(np.asarray(classes, dtype=np.intp).ravel(), minlength=len(MASK_CHANNELS) + 1)
    ncr, ed, et = (int(c) for c in counts[1:4])
    vols = {"NCR": ncr, "ED": ed, "ET": et, "WT": ncr + ed + et, "TC": ncr + et}
    return {k: vols[k] * voxel_ml for k in REGION_NAMES}
