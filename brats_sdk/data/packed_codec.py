"""The packed layout's codec, shared by the writer (:mod:`brats_sdk.data.packed_writer`, which checks
its output with it) and the reader (:mod:`brats_sdk.data.packed`, where the format is
described): how a stored brain box becomes a full-frame slice again.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import IMAGE_CHANNELS, MASK_CHANNELS
from brats_sdk.data.normalise import slice_moments

__all__ = ["Box", "as_float32", "decode_slice", "moments_probe", "one_hot_into"]

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
Bool2D = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Box:
    """Slices ``[z0, z1)``, rows ``[y0, y1)`` and columns ``[x0, x1)`` of a volume."""

    z0: int
    z1: int
    y0: int
    y1: int
    x0: int
    x1: int

    def holds(self, s: int) -> bool:
        """Whether slice ``s`` is in the box."""
        return self.z0 <= s < self.z1


def decode_slice(
    stored: npt.NDArray[np.floating] | None, minimum: F32, box: Box, shape: tuple[int, int]
) -> tuple[F32, Bool2D]:
    """The full-frame slice and its brain mask from the stored box of one slice.

    Args:
        stored: ``(C, y1 - y0, x1 - x0)`` float32 values or float16 offsets above
            ``minimum``; None for a slice outside the box.
        minimum: ``(C,)`` the slice's minima.
        box: The volume's box.
        shape: ``(H, W)`` of the frame.

    Returns:
        Image ``(C, H, W)`` float32 and brain ``(H, W)`` bool, the brain being
        :func:`~brats_sdk.data.normalise.brain_mask` of the image (every value outside the
        box is the minimum, so only the box is tested).
    """
    h, w = shape
    m = minimum.reshape(-1, 1, 1)
    image = np.empty((minimum.shape[0], h, w), dtype=np.float32)
    brain = np.zeros((h, w), dtype=np.bool_)
    if stored is None:
        image[...] = m
        return image, brain
    y0, y1, x0, x1 = box.y0, box.y1, box.x0, box.x1
    # Only the frame around the box is filled: the box is written once, below.
    image[:, :y0] = m
    image[:, y1:] = m
    image[:, y0:y1, :x0] = m
    image[:, y0:y1, x1:] = m
    inner = image[:, y0:y1, x0:x1]
    if stored.dtype == np.float16:
        np.take(_float16_table(), stored.view(np.uint16), out=inner, mode="clip")
        inner += m
    else:
        inner[...] = stored
    np.any(inner > m, axis=0, out=brain[y0:y1, x0:x1])
    return image, brain


@functools.cache
def _float16_table() -> F32:
    """float32 value of every float16 bit pattern: a lookup in it is cheaper than numpy's
    own conversion, and unlike torch's conversion it never starts a thread pool."""
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


@functools.cache
def moments_probe() -> str:
    """:func:`~brats_sdk.data.normalise.slice_moments` of a fixed slice, exactly, as text.

    Stored in every packed file: a reader (or packer) whose normalisation code gives
    another text recomputes the moments instead of trusting the stored ones.
    """
    rng = np.random.default_rng(20260)
    image = (rng.standard_normal((len(IMAGE_CHANNELS), 64, 64)) * 3.0 + 1.0).astype(np.float32)
    image[:, :, :12] = image.min(axis=(1, 2), keepdims=True)  # background columns
    image[1, 30:40, 30:40] = image[1].min()  # brain voxels at one channel's minimum
    m = slice_moments(image)
    return json.dumps([m.count, [x.hex() for x in m.total], [x.hex() for x in m.total_sq]])


def as_float32(a: npt.NDArray[np.floating]) -> F32:
    """``a`` as float32 (exact for float16), without a copy when it already is."""
    if a.dtype == np.float32:
        return cast(F32, a)
    if a.dtype != np.float16:
        return a.astype(np.float32)
    out: F32 = np.take(_float16_table(), a.view(np.uint16))
    return out


def one_hot_into(classes: U8, out: U8, *, axis: int) -> None:
    """Write the one-hot of ``classes`` into ``out``, whose ``axis`` is the mask channel."""
    for k in range(len(MASK_CHANNELS)):
        channel = out[(slice(None),) * axis + (k,)]  # a view, written in place
        np.equal(classes, k + 1, out=channel.view(np.bool_))
