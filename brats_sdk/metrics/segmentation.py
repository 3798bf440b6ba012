"""Per-volume BraTS metrics: Dice, HD95, sensitivity and specificity per region.

Regions are the ones BraTS scores (:data:`~brats_sdk.constants.REGIONS`): whole
tumour WT = {1, 2, 4}, tumour core TC = {1, 4}, enhancing tumour ET = {4}. Empty
regions follow nnU-Net's BraTS scorer: empty in both -> Dice 1, HD95 0; empty in
exactly one -> Dice 0, HD95 :data:`~brats_sdk.constants.HD95_EMPTY_PENALTY`.

HD95 definition used here (one definition, everywhere in the SDK):

1. The surface of a mask is the set of its voxels that have at least one
   face neighbour (6-connectivity in 3D) outside the mask; the array border
   counts as outside. Computed as ``mask XOR binary_erosion(mask, cross)``.
2. For every predicted surface voxel, the Euclidean distance in mm (voxel
   spacing aware) to the nearest truth surface voxel, and vice versa.
3. HD95 = the 95th percentile (``numpy.percentile``, linear interpolation) of
   the union of both directed distance sets — MedPy's ``hd95``, which nnU-Net's
   BraTS scorer uses (:attr:`HD95Method.POOLED`, the default).

:attr:`HD95Method.MAX_DIRECTED` gives instead max(P95(pred -> truth),
P95(truth -> pred)), the robust Hausdorff of DeepMind's ``surface-distance``
package; it is never smaller than the pooled value and the two differ little
on real tumours. The default follows nnU-Net because DOMAIN.md names its scorer
as the reference for the empty-region rules too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from brats_sdk.constants import HD95_EMPTY_PENALTY, MASK_LABELS, REGIONS, VOXEL_SPACING_MM
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.metrics._arrays import as_array, as_bool, check_same_shape, check_spacing
from brats_sdk.options import OptionEnum

__all__ = [
    "HD95Method",
    "RegionScores",
    "dice",
    "hd95",
    "region_mask",
    "score_volume",
    "sensitivity",
    "specificity",
    "surface_distances",
]

_BRATS_LABELS = (0, *MASK_LABELS)


class HD95Method(OptionEnum):
    """How the two directed surface-distance sets combine into HD95 (module docstring)."""

    POOLED = "pooled"
    MAX_DIRECTED = "max_directed"


def region_mask(labels: npt.ArrayLike, region: str) -> npt.NDArray[np.bool_]:
    """Voxels of a BraTS label map that belong to an evaluation region.

    Args:
        labels: BraTS label map of any shape, e.g. ``(D, H, W)``, values in {0, 1, 2, 4}.
            Values are not validated here (:func:`score_volume` does that).
        region: ``"WT"``, ``"TC"`` or ``"ET"``.

    Returns:
        Bool array of the same shape; all False when the region is absent (empty labels).

    Raises:
        ConfigError: Unknown region name.
    """
    try:
        members = REGIONS[region]
    except KeyError:
        raise ConfigError(
            f"unknown region {region!r}; supported regions: {', '.join(REGIONS)}"
        ) from None
    return np.isin(as_array(labels), members)


def dice(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Dice coefficient ``2|P & T| / (|P| + |T|)`` of two binary masks.

    Args:
        pred: Predicted mask of any shape (non-zero is foreground).
        truth: Reference mask of the same shape.

    Returns:
        Dice in [0, 1]. Both masks empty -> 1.0; exactly one empty -> 0.0.

    Raises:
        DataError: The shapes differ.
    """
    p, t = as_bool(pred), as_bool(truth)
    check_same_shape(p, t, "dice")
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(p & t)) / total


