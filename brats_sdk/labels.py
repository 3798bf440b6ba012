"""Conversions between the three label encodings the SDK meets.

- one-hot masks ``(..., 3, H, W)`` in :data:`~brats_sdk.constants.MASK_CHANNELS` order
  (the h5 release; never overlapping),
- class indices ``(..., H, W)`` in 0..3 (0 background, then the mask channels),
  which the segmenter predicts,
- BraTS labels ``(..., H, W)`` in {0, 1, 2, 4} (NIfTI release, evaluation).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import MASK_LABELS, N_CLASSES
from brats_sdk.errors import DataError

__all__ = [
    "classes_to_labels",
    "classes_to_one_hot",
    "labels_to_classes",
    "one_hot_to_classes",
]

_CLASS_TO_LABEL = np.array((0, *MASK_LABELS), dtype=np.uint8)


def one_hot_to_classes(mask: npt.NDArray[np.uint8], *, channel_axis: int = -3) -> npt.NDArray[np.uint8]:
    """One-hot ``(..., 3, H, W)`` -> class indices ``(..., H, W)``; all-zero pixels become 0.

    Raises:
        DataError: Two channels are set on the same pixel.
    """
    m = np.moveaxis(np.asarray(mask), channel_axis, 0)
    if m.shape[0] != N_CLASSES - 1:
        raise DataError(f"mask has {m.shape[0]} channels, expected {N_CLASSES - 1}")
    # uint8 arithmetic over whole planes rather than boolean indexing per channel: every
    # training sample goes through here.
    on = (m != 0).view(np.uint8)
    if on.sum(axis=0, dtype=np.uint8).max(initial=0) > 1:
        raise DataError("mask channels overlap: a pixel belongs to more than one region")
    classes: npt.NDArray[np.uint8] = on[0].copy()
    for c in range(1, m.shape[0]):
        classes += on[c] * np.uint8(c + 1)
    return classes


def classes_to_one_hot(classes: npt.NDArray[np.integer], *, channel_axis: int = -3) -> npt.NDArray[np.uint8]:
    """Class indices ``(..., H, W)`` -> one-hot ``(..., 3, H, W)`` uint8 (background dropped)."""
    c = np.asarray(classes)
    out = np.stack([(c == k + 1) for k in range(N_CLASSES - 1)], axis=-1).astype(np.uint8)
    return np.moveaxis(out, -1, channel_axis)


def classes_to_labels(classes: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """Class indices 0..3 -> BraTS labels {0, 1, 2, 4} (uint8).

    Raises:
        DataError: A value outside 0..3 is present.
    """
    c = np.asarray(classes)
    if c.size and (int(c.max()) >= N_CLASSES or int(c.min()) < 0):
        raise DataError(f"class indices must be in 0..{N_CLASSES - 1}, got {int(c.min())}..{int(c.max())}")
    if c.dtype == np.uint8:  # a whole volume: a uint8 lookup, not a 64-bit index array (8x the bytes)
        return np.take(_CLASS_TO_LABEL, c)
    return _CLASS_TO_LABEL[c.astype(np.intp)]


def labels_to_classes(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """BraTS labels {0, 1, 2, 4} -> class indices 0..3.

    Raises:
        DataError: A value outside {0, 1, 2, 4} is present.
    """
    lab = np.asarray(labels)
    allowed = (0, *MASK_LABELS)
    bad = np.setdiff1d(np.unique(lab), allowed)
    if bad.size:
        raise DataError(f"labels {bad.tolist()} are not BraTS labels {list(allowed)}")
    out = np.zeros(lab.shape, dtype=np.uint8)
    for k, value in enumerate(MASK_LABELS, start=1):
        out[lab == value] = k
    return out
