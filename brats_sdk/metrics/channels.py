"""The paper's segmentation metric: per-channel Dice pooled over slices, and a confusion matrix.

Inputs are class-index maps (0 background, then NCR, ED, ET as in
:data:`~brats_sdk.constants.MASK_CHANNELS`) of any shape, e.g. ``(H, W)``,
``(S, H, W)`` or ``(B, H, W)``. Pooled Dice for channel ``c`` is
``2 * sum(|P_c & T_c|) / (sum(|P_c|) + sum(|T_c|))`` over every given pixel, not
a mean of per-slice Dice values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import MASK_CHANNELS, N_CLASSES
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.metrics._arrays import as_array, check_same_shape

__all__ = [
    "SegmentationAccumulator",
    "SegmentationResult",
    "channel_dice",
    "dice_from_confusion",
    "pixel_confusion",
]


def _check_classes(classes: npt.NDArray[Any], name: str, n_classes: int) -> npt.NDArray[np.int64]:
    if classes.size == 0:
        return classes.astype(np.int64)
    if not (np.issubdtype(classes.dtype, np.integer) or classes.dtype == np.bool_):
        raise DataError(f"{name} must hold integer class indices, got dtype {classes.dtype}")
    lo, hi = int(classes.min()), int(classes.max())
    if lo < 0 or hi >= n_classes:
        raise DataError(f"{name} holds class indices in [{lo}, {hi}], expected 0..{n_classes - 1}")
    return classes.astype(np.int64, copy=False)


def pixel_confusion(
    pred_classes: npt.ArrayLike,
    truth_classes: npt.ArrayLike,
    n_classes: int = N_CLASSES,
) -> npt.NDArray[np.int64]:
    """Pixel confusion matrix of two class-index maps.

    Args:
        pred_classes: Predicted class indices, any shape, values in ``0..n_classes-1``.
        truth_classes: Reference class indices of the same shape.
        n_classes: Number of classes (4: background, NCR, ED, ET).

    Returns:
        ``(n_classes, n_classes)`` int64 counts; rows are truth, columns prediction.
        Empty inputs (no pixels) give an all-zero matrix.

    Raises:
        ConfigError: ``n_classes`` < 1.
        DataError: Shapes differ, non-integer input or an index out of range.
    """
    if n_classes < 1:
        raise ConfigError(f"n_classes must be at least 1, got {n_classes}")
    pred, truth = as_array(pred_classes), as_array(truth_classes)
    check_same_shape(pred, truth, "pixel_confusion")
    p = _check_classes(pred, "pred_classes", n_classes).ravel()
    t = _check_classes(truth, "truth_classes", n_classes).ravel()
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return counts.astype(np.int64).reshape(n_classes, n_classes)


def dice_from_confusion(confusion: npt.ArrayLike) -> dict[str, float]:
    """Pooled Dice per tumour channel from a 4x4 confusion matrix (rows truth, cols pred).

    Args:
        confusion: ``(4, 4)`` counts as returned by :func:`pixel_confusion`.

    Returns:
        ``{"NCR": d, "ED": d, "ET": d}``; a channel absent from both truth and
        prediction (empty labels) scores 1.0, absent from one only scores 0.0.

    Raises:
        DataError: The matrix is not ``(4, 4)``.
    """
    cm = as_array(confusion)
    if cm.shape != (N_CLASSES, N_CLASSES):
        raise DataError(f"confusion matrix shape {cm.shape}, expected {(N_CLASSES, N_CLASSES)}")
    out: dict[str, float] = {}
    for c, name in enumerate(MASK_CHANNELS, start=1):
        total = int(cm[c, :].sum()) + int(cm[:, c].sum())
        out[name] = 1.0 if total == 0 else 2.0 * int(cm[c, c]) / total
    return out


def channel_dice(pred_classes: npt.ArrayLike, truth_classes: npt.ArrayLike) -> dict[str, float]:
    """Pooled Dice per tumour channel (NCR, ED, ET) over all given pixels (the paper's metric).

    Args:
        pred_classes: Predicted class indices 0..3, any shape such as ``(S, H, W)``.
        truth_classes: Reference class indices of the same shape.

    Returns:
        ``{"NCR": d, "ED": d, "ET": d}``; a channel empty in both -> 1.0, in one -> 0.0.

    Raises:
        DataError: Shapes differ, non-integer input or an index outside 0..3.
    """
    return dice_from_confusion(pixel_confusion(pred_classes, truth_classes, N_CLASSES))


@dataclass(frozen=True, slots=True)
class SegmentationResult:
    """Pooled segmentation scores of everything an accumulator has seen.

    Attributes:
        channel_dice: Pooled Dice per channel (``NCR``, ``ED``, ``ET``); 1.0 for a
            channel empty in truth and prediction, 0.0 when empty in one only.
        confusion: ``(4, 4)`` int64 pixel counts, rows truth, columns prediction.
    """

    channel_dice: dict[str, float]
    confusion: npt.NDArray[np.int64]

    @property
    def mean_dice(self) -> float:
        """Unweighted mean of the three channel Dice values."""
        return float(np.mean(list(self.channel_dice.values())))

    @property
    def n_pixels(self) -> int:
        """Number of pixels accumulated."""
        return int(self.confusion.sum())


class SegmentationAccumulator:
    """Streaming version of :func:`channel_dice` and :func:`pixel_confusion`.

    Holds only a 4x4 count matrix, so an evaluation over many volumes never keeps
    the volumes. ``result()`` after a series of ``update`` calls equals the one-shot
    functions applied to the concatenation of all inputs.

    Example:
        >>> acc = SegmentationAccumulator()
        >>> for pred, truth in batches:  # doctest: +SKIP
        ...     acc.update(pred, truth)
        >>> acc.result().channel_dice  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._confusion = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)

    def update(self, pred_classes: npt.ArrayLike, truth_classes: npt.ArrayLike) -> None:
        """Add a batch of class-index maps (any shape, equal shapes, values 0..3).

        Raises:
            DataError: Shapes differ, non-integer input or an index outside 0..3;
                the accumulator is left unchanged.
        """
        self._confusion += pixel_confusion(pred_classes, truth_classes, N_CLASSES)

    def reset(self) -> None:
        """Forget everything accumulated."""
        self._confusion[:] = 0

    def result(self) -> SegmentationResult:
        """Scores so far; before any update every channel is empty in both, so Dice 1.0."""
        cm = self._confusion.copy()
        return SegmentationResult(channel_dice=dice_from_confusion(cm), confusion=cm)