def _surface(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Voxels of ``mask`` with a face neighbour outside it (array border = outside)."""
    cross = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=cross, border_value=0)
    return np.asarray(mask & ~eroded, dtype=bool)


def _directed(
    src_surface: npt.NDArray[np.bool_],
    dst_surface: npt.NDArray[np.bool_],
    spacing: tuple[float, ...],
) -> npt.NDArray[np.float64]:
    """Distance from each voxel of ``src_surface`` to the nearest voxel of ``dst_surface``."""
    field = ndimage.distance_transform_edt(~dst_surface, sampling=spacing)
    return np.asarray(field[src_surface], dtype=np.float64)


def surface_distances(
    pred: npt.ArrayLike,
    truth: npt.ArrayLike,
    spacing: Sequence[float] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Directed surface distances in both directions (see the module docstring for surfaces).

    Both masks are cropped to the bounding box of their union plus a one-voxel
    empty margin first; this changes no distance and makes full volumes fast.

    Args:
        pred: Predicted mask, any number of dimensions (non-zero is foreground).
        truth: Reference mask of the same shape.
        spacing: Voxel size per axis in mm; default 1 on every axis.

    Returns:
        ``(pred_to_truth, truth_to_pred)``: one distance per surface voxel of the
        first mask to the nearest surface voxel of the second. Both are empty
        arrays when either mask is empty (the distance is then undefined).

    Raises:
        DataError: The shapes differ.
        ConfigError: ``spacing`` does not match the dimensions or is not positive.
    """
    p, t = as_bool(pred), as_bool(truth)
    check_same_shape(p, t, "surface distances")
    sp = check_spacing((1.0,) * p.ndim if spacing is None else spacing, p.ndim)
    empty = np.empty(0, dtype=np.float64)
    if not p.any() or not t.any():
        return empty, empty
    coords = np.nonzero(p | t)
    box = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
    p_box = np.pad(p[box], 1, constant_values=False)
    t_box = np.pad(t[box], 1, constant_values=False)
    p_surf, t_surf = _surface(p_box), _surface(t_box)
    return _directed(p_surf, t_surf, sp), _directed(t_surf, p_surf, sp)


def hd95(
    pred: npt.ArrayLike,
    truth: npt.ArrayLike,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    method: HD95Method | str = HD95Method.POOLED,
) -> float:
    """95th-percentile Hausdorff distance in mm between two binary masks.

    POOLED (default): P95 of the union of pred->truth and truth->pred surface
    distances (MedPy / nnU-Net). MAX_DIRECTED: the larger of the two directed P95s.
    6-connected surfaces, ``numpy.percentile`` with linear interpolation; the module
    docstring gives the definition and the reason.

    Args:
        pred: Predicted mask ``(D, H, W)`` (any number of dimensions matching ``spacing``).
        truth: Reference mask of the same shape.
        spacing: Voxel size per axis in mm, one value per dimension.
        method: :class:`HD95Method` (or its value).

    Returns:
        HD95 in mm. Both masks empty -> 0.0; exactly one empty ->
        :data:`~brats_sdk.constants.HD95_EMPTY_PENALTY` (373.13).

    Raises:
        DataError: The shapes differ.
        ConfigError: ``spacing`` does not match the dimensions or is not positive.
    """
    how = HD95Method.parse(method)
    p, t = as_bool(pred), as_bool(truth)
    check_same_shape(p, t, "hd95")
    sp = check_spacing(spacing, p.ndim)
    p_any, t_any = bool(p.any()), bool(t.any())
    if not p_any and not t_any:
        return 0.0
    if p_any != t_any:
        return HD95_EMPTY_PENALTY
    d_pt, d_tp = surface_distances(p, t, sp)
    if how is HD95Method.POOLED:
        return float(np.percentile(np.concatenate([d_pt, d_tp]), 95))
    return float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))


