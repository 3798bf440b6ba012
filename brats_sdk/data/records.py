"""Frozen records that cross module boundaries in the data layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from brats_sdk.data.normalise import SliceMoments

__all__ = ["SliceRecord", "VolumeInfo", "VolumeRecord"]

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class SliceRecord:
    """One axial slice.

    Attributes:
        volume: Volume number (V in ``volume_<V>_slice_<S>.h5``).
        index: Slice index S within the volume (0-based, axial).
        image: ``(4, H, W)`` float32, channels in :data:`~brats_sdk.constants.IMAGE_CHANNELS`.
        mask: ``(3, H, W)`` uint8 one-hot in :data:`~brats_sdk.constants.MASK_CHANNELS`,
            or None when the source has no labels.
        brain: ``(H, W)`` bool, :func:`~brats_sdk.data.normalise.brain_mask` of ``image``,
            when the source stores what gives it cheaply (the packed layout); else None.
        classes: ``(H, W)`` uint8 class indices 0..3,
            :func:`~brats_sdk.labels.one_hot_to_classes` of ``mask``, when the source
            stores them; else None.
        moments: :func:`~brats_sdk.data.normalise.slice_moments` of ``image`` over
            ``brain``, when the source stores them; else None.
    """

    volume: int
    index: int
    image: FloatArray = field(repr=False)
    mask: UInt8Array | None = field(repr=False)
    brain: BoolArray | None = field(default=None, repr=False)
    classes: UInt8Array | None = field(default=None, repr=False)
    moments: SliceMoments | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """What a source knows about a volume without loading it.

    Attributes:
        volume: Volume number.
        name: Human-readable case name (patient id or case folder name).
        n_slices: Number of axial slices present.
        missing_slices: Slice indices absent from a gap-free 0..max range.
        has_mask: Whether ground-truth masks exist.
        spacing: Voxel spacing in mm as (slice, row, column).
    """

    volume: int
    name: str
    n_slices: int
    missing_slices: tuple[int, ...] = ()
    has_mask: bool = True
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    """One whole volume, channels-first per slice.

    Attributes:
        info: The volume's :class:`VolumeInfo`.
        image: ``(D, 4, H, W)`` float32, raw intensities (not yet normalised by the SDK).
        mask: ``(D, 3, H, W)`` uint8 one-hot, or None.
    """

    info: VolumeInfo
    image: FloatArray = field(repr=False)
    mask: UInt8Array | None = field(repr=False)
