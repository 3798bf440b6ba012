"""Where the U-Net looks during training: random windows and the brain box.

A 240x240 slice costs the U-Net about 11 GFLOP (it pads to 256x256), and most of it is
background: the brain fills a box of about 136x176 pixels and the tumour much less.
Training on windows at native resolution (no resizing, so the network sees tumours at
the scale it will predict them) spends the work where the labels are; validating on the
brain box of the validation slices is what prediction does (it crops to the brain too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from brats_sdk.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "STRIDE",
    "RandomCrops",
    "Window",
    "box_of",
    "intersect_box",
    "random_window",
    "stride_padding",
    "union_box",
    "window_around",
]

# The U-Net downsamples five times: windows that are multiples of 32 need no padding.
STRIDE = 32

_T = TypeVar("_T", bound=np.generic)

Box = tuple[int, int, int, int]
"""``(y0, y1, x0, x1)``, half-open, in pixels of the slice."""


def stride_padding(height: int, width: int) -> tuple[int, int, int, int]:
    """Zero padding ``(top, bottom, left, right)`` that takes an ``height x width`` slice to
    multiples of :data:`STRIDE`, split evenly, the extra pixel at the bottom/right (what
    the segmenter adds before its U-Net; prediction without torch pads the same way)."""
    pad_h, pad_w = -height % STRIDE, -width % STRIDE
    return pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2


@dataclass(frozen=True, slots=True)
class Window:
    """A rectangle of a slice, ``rows [y0, y1) x cols [x0, x1)``, inside the slice."""

    y0: int
    y1: int
    x0: int
    x1: int

    def cut(self, array: npt.NDArray[_T]) -> npt.NDArray[_T]:
        """The window of ``array`` (``(..., H, W)``), copied contiguous."""
        return np.ascontiguousarray(array[..., self.y0 : self.y1, self.x0 : self.x1])


def box_of(mask: npt.NDArray[np.bool_]) -> Box | None:
    """Bounding box of the true pixels of a 2-D mask, or None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def union_box(boxes: Iterable[Box | None]) -> Box | None:
    """The smallest box holding every given box (None entries are skipped)."""
    found = [b for b in boxes if b is not None]
    if not found:
        return None
    return min(b[0] for b in found), max(b[1] for b in found), min(b[2] for b in found), max(b[3] for b in found)


def intersect_box(a: Box, b: Box) -> Box | None:
    """The pixels two boxes share, or None when they share none."""
    box = (max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3]))
    return box if box[0] < box[1] and box[2] < box[3] else None


def _span(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    """A span of ``min(size, limit)`` pixels centred on [lo, hi) and moved inside [0, limit)."""
    size = min(size, limit)
    start = (lo + hi - size) // 2
    start = min(max(start, 0), limit - size)
    return start, start + size


def window_around(box: Box | None, *, height: int, width: int, margin: int = 16) -> Window:
    """A window holding ``box`` plus ``margin``, each side a multiple of :data:`STRIDE`
    where the slice allows, inside the slice; the whole slice when ``box`` is None.
    """
    if box is None:
        return Window(0, height, 0, width)
    y0, y1, x0, x1 = box
    rows = -(-(y1 - y0 + 2 * margin) // STRIDE) * STRIDE
    cols = -(-(x1 - x0 + 2 * margin) // STRIDE) * STRIDE
    ra, rb = _span(y0, y1, rows, height)
    ca, cb = _span(x0, x1, cols, width)
    return Window(ra, rb, ca, cb)


def random_window(
    *,
    height: int,
    width: int,
    size: int,
    centres: npt.NDArray[np.bool_] | None,
    generator: torch.Generator | None = None,
) -> Window:
    """A ``size x size`` window (clipped to the slice) holding a random true pixel of
    ``centres`` at a random place (so the network cannot learn that tumour sits in the
    middle of its input), or anywhere in the slice when ``centres`` is None or empty.

    Randomness comes from torch's generator (the global one by default), which the
    training loop seeds per epoch and saves in its checkpoints, so resumed runs draw
    the same windows.
    """
    import torch  # training-only: prediction without torch imports this module too

    if size < 1:
        raise ConfigError(f"crop size must be >= 1, got {size}")
    rows, cols = min(size, height), min(size, width)
    candidates = np.flatnonzero(centres) if centres is not None else np.zeros(0, dtype=np.intp)
    if candidates.size:
        pick = int(candidates[int(torch.randint(candidates.size, (1,), generator=generator))])
        cy, cx = divmod(pick, width)
        dy, dx = (int(v) for v in torch.randint(0, 1 << 30, (2,), generator=generator))
        y0 = min(max(cy - dy % rows, 0), height - rows)
        x0 = min(max(cx - dx % cols, 0), width - cols)
    else:
        y0 = int(torch.randint(height - rows + 1, (1,), generator=generator))
        x0 = int(torch.randint(width - cols + 1, (1,), generator=generator))
    return Window(y0, y0 + rows, x0, x0 + cols)


@dataclass(frozen=True, slots=True)
class RandomCrops:
    """Training windows of ``size x size`` at native resolution.

    With probability ``tumour_prob`` a window of a slice with tumour holds a random
    tumour pixel, otherwise a random brain pixel (anywhere on a slice without
    brain), so the network sees tumour borders and healthy tissue alike.
    """

    size: int
    tumour_prob: float = 0.8

    def __post_init__(self) -> None:
        if self.size < STRIDE:
            raise ConfigError(f"crop size must be at least {STRIDE}, got {self.size}")
        if not 0.0 <= self.tumour_prob <= 1.0:
            raise ConfigError(f"tumour_prob must be in [0, 1], got {self.tumour_prob}")

    def window(self, *, brain: npt.NDArray[np.bool_], tumour: npt.NDArray[np.bool_]) -> Window:
        """A window for a slice with these ``(H, W)`` brain and tumour masks."""
        import torch  # training-only: prediction without torch imports this module too

        h, w = brain.shape
        on_tumour = bool(tumour.any()) and float(torch.rand(())) < self.tumour_prob
        return random_window(height=h, width=w, size=self.size, centres=tumour if on_tumour else brain)