def sensitivity(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Sensitivity (recall) ``TP / (TP + FN)`` of a binary prediction.

    Args:
        pred: Predicted mask of any shape (non-zero is foreground).
        truth: Reference mask of the same shape.

    Returns:
        Sensitivity in [0, 1]. Empty truth (no positives, 0/0): 1.0 when the
        prediction is empty too, else 0.0, mirroring the Dice rule so that a false
        alarm on a tumour-free region is penalised and the value is never NaN.

    Raises:
        DataError: The shapes differ.
    """
    p, t = as_bool(pred), as_bool(truth)
    check_same_shape(p, t, "sensitivity")
    positives = int(np.count_nonzero(t))
    if positives == 0:
        return 0.0 if p.any() else 1.0
    return int(np.count_nonzero(p & t)) / positives


def specificity(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Specificity ``TN / (TN + FP)`` over every voxel of the volume.

    The negatives are all voxels outside the truth mask, background included, so
    on a brain volume the value is usually close to 1.

    Args:
        pred: Predicted mask of any shape (non-zero is foreground).
        truth: Reference mask of the same shape.

    Returns:
        Specificity in [0, 1]. Empty truth is ordinary (all voxels negative). When
        the truth has no negatives at all (0/0), the rule mirrors
        :func:`sensitivity`: 1.0 when the prediction also covers every voxel, else 0.0.

    Raises:
        DataError: The shapes differ.
    """
    p, t = as_bool(pred), as_bool(truth)
    check_same_shape(p, t, "specificity")
    negatives = int(t.size - np.count_nonzero(t))
    if negatives == 0:
        return 1.0 if bool(p.all()) else 0.0
    return int(np.count_nonzero(~p & ~t)) / negatives


@dataclass(frozen=True, slots=True)
class RegionScores:
    """Scores of one BraTS region of one volume.

    Attributes:
        dice: Dice coefficient (both empty -> 1.0, one empty -> 0.0).
        hd95: HD95 in mm (both empty -> 0.0, one empty -> 373.13).
        sensitivity: Recall (empty truth -> 1.0 if nothing predicted, else 0.0).
        specificity: TN / (TN + FP) over the whole volume.
        truth_empty: The region is absent from the reference.
        pred_empty: The region is absent from the prediction.
    """

    dice: float
    hd95: float
    sensitivity: float
    specificity: float
    truth_empty: bool
    pred_empty: bool


def _check_labels(labels: npt.NDArray[Any], name: str) -> None:
    ok = np.isin(labels, _BRATS_LABELS)
    if not bool(ok.all()):
        bad = np.unique(labels[~ok])[:10].tolist()
        raise DataError(
            f"{name} holds values {bad} that are not BraTS labels {list(_BRATS_LABELS)}"
        )


def score_volume(
    pred_labels: npt.ArrayLike,
    truth_labels: npt.ArrayLike,
    spacing: Sequence[float] = VOXEL_SPACING_MM,
    *,
    hd95_method: HD95Method | str = HD95Method.POOLED,
) -> dict[str, RegionScores]:
    """Score one volume on the BraTS regions WT, TC and ET.

    Args:
        pred_labels: Predicted BraTS label map ``(D, H, W)`` with values in {0, 1, 2, 4}.
        truth_labels: Reference label map of the same shape and values.
        spacing: Voxel size per axis in mm (1 mm isotropic for BraTS).
        hd95_method: How HD95 combines the two directed distance sets (default pooled).

    Returns:
        ``{"WT": RegionScores, "TC": ..., "ET": ...}``. A region empty in the truth,
        the prediction or both is scored by the empty rules of each metric.

    Raises:
        DataError: The shapes differ, or a map holds a value outside {0, 1, 2, 4}.
        ConfigError: ``spacing`` does not match the dimensions or is not positive.
    """
    pred, truth = as_array(pred_labels), as_array(truth_labels)
    check_same_shape(pred, truth, "score_volume")
    _check_labels(pred, "pred_labels")
    _check_labels(truth, "truth_labels")
    sp = check_spacing(spacing, pred.ndim)
    scores: dict[str, RegionScores] = {}
    for region in REGIONS:
        p, t = region_mask(pred, region), region_mask(truth, region)
        scores[region] = RegionScores(
            dice=dice(p, t),
            hd95=hd95(p, t, sp, method=hd95_method),
            sensitivity=sensitivity(p, t),
            specificity=specificity(p, t),
            truth_empty=not bool(t.any()),
            pred_empty=not bool(p.any()),
        )
    return scores
