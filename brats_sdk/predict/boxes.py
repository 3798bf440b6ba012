"""Brain-box crops for the U-Net: where each slice is cut, which slices share a batch, where
its labels are wanted, and how a crop gets its normalised values.

Each slice's brain box, widened by a margin, is cut from the network's padded frame at
multiples of 32, so that the crop's pooling grid is the full-slice run's; slices whose
crops have one shape share a batch. Labels are wanted in the brain box, or, on a slice
run only because a neighbour holds tumour, in the part of it near that tumour
(:func:`tumour_regions`): the network still sees the whole crop, so the labels there are
those of the whole box, and only its last layers are spared the rest.

A crop is zero outside its slice's brain box (the normalised background is zero), so
only the box is written: from an already normalised volume, or straight from the raw one
with the normalisation's own functions, which gives the same values, bit for bit, as
normalising the whole volume first and costs a quarter of it (the box is about a quarter
of the slice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from brats_sdk.data.crops import STRIDE, Box, box_of, intersect_box, union_box
from brats_sdk.data.normalise import (
    Normalisation,
    NormStats,
    apply_stats,
    compute_stats,
    slice_stats,
)

__all__ = [
    "TUMOUR_MARGIN",
    "CropBatch",
    "SliceFill",
    "copy_fill",
    "grid_span",
    "near_tumour",
    "normalising_fill",
    "plan_crops",
    "tumour_regions",
]

TUMOUR_MARGIN = 32
"""Pixels around the neighbours' tumour box in which a second-pass slice's labels are
computed. A tumour's outline moves a few pixels from one 1 mm slice to the next, so its
extent on a slice lies well inside this margin of its extent one or two slices away;
what falls outside is a speck that no first-pass slice shows, which ``slice_step``
already gives up."""

SliceFill = Callable[[int, Box, npt.NDArray[np.float32]], None]
"""``fill(i, box, out)`` writes slice ``i``'s normalised values in ``box`` into ``out``
``(C, y1 - y0, x1 - x0)``."""


@dataclass(frozen=True, slots=True)
class CropBatch:
    """Slices whose crops have one shape, run through the U-Net together.

    Attributes:
        slices: Slice indices.
        origins: Each crop's first row and column in the network's padded frame.
        boxes: Each slice's brain box, in pixels of the slice.
        rows, cols: The crops' shape (multiples of 32).
        windows: Where each slice's labels are wanted, inside its brain box (the box
            itself unless the slice has a region; never empty).
    """

    slices: tuple[int, ...]
    origins: tuple[tuple[int, int], ...]
    boxes: tuple[Box, ...]
    rows: int
    cols: int
    windows: tuple[Box, ...]

    @property
    def cost(self) -> int:
        """Pixels the U-Net's encoder sees: what its time is about proportional to."""
        return len(self.slices) * self.rows * self.cols


def plan_crops(
    brain: npt.NDArray[np.bool_],
    slices: Sequence[int],
    pad: tuple[int, int, int, int],
    margin: int,
    batch_size: int,
    regions: Mapping[int, Box] | None = None,
) -> list[CropBatch]:
    """Crops of ``slices`` of a ``(D, H, W)`` brain mask, batched, the costliest batch first
    (workers that take batches in this order end at about the same time).

    Args:
        brain: The brain mask.
        slices: The slices to crop (a slice without brain gets the whole slice).
        pad: The network's padding ``(top, bottom, left, right)`` of an ``H x W`` slice.
        margin: Background pixels kept around the brain box before rounding to 32.
        batch_size: Slices per batch at most.
        regions: Per slice, the only part of it where labels are wanted (the crop stays
            the brain box's); a slice without one, or whose region misses its brain
            box, is left out. None: the brain boxes.

    Returns:
        The batches; within a crop shape, slices keep their order.
    """
    _, h, w = brain.shape
    top, bottom, left, right = pad
    frame_h, frame_w = h + top + bottom, w + left + right
    groups: dict[tuple[int, int], list[tuple[int, tuple[int, int], Box, Box]]] = {}
    for i in slices:
        box = box_of(brain[i]) or (0, h, 0, w)
        region = None if regions is None else regions.get(int(i))
        window = box if regions is None else None if region is None else intersect_box(box, region)
        if window is None:
            continue
        r0, r1 = grid_span(box[0] + top, box[1] + top, frame_h, margin)
        c0, c1 = grid_span(box[2] + left, box[3] + left, frame_w, margin)
        groups.setdefault((r1 - r0, c1 - c0), []).append((int(i), (r0, c0), box, window))
    batches = [
        CropBatch(
            slices=tuple(m[0] for m in chunk),
            origins=tuple(m[1] for m in chunk),
            boxes=tuple(m[2] for m in chunk),
            rows=rows,
            cols=cols,
            windows=tuple(m[3] for m in chunk),
        )
        for (rows, cols), members in groups.items()
        for chunk in (members[s : s + batch_size] for s in range(0, len(members), batch_size))
    ]
    return sorted(batches, key=lambda b: -b.cost)


