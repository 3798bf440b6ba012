"""The QU-BraTS uncertainty score (Mehta et al., BraTS 2019-2020 uncertainty task).

The computation of the challenge's evaluation script (``BraTS_Seg_Uncertainty.py`` of
RagMeh11/QU-BraTS), per region (WT, TC, ET) of one case:

- thresholds ``tau`` from 100 down to 0 in ``num_points`` (default 40) equal steps;
- at each ``tau`` the voxels with uncertainty ``> tau`` are filtered out (uncertain) and
  the rest kept; Dice of the kept truth and kept prediction (1 when both are empty);
- the filtered-true-positive ratio ``(TP - TP kept) / (TP + eps)`` and the
  filtered-true-negative ratio ``(TN - TN kept) / (TN + eps)``, TP and TN counted inside
  the brain mask (voxels where T1 > 0), ``eps`` float32's machine epsilon;
- the area under each curve over the thresholds, divided by 100 (so in [0, 1]), and the
  score ``(AUC Dice + (1 - AUC FTP ratio) + (1 - AUC FTN ratio)) / 3``.

The script masks arrays once per threshold; here each voxel category's uncertainties are
sorted once and counted per threshold (``searchsorted``): the same counts, in O(N log N).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import REGIONS
from brats_sdk.errors import DataError

__all__ = [
    "QUBRATS_EPS",
    "QUBRATS_POINTS",
    "QuBratsCurves",
    "qubrats_brain_mask",
    "qubrats_region",
    "qubrats_thresholds",
    "qubrats_volume",
]

#: Threshold steps of the challenge's script (its ``--num_points`` default).
QUBRATS_POINTS: Final[int] = 40
#: The script's ``EPS``: float32's machine epsilon, in the FTP and FTN ratios' denominators.
QUBRATS_EPS: Final[float] = float(np.finfo(np.float32).eps)


def qubrats_thresholds(num_points: int = QUBRATS_POINTS) -> npt.NDArray[np.float64]:
    """Uncertainty thresholds from 100 down to 0 (``num_points + 1`` values, as the script's
    ``np.arange(0, 100 + EPS, 100 / num_points)`` reversed)."""
    out: npt.NDArray[np.float64] = np.arange(0.0, 100.0 + QUBRATS_EPS, 100.0 / num_points)[::-1].copy()
    return out


@dataclass(frozen=True, slots=True)
class QuBratsCurves:
    """One region's QU-BraTS curves and areas.

    Attributes:
        thresholds: The uncertainty thresholds, 100 down to 0.
        dice: Dice of the kept voxels at each threshold.
        ftp_ratio: Filtered-true-positive ratio at each threshold.
        ftn_ratio: Filtered-true-negative ratio at each threshold.
        dice_auc, ftp_ratio_auc, ftn_ratio_auc: Areas under the curves over the
            thresholds, divided by 100.
    """

    thresholds: tuple[float, ...]
    dice: tuple[float, ...]
    ftp_ratio: tuple[float, ...]
    ftn_ratio: tuple[float, ...]
    dice_auc: float
    ftp_ratio_auc: float
    ftn_ratio_auc: float

    @property
    def score(self) -> float:
        """``(dice_auc + (1 - ftp_ratio_auc) + (1 - ftn_ratio_auc)) / 3``: higher is better."""
        return (self.dice_auc + (1.0 - self.ftp_ratio_auc) + (1.0 - self.ftn_ratio_auc)) / 3.0

    def aucs(self) -> dict[str, float]:
        """``dice_auc``, ``ftp_ratio_auc``, ``ftn_ratio_auc`` and ``score``."""
        return {"dice_auc": self.dice_auc, "ftp_ratio_auc": self.ftp_ratio_auc, "ftn_ratio_auc": self.ftn_ratio_auc,
                "score": self.score}


def qubrats_brain_mask(t1: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """The script's brain mask: voxels where the T1 image is above 0."""
    return np.asarray(t1) > 0


