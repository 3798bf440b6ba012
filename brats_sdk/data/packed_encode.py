"""Encoding one volume for the packed format (:mod:`brats_sdk.data.packed`): its brain box,
image (float32, or float16 offsets from each slice's minimum), minima, classes and
moments, checked by decoding every slice with the reader's own code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from brats_sdk.data.normalise import brain_mask, slice_moments
from brats_sdk.data.packed_codec import F32, U8, Box, as_float32, decode_slice
from brats_sdk.data.records import VolumeRecord
from brats_sdk.errors import DataError
from brats_sdk.labels import one_hot_to_classes

__all__ = ["Encoded", "encode"]

_FLOAT16_MAX: Final[float] = float(np.finfo(np.float16).max)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One volume as the packed file stores it (see :mod:`brats_sdk.data.packed`)."""

    box: Box
    image: npt.NDArray[np.floating]
    minimum: F32
    classes: U8 | None
    count: npt.NDArray[np.int64]
    total: npt.NDArray[np.float64]
    total_sq: npt.NDArray[np.float64]


def _box(brain: npt.NDArray[np.bool_], labelled: npt.NDArray[np.bool_] | None) -> Box:
    """The box of the voxels that hold brain or a label, ``(D, H, W)``; one voxel if none."""
    keep = brain if labelled is None else brain | labelled
    zs = np.flatnonzero(keep.any(axis=(1, 2)))
    if zs.size == 0:
        return Box(0, 1, 0, 1, 0, 1)  # an empty volume: one stored voxel keeps one code path
    ys = np.flatnonzero(keep.any(axis=(0, 2)))
    xs = np.flatnonzero(keep.any(axis=(0, 1)))
    return Box(int(zs[0]), int(zs[-1]) + 1, int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1)


def _half_offsets(x: F32, m: F32, brain: npt.NDArray[np.bool_], volume: int, s: int) -> npt.NDArray[np.float16]:
    """``x - m`` as float16 (``x``: one slice's box ``(C, h, w)``, ``m``: its ``(C, 1, 1)``
    minima), with every brain voxel still above the minimum once decoded.

    Raises:
        DataError: A distance from the minimum beyond the float16 range.
    """
    distance = x.astype(np.float64) - m.astype(np.float64)
    peak = float(distance.max(initial=0.0))
    if peak > _FLOAT16_MAX:
        raise DataError(
            f"volume {volume}: slice {s} spans {peak:g} above its minimum, beyond the float16 "
            f"range ({_FLOAT16_MAX:g}); pack with float32"
        )
    offsets = distance.astype(np.float16)
    decoded = as_float32(offsets) + m
    lost = brain & ~(decoded > m).any(axis=0)
    if lost.any():
        # A distance that rounds to nothing would make a brain voxel background: each
        # channel that was above its minimum there gets the least step that stays above.
        for c in range(x.shape[0]):
            where = lost & (x[c] > m[c])
            offsets[c][where] = np.maximum(offsets[c][where], _least_step(float(m[c, 0, 0])))
    return offsets


def _least_step(m: float) -> np.float16:
    """The smallest float16 ``q > 0`` with ``float32(q) + m > m`` in float32."""
    m32 = np.float32(m)
    step = np.float16(abs(float(np.spacing(m32))))
    while np.isfinite(step) and not np.float32(step) + m32 > m32:
        step = np.nextafter(step, np.float16(np.inf))
    return step


def encode(rec: VolumeRecord, image_dtype: str) -> Encoded:
    """Encode a volume and check, slice by slice, that decoding gives back its brain masks,
    minima and (float32) values; the moments are those of the decoded slices.

    Raises:
        DataError: The volume cannot be stored as ``image_dtype`` (float16 range), or a
            decoded slice would differ (the message names it).
    """
    v = rec.info.volume
    image = rec.image
    d, c, rows, cols = image.shape
    minimum = np.ascontiguousarray(image.min(axis=(2, 3)), dtype=np.float32)
    brain = brain_mask(image)
    labelled = None if rec.mask is None else np.asarray(rec.mask.any(axis=1), dtype=np.bool_)
    box = _box(brain, labelled)
    y, x = slice(box.y0, box.y1), slice(box.x0, box.x1)
    dtype = np.float16 if image_dtype == "float16" else np.float32
    stored = np.empty((box.z1 - box.z0, c, box.y1 - box.y0, box.x1 - box.x0), dtype=dtype)
    count = np.zeros(d, dtype=np.int64)
    total = np.zeros((d, c), dtype=np.float64)
    total_sq = np.zeros((d, c), dtype=np.float64)
    for s in range(d):
        inner: npt.NDArray[np.floating] | None = None
        if box.holds(s):
            inner = stored[s - box.z0]
            if dtype == np.float16:
                m = minimum[s].reshape(-1, 1, 1)
                inner[...] = _half_offsets(image[s][:, y, x], m, brain[s][y, x], v, s)
            else:
                inner[...] = image[s][:, y, x]
        decoded, decoded_brain = decode_slice(inner, minimum[s], box, (rows, cols))
        if (
            not np.array_equal(decoded_brain, brain[s])
            or not np.array_equal(decoded.min(axis=(1, 2)), minimum[s])
            or not np.isfinite(decoded).all()
        ):
            raise DataError(
                f"volume {v}: slice {s} would change its brain mask once packed as "
                f"{image_dtype}; pack with float32"
            )
        if dtype == np.float32 and not np.array_equal(decoded, image[s]):
            raise DataError(f"volume {v}: slice {s} would change once packed")
        mom = slice_moments(decoded, decoded_brain)
        count[s], total[s], total_sq[s] = mom.count, mom.total, mom.total_sq
    classes = None
    if rec.mask is not None:
        classes = one_hot_to_classes(rec.mask[box.z0 : box.z1, :, y, x])
    return Encoded(box, stored, minimum, classes, count, total, total_sq)