def grid_span(lo: int, hi: int, size: int, margin: int, *, grid: int = STRIDE) -> tuple[int, int]:
    """[lo, hi) widened by ``margin`` and snapped outwards to multiples of ``grid`` within [0, size]."""
    a = max(0, (lo - margin) // grid * grid)
    b = min(size, -(-(hi + margin) // grid) * grid)
    return a, max(b, a + grid)


def copy_fill(normed: npt.NDArray[np.float32]) -> SliceFill:
    """Boxes copied from a normalised ``(D, C, H, W)`` volume."""

    def fill(i: int, box: Box, out: npt.NDArray[np.float32]) -> None:
        out[...] = normed[i, :, box[0] : box[1], box[2] : box[3]]

    return fill


def normalising_fill(raw: npt.NDArray[np.float32], brain: npt.NDArray[np.bool_], rule: Normalisation) -> SliceFill:
    """Boxes normalised from a raw ``(D, C, H, W)`` volume with ``rule``: the values of
    :func:`~brats_sdk.data.normalise.normalise_volume` there, bit for bit (the same
    statistics, then the same elementwise float32 arithmetic on fewer pixels).

    Args:
        raw: Raw intensities, float32.
        brain: Its ``(D, H, W)`` brain mask.
        rule: The segmenter's normalisation.
    """
    volume_stats: NormStats | None = compute_stats(raw) if rule is Normalisation.VOLUME else None

    def fill(i: int, box: Box, out: npt.NDArray[np.float32]) -> None:
        stats = volume_stats if volume_stats is not None else slice_stats(raw[i], brain[i])
        y0, y1, x0, x1 = box
        apply_stats(raw[i, :, y0:y1, x0:x1], stats, brain[i, y0:y1, x0:x1], out=out)

    return fill


def near_tumour(slices: npt.NDArray[np.intp], tumour: npt.NDArray[np.intp], step: int) -> npt.NDArray[np.intp]:
    """The ``slices`` less than ``step`` slices away from a ``tumour`` slice."""
    if slices.size == 0 or tumour.size == 0:
        return slices[:0]
    near: npt.NDArray[np.intp] = slices[np.abs(slices[:, None] - tumour[None, :]).min(axis=1) < step]
    return near


def tumour_regions(
    classes: npt.NDArray[np.uint8],
    slices: npt.NDArray[np.intp],
    tumour: npt.NDArray[np.intp],
    step: int,
    margin: int = TUMOUR_MARGIN,
) -> dict[int, Box]:
    """For each of ``slices``, the box of the tumour on the ``tumour`` slices less than
    ``step`` away (their nonzero ``classes``), widened by ``margin`` within the slice; a
    slice with no such neighbour gets none."""
    _, h, w = classes.shape
    boxes = {int(j): box_of(classes[j] != 0) for j in tumour}
    regions: dict[int, Box] = {}
    for i in slices:
        found = union_box(b for j, b in boxes.items() if abs(j - int(i)) < step)
        if found is not None:
            y0, y1, x0, x1 = found
            regions[int(i)] = (max(0, y0 - margin), min(h, y1 + margin), max(0, x0 - margin), min(w, x1 + margin))
    return regions