def qubrats_region(
    truth: npt.NDArray[np.bool_],
    pred: npt.NDArray[np.bool_],
    uncertainty: npt.NDArray[np.number],
    brain: npt.NDArray[np.bool_],
    *,
    num_points: int = QUBRATS_POINTS,
) -> QuBratsCurves:
    """QU-BraTS curves of one binary region.

    Args:
        truth, pred: Binary masks of the region, any shape (the same for all four arrays).
        uncertainty: Uncertainty in [0, 100], 100 = most uncertain.
        brain: Brain mask (:func:`qubrats_brain_mask`).
        num_points: Threshold steps.

    Returns:
        The curves and areas. Empty truth and prediction at a threshold give Dice 1; an
        empty truth with a non-empty prediction, Dice 0; no TP (TN) in the brain gives an
        FTP (FTN) ratio of 0.

    Raises:
        DataError: The arrays' shapes differ.
    """
    shapes = {np.shape(a) for a in (truth, pred, uncertainty, brain)}
    if len(shapes) != 1:
        raise DataError(f"truth, prediction, uncertainty and brain mask shapes differ: {sorted(shapes)}")
    t, p, b = (np.asarray(a, dtype=bool).ravel() for a in (truth, pred, brain))
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    thresholds = qubrats_thresholds(num_points)

    def kept(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        """Voxels of ``mask`` with uncertainty <= each threshold (the ones not filtered)."""
        return np.searchsorted(np.sort(u[mask]), thresholds, side="right").astype(np.int64)

    tp, tn = t & p, ~t & ~p
    inter, union = kept(tp), kept(p) + kept(t)
    dice = np.where((inter == 0) & (union == 0), 1.0, 2.0 * inter / np.maximum(union, 1))
    tp_b, tn_b = tp & b, tn & b
    n_tp, n_tn = float(tp_b.sum()), float(tn_b.sum())
    ftp = (n_tp - kept(tp_b)) / (n_tp + QUBRATS_EPS)
    ftn = (n_tn - kept(tn_b)) / (n_tn + QUBRATS_EPS)
    return QuBratsCurves(
        thresholds=tuple(float(x) for x in thresholds),
        dice=tuple(float(x) for x in dice),
        ftp_ratio=tuple(float(x) for x in ftp),
        ftn_ratio=tuple(float(x) for x in ftn),
        dice_auc=_auc(thresholds, dice),
        ftp_ratio_auc=_auc(thresholds, ftp),
        ftn_ratio_auc=_auc(thresholds, ftn),
    )


def qubrats_volume(
    truth_labels: npt.NDArray[np.integer],
    pred_labels: npt.NDArray[np.integer],
    uncertainty: Mapping[str, npt.NDArray[np.number]],
    brain: npt.NDArray[np.bool_],
    *,
    num_points: int = QUBRATS_POINTS,
) -> dict[str, QuBratsCurves]:
    """QU-BraTS curves of the regions of one case.

    Args:
        truth_labels, pred_labels: BraTS labels {0, 1, 2, 4}.
        uncertainty: Region (``WT``, ``TC``, ``ET``) -> uncertainty map of the labels' shape.
        brain: Brain mask.
        num_points: Threshold steps.

    Returns:
        Region -> curves, for the regions of ``uncertainty``, in WT, TC, ET order.

    Raises:
        DataError: A region is unknown, or a map's shape differs from the labels'.
    """
    unknown = sorted(set(uncertainty) - set(REGIONS))
    if unknown:
        raise DataError(f"unknown regions {unknown}; expected {list(REGIONS)}")
    out: dict[str, QuBratsCurves] = {}
    for region, labels in REGIONS.items():
        if region not in uncertainty:
            continue
        m = uncertainty[region]
        if np.shape(m) != np.shape(pred_labels):
            raise DataError(f"{region} uncertainty map has shape {np.shape(m)}, the labels {np.shape(pred_labels)}")
        out[region] = qubrats_region(np.isin(truth_labels, labels), np.isin(pred_labels, labels), m, brain, num_points=num_points)
    return out


def _auc(x: npt.NDArray[np.floating], y: npt.NDArray[np.floating]) -> float:
    """Trapezoidal area under ``y`` over ``x`` (decreasing thresholds, as sklearn's ``auc``
    integrates them), divided by 100."""
    return float(np.trapezoid(y[::-1], x[::-1])) / 100.0
