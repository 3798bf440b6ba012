"""Per-region uncertainty maps in the QU-BraTS submission format, from class probabilities.

The BraTS regions are unions of classes, so a region's probability is a sum of class
probabilities: whole tumour WT = NCR + ED + ET (= 1 - background), tumour core TC =
NCR + ET, enhancing tumour ET. Each region's map is uint8 in [0, 100], 100 = most
uncertain, named as the challenge names its files (``whole``, ``core``, ``enhance``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import MASK_CHANNELS
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.options import UncertaintyMethod

__all__ = ["DEFAULT_UNCERTAINTY", "UNCERTAINTY_NAMES", "region_probabilities", "to_percent", "uncertainty_maps"]

#: BraTS region -> the name of its uncertainty map (``<case>_unc_<name>.nii.gz``, ``unc_<name>`` in the masks h5).
UNCERTAINTY_NAMES: Final[dict[str, str]] = {"WT": "whole", "TC": "core", "ET": "enhance"}

#: The method ``brats predict --save-uncertainty`` uses unless told otherwise: the best
#: QU-BraTS score on the real validation case, and on the held-out ones (README has the
#: figures). The score charges every filtered true positive, and the true negatives it is
#: over are the whole brain, so a map scores by flagging the voxels left out of a region
#: that may belong to it and leaving the predicted region at 0.
DEFAULT_UNCERTAINTY: Final[UncertaintyMethod] = UncertaintyMethod.MISSED

# Class index of each tumour class (0 is background).
_NCR, _ED, _ET = (1 + MASK_CHANNELS.index(c) for c in ("NCR", "ED", "ET"))


def region_probabilities(probs: npt.NDArray[np.floating], axis: int = 1) -> npt.NDArray[np.float32]:
    """WT, TC and ET probabilities from class probabilities.

    Args:
        probs: Class probabilities with the classes (background, NCR, ED, ET) on ``axis``,
            e.g. ``(D, 4, H, W)``.
        axis: The class axis.

    Returns:
        float32 array of the same shape with 3 entries on ``axis``: WT, TC, ET.
    """
    p = np.moveaxis(np.asarray(probs, dtype=np.float32), axis, 0)
    wt = p[_NCR] + p[_ED] + p[_ET]
    tc = p[_NCR] + p[_ET]
    return np.moveaxis(np.stack([wt, tc, p[_ET]]), 0, axis)


def to_percent(u: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """Uncertainty in [0, 1] as uint8 percent in [0, 100] (rounded to nearest)."""
    out: npt.NDArray[np.uint8] = np.rint(np.clip(np.asarray(u, dtype=np.float32), 0.0, 1.0) * 100.0).astype(np.uint8)
    return out


def uncertainty_maps(
    probs: npt.NDArray[np.floating],
    method: UncertaintyMethod | str,
    *,
    spread: npt.NDArray[np.floating] | None = None,
) -> dict[str, npt.NDArray[np.uint8]]:
    """One uncertainty map per region.

    Args:
        probs: ``(D, 4, H, W)`` class probabilities (background, NCR, ED, ET).
        method: ``missed``: 100 H(p) (binary entropy in bits of the region probability
            ``p``) on voxels whose most probable class is outside the region, 0 inside;
            ``margin``: 100 (1 - |2p - 1|); ``entropy``: 100 H(p) everywhere; ``spread``:
            100 times ``spread``, the range of ``p`` over the TTA members.
        spread: ``(D, 3, H, W)`` per-region range of the TTA members' probabilities (WT,
            TC, ET); needed by ``spread`` only.

    Returns:
        ``{"whole", "core", "enhance"}`` -> ``(D, H, W)`` uint8 in [0, 100], 100 = most uncertain.

    Raises:
        ConfigError: ``spread`` without the members' range.
        DataError: ``probs`` is not ``(D, 4, H, W)``.
    """
    method = UncertaintyMethod.parse(method)
    probs = np.asarray(probs)
    if probs.ndim != 4 or probs.shape[1] != 1 + len(MASK_CHANNELS):
        raise DataError(f"expected class probabilities (D, {1 + len(MASK_CHANNELS)}, H, W), got {probs.shape}")
    if method is UncertaintyMethod.SPREAD and spread is None:
        raise ConfigError("uncertainty 'spread' needs the TTA members: predict with tta='flips'")
    out: dict[str, npt.NDArray[np.uint8]] = {}
    for k, name in enumerate(UNCERTAINTY_NAMES.values()):
        if method is UncertaintyMethod.SPREAD:
            out[name] = to_percent(np.asarray(spread)[:, k])
            continue
        # One region at a time keeps the float32 temporaries to one (D, H, W) map each.
        p = np.clip(_region(probs, k), 0.0, 1.0)
        if method is UncertaintyMethod.MARGIN:
            out[name] = to_percent(1.0 - np.abs(2.0 * p - 1.0))
            continue
        h = _entropy_bits(p)
        if method is UncertaintyMethod.MISSED:
            h[np.isin(np.argmax(probs, axis=1), _REGION_CLASSES[k])] = 0.0
        out[name] = to_percent(h)
    return out


# Classes (indices of the probabilities' class axis) that make up WT, TC, ET.
_REGION_CLASSES: Final[tuple[tuple[int, ...], ...]] = ((_NCR, _ED, _ET), (_NCR, _ET), (_ET,))


def _entropy_bits(p: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Binary entropy of ``p`` in bits (0 at p = 0 and p = 1)."""
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log2(p), 0.0) + np.where(q > 0, q * np.log2(q), 0.0))
    return np.asarray(h, dtype=np.float32)


def _region(probs: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.float32]:
    """Region ``k`` (0 WT, 1 TC, 2 ET) of ``(D, 4, H, W)`` probabilities, as ``(D, H, W)`` float32."""
    def ch(c: int) -> npt.NDArray[np.float32]:
        return np.asarray(probs[:, c], dtype=np.float32)

    if k == 0:
        return 1.0 - ch(0)
    return ch(_NCR) + ch(_ET) if k == 1 else ch(_ET)
