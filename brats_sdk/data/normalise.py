"""Intensity normalisation, done by the SDK itself whatever the source.

The rule (:class:`Normalisation`), used by training and prediction alike, is recorded
in every segmenter checkpoint:

- ``slice`` (the default): per slice and per channel, z-score over the slice's brain
  voxels, background 0. A z-score is unchanged by any positive affine change of the
  intensities it is computed over, so raw NIfTI intensities, ``brats convert`` output
  and the Kaggle h5 release (which stores each slice already z-scored over its whole
  frame, background included) give the network the same input.
- ``volume``: per volume and per channel, z-score over the volume's brain voxels,
  background 0. It depends on how each slice was scaled, so a model trained on one
  release sees other inputs on the other; checkpoints without a recorded rule were
  trained with it.

A voxel is *brain* when any channel is above that channel's minimum on its slice.
On raw NIfTI the minimum is the zero background, so this means "non-zero"; on the
Kaggle h5 release, whose background sits at the slice minimum (a negative value), it
means "above the background". An empty slice (all values equal) has no brain. The
brain mask, too, is unchanged by a positive affine change of a slice's intensities.

Statistics are accumulated from per-slice float64 moments, so a volume loaded whole
and the same volume streamed slice by slice (as the training datasets do) get
bit-identical statistics and inputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from brats_sdk.errors import DataError
from brats_sdk.options import OptionEnum

__all__ = [
    "NormStats",
    "Normalisation",
    "SliceMoments",
    "apply_stats",
    "brain_mask",
    "compute_stats",
    "normalise_slice",
    "normalise_volume",
    "slice_moments",
    "slice_stats",
    "stats_from_moments",
]

_MIN_STD = 1e-6


class Normalisation(OptionEnum):
    """How raw intensities become the network's input (see the module docstring).

    SLICE: per slice and channel, z-score over the slice's brain; the same input from
        raw NIfTI and from the Kaggle release's per-slice-normalised h5.
    VOLUME: per volume and channel, z-score over the volume's brain.
    """

    SLICE = "slice"
    VOLUME = "volume"

    @property
    def description(self) -> str:
        """One line for checkpoints and reports."""
        where = "slice" if self is Normalisation.SLICE else "volume"
        return (
            f"per-{where} per-channel z-score over brain voxels (any channel above its slice "
            "minimum); background 0"
        )



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


def slice_stats(image: npt.NDArray[np.floating], brain: npt.NDArray[np.bool_] | None = None) -> NormStats:
    """Statistics of one ``(C, H, W)`` slice over its own brain voxels."""
    return stats_from_moments((slice_moments(image, brain),), n_channels=image.shape[0])


def normalise_slice(
    image: npt.NDArray[np.floating],
    method: Normalisation,
    *,
    brain: npt.NDArray[np.bool_] | None = None,
    volume_stats: NormStats | None = None,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """Normalise one raw ``(C, H, W)`` slice with ``method``.

    Args:
        image: Raw intensities of the whole slice.
        method: The rule.
        brain: ``brain_mask(image)``, when the caller already has it.
        volume_stats: The slice's volume statistics; needed by ``VOLUME`` only.
        out: float32 array of ``image``'s shape to write into.

    Returns:
        float32 ``(C, H, W)``, background 0.

    Raises:
        DataError: ``VOLUME`` without ``volume_stats``.
    """
    mask = brain_mask(image) if brain is None else brain
    if method is Normalisation.SLICE:
        stats = slice_stats(image, mask)
    elif volume_stats is None:
        raise DataError("volume normalisation needs the volume's statistics")
    else:
        stats = volume_stats
    return apply_stats(image, stats, mask, out=out)


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


def normalise_volume(
    volume: npt.NDArray[np.floating],
    method: Normalisation | str = Normalisation.SLICE,
    *,
    brain: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float32]:
    """Normalise a raw ``(D, C, H, W)`` volume with ``method`` (default: per slice).

    Each slice gets exactly what :func:`normalise_slice` gives it, so a training item and
    the same slice of a predicted volume are bit-identical.

    Args:
        volume: Raw intensities.
        method: The rule (a :class:`Normalisation` or its value).
        brain: ``(D, H, W)`` :func:`brain_mask` of ``volume``, when the caller has it.

    Returns:
        float32 ``(D, C, H, W)``, background 0.

    Raises:
        DataError: The array is not 4-D or holds non-finite values.
        ConfigError: An unknown method.
    """
    rule = Normalisation.parse(method)
    if volume.ndim != 4:
        raise DataError(f"expected a volume (D, C, H, W), got shape {volume.shape}")
    if not np.isfinite(volume).all():
        raise DataError("volume holds NaN or infinite values")
    mask = brain_mask(volume) if brain is None else brain
    if rule is Normalisation.VOLUME:
        return apply_stats(volume, compute_stats(volume), mask)
    out = np.empty(volume.shape, dtype=np.float32)
    for d in range(volume.shape[0]):
        normalise_slice(volume[d], rule, brain=mask[d], out=out[d])
    return out
