"""Intensity normalisation, done by the SDK itself whatever the source.

The one rule, used by training and prediction alike: per volume and per channel,
z-score over the brain voxels, with background set to 0.

A voxel is *brain* when any channel is above that channel's minimum on its slice.
On raw NIfTI the minimum is the zero background, so this means "non-zero"; on the
Kaggle h5 release, already normalised per slice so that the background sits at the
slice minimum (a negative value), it means "above the background". An empty slice
(all values equal) has no brain.

Statistics are accumulated from per-slice float64 moments summed in slice order, so
a volume loaded whole and the same volume streamed slice by slice (as the training
datasets do) get bit-identical statistics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from brats_sdk.errors import DataError

__all__ = [
    "NormStats",
    "SliceMoments",
    "apply_stats",
    "brain_mask",
    "compute_stats",
    "normalise_volume",
    "slice_moments",
    "stats_from_moments",
]

_MIN_STD = 1e-6


@dataclass(frozen=True, slots=True)
class NormStats:
    """Per-channel mean and standard deviation over a volume's brain voxels."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> NormStats:
        return cls(tuple(float(x) for x in d["mean"]), tuple(float(x) for x in d["std"]))


@dataclass(frozen=True, slots=True)
class SliceMoments:
    """Brain-voxel count and per-channel sums of one slice (float64)."""

    count: int
    total: tuple[float, ...]
    total_sq: tuple[float, ...]


def brain_mask(image: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """Brain voxels of one slice or a stack of slices.

    Args:
        image: ``(C, H, W)`` or ``(D, C, H, W)``.

    Returns:
        ``(H, W)`` or ``(D, H, W)`` bool: any channel above its own slice minimum.
    """
    if image.ndim not in (3, 4):
        raise DataError(f"expected an image (C, H, W) or (D, C, H, W), got shape {image.shape}")
    mins = image.min(axis=(-2, -1), keepdims=True)
    return np.asarray((image > mins).any(axis=-3), dtype=np.bool_)


def slice_moments(image: npt.NDArray[np.floating], brain: npt.NDArray[np.bool_] | None = None) -> SliceMoments:
    """Moments of one ``(C, H, W)`` slice over its brain voxels (``brain``: its
    :func:`brain_mask`, when the caller already has it)."""
    mask = brain_mask(image) if brain is None else brain
    vals = image[:, mask].astype(np.float64)
    return SliceMoments(
        count=int(mask.sum()),
        total=tuple(float(x) for x in vals.sum(axis=1)),
        total_sq=tuple(float(x) for x in (vals * vals).sum(axis=1)),
    )


def stats_from_moments(moments: Iterable[SliceMoments], n_channels: int = 4) -> NormStats:
    """Combine per-slice moments (in slice order) into a volume's statistics.

    A volume with no brain voxel gets mean 0 and std 1 (its output is all zero anyway).
    """
    count = 0
    total = np.zeros(n_channels, dtype=np.float64)
    total_sq = np.zeros(n_channels, dtype=np.float64)
    for m in moments:
        count += m.count
        total += np.asarray(m.total, dtype=np.float64)
        total_sq += np.asarray(m.total_sq, dtype=np.float64)
    if count == 0:
        return NormStats((0.0,) * n_channels, (1.0,) * n_channels)
    mean = total / count
    var = np.maximum(total_sq / count - mean * mean, 0.0)
    std = np.maximum(np.sqrt(var), _MIN_STD)
    return NormStats(tuple(float(x) for x in mean), tuple(float(x) for x in std))


def compute_stats(volume: npt.NDArray[np.floating]) -> NormStats:
    """Statistics of a ``(D, C, H, W)`` volume."""
    if volume.ndim != 4:
        raise DataError(f"expected a volume (D, C, H, W), got shape {volume.shape}")
    return stats_from_moments((slice_moments(s) for s in volume), n_channels=volume.shape[1])


def apply_stats(
    image: npt.NDArray[np.floating],
    stats: NormStats,
    brain: npt.NDArray[np.bool_] | None = None,
    *,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """Z-score ``image`` (``(C, H, W)`` or ``(D, C, H, W)``) with ``stats``; background -> 0.

    Args:
        image: Raw intensities.
        stats: The volume's statistics.
        brain: ``brain_mask(image)``, when the caller already has it.
        out: float32 array of ``image``'s shape to write into (a batch buffer: a fresh
            array per sample costs more in page faults than the arithmetic).

    Returns:
        float32 array of the same shape (``out`` when given).
    """
    mask = brain_mask(image) if brain is None else brain
    # float32 arithmetic: statistics are float64, the per-voxel work need not be.
    mean = np.asarray(stats.mean, dtype=np.float32).reshape(-1, 1, 1)
    inv_std = (1.0 / np.asarray(stats.std, dtype=np.float64)).astype(np.float32).reshape(-1, 1, 1)
    if out is None:
        out = np.empty(image.shape, dtype=np.float32)
    np.subtract(image, mean, out=out, dtype=np.float32)
    out *= inv_std
    out *= np.expand_dims(mask, axis=-3)
    return out


def normalise_volume(volume: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Normalise a raw ``(D, C, H, W)`` volume: per channel z-score over brain, background 0.

    Raises:
        DataError: The array is not 4-D or holds non-finite values.
    """
    if volume.ndim != 4:
        raise DataError(f"expected a volume (D, C, H, W), got shape {volume.shape}")
    if not np.isfinite(volume).all():
        raise DataError("volume holds NaN or infinite values")
    return apply_stats(volume, compute_stats(volume))
