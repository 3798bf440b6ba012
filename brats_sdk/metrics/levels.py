"""The paper's three survival accuracies: per slice, per non-empty slice, per patient.

The paper reports slice accuracy, then accuracy after dropping slices whose mask is
empty (they carry no tumour), then the per-volume majority vote. This module computes
all three from per-slice probabilities, so training, prediction and reports agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from brats_sdk.metrics.survival import SurvivalScores, majority_vote, survival_scores

__all__ = ["SurvivalLevels", "VolumeSlices", "survival_levels"]


@dataclass(frozen=True, slots=True)
class VolumeSlices:
    """One patient's slice predictions.

    Attributes:
        true_bin: The patient's survival bin.
        probs: ``(S, n_bins)`` probabilities of every slice.
        empty: ``(S,)`` whether each slice's mask is empty.
    """

    true_bin: int
    probs: npt.NDArray[np.float64]
    empty: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SurvivalLevels:
    """Scores at the three levels; ``per_patient`` is over patients with a non-empty slice."""

    per_slice: SurvivalScores | None
    per_slice_nonempty: SurvivalScores | None
    per_patient: SurvivalScores | None
    patients_without_tumour: int

    def headline(self) -> dict[str, float | int | None]:
        """Accuracies with the count each is over."""
        out: dict[str, float | int | None] = {}
        for name in ("per_slice", "per_slice_nonempty", "per_patient"):
            s: SurvivalScores | None = getattr(self, name)
            out[f"{name}_accuracy"] = None if s is None else s.accuracy
            out[f"{name}_n"] = 0 if s is None else s.n
        return out


def survival_levels(volumes: Mapping[int, VolumeSlices] | Sequence[VolumeSlices], n_bins: int) -> SurvivalLevels:
    """Score slice- and patient-level survival predictions.

    Args:
        volumes: Per patient, the slice probabilities and empty flags.
        n_bins: Number of survival bins.

    Returns:
        The three levels (None where there is nothing to score).
    """
    items = list(volumes.values()) if isinstance(volumes, Mapping) else list(volumes)
    all_true: list[int] = []
    all_probs: list[npt.NDArray[np.float64]] = []
    ne_true: list[int] = []
    ne_probs: list[npt.NDArray[np.float64]] = []
    pat_true: list[int] = []
    pat_pred: list[int] = []
    pat_probs: list[npt.NDArray[np.float64]] = []
    no_tumour = 0
    for v in items:
        if v.probs.shape[0] == 0:
            continue
        all_true.extend([v.true_bin] * v.probs.shape[0])
        all_probs.append(v.probs)
        keep = ~v.empty
        if not keep.any():
            no_tumour += 1
            continue
        ne_true.extend([v.true_bin] * int(keep.sum()))
        ne_probs.append(v.probs[keep])
        winner, _ = majority_vote(v.probs[keep])
        pat_true.append(v.true_bin)
        pat_pred.append(winner)
        pat_probs.append(v.probs[keep].mean(axis=0))

    def score(true: list[int], probs: npt.NDArray[np.float64], pred: list[int] | None = None) -> SurvivalScores | None:
        if not true:
            return None
        predicted = np.asarray(pred) if pred is not None else probs.argmax(axis=1)
        return survival_scores(np.asarray(true), predicted, probs, n_bins)

    def cat(parts: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
        return np.concatenate(parts) if parts else np.zeros((0, n_bins))

    return SurvivalLevels(
        per_slice=score(all_true, cat(all_probs)),
        per_slice_nonempty=score(ne_true, cat(ne_probs)),
        per_patient=score(pat_true, np.stack(pat_probs) if pat_probs else np.zeros((0, n_bins)), pat_pred),
        patients_without_tumour=no_tumour,
    )
