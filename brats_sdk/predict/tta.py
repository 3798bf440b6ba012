"""Test-time augmentation and class probabilities of the U-Net.

With ``tta="flips"`` every batch runs four times, as it is, mirrored left-right, mirrored
anterior-posterior (the slice's two in-plane axes) and mirrored along both; each softmax
is mirrored back before the four are averaged, and the labels are the average's argmax.
What runs is the same crop (or slice) the plain path runs, so the brain boxes, skipped
slices, bf16 and ONNX paths all take TTA unchanged. Without TTA and without probabilities
the runner calls the networks' label methods, so the labels stay those of the plain pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from brats_sdk.constants import N_CLASSES
from brats_sdk.options import TTA
from brats_sdk.predict.networks import PredictionNetworks
from brats_sdk.predict.uncertainty import region_probabilities

__all__ = ["MIRRORINGS", "UnetOutputs", "UnetRunner", "VolumeOutputs", "softmax"]

#: The in-plane mirrorings of ``flips`` as the axes of a ``(B, C, H, W)`` batch they reverse.
MIRRORINGS: Final[tuple[tuple[int, ...], ...]] = ((), (-1,), (-2,), (-2, -1))

Span = tuple[int, int]


def softmax(logits: npt.NDArray[np.floating], axis: int = 1) -> npt.NDArray[np.float32]:
    """Softmax of ``logits`` along ``axis``, in float32."""
    x = np.asarray(logits, dtype=np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out: npt.NDArray[np.float32] = e / e.sum(axis=axis, keepdims=True)
    return out


@dataclass(frozen=True, slots=True)
class UnetOutputs:
    """What the U-Net gives for a batch of ``B`` slices or crops, in a window ``r x c``.

    Attributes:
        labels: ``(B, r, c)`` uint8 class indices.
        probs: ``(B, 4, r, c)`` float32 class probabilities (background, NCR, ED, ET), or None.
        spread: ``(B, 3, r, c)`` float32 range of the WT, TC, ET probabilities over the TTA
            members, or None.
    """

    labels: npt.NDArray[np.uint8]
    probs: npt.NDArray[np.float32] | None = None
    spread: npt.NDArray[np.float32] | None = None


class UnetRunner:
    """The U-Net of ``nets`` with or without TTA, keeping what the caller asks for.

    Args:
        nets: The networks.
        tta: ``none`` or ``flips``.
        probabilities: Return class probabilities.
        spread: Return the TTA members' per-region range (needs ``flips``).
    """

    def __init__(self, nets: PredictionNetworks, *, tta: TTA, probabilities: bool, spread: bool) -> None:
        self._nets = nets
        self._mirrorings = MIRRORINGS if tta is TTA.FLIPS else MIRRORINGS[:1]
        self._probabilities = probabilities
        self._spread = spread and tta is TTA.FLIPS
        self.plain = tta is TTA.NONE and not probabilities

    def crops(self, images: npt.NDArray[np.float32], rows: Span, cols: Span) -> UnetOutputs:
        """Outputs of a batch of crops ``(B, C, H, W)`` (sides multiples of 32) in the window ``rows x cols``."""
        if self.plain:
            return UnetOutputs(self._nets.unet_labels(images, rows, cols))
        h, w = images.shape[-2:]

        def logits(axes: tuple[int, ...]) -> npt.NDArray[np.float32]:
            return self._nets.unet_logits(_flip(images, axes), _span(rows, h, -2 in axes), _span(cols, w, -1 in axes))

        return self._combine(logits)

    def slices(self, images: npt.NDArray[np.float32], batch_size: int) -> UnetOutputs:
        """Outputs of whole normalised slices ``(B, C, H, W)``, ``batch_size`` at a time."""
        parts = [self._slice_batch(images[s : s + batch_size]) for s in range(0, images.shape[0], batch_size)]
        return UnetOutputs(
            np.concatenate([p.labels for p in parts]),
            None if parts[0].probs is None else np.concatenate([p.probs for p in parts if p.probs is not None]),
            None if parts[0].spread is None else np.concatenate([p.spread for p in parts if p.spread is not None]),
        )

    def _slice_batch(self, images: npt.NDArray[np.float32]) -> UnetOutputs:
        if self.plain:
            return UnetOutputs(self._nets.unet_classes(images))
        return self._combine(lambda axes: self._nets.unet_slice_logits(_flip(images, axes)))

    def _combine(self, logits_of: Callable[[tuple[int, ...]], npt.NDArray[np.float32]]) -> UnetOutputs:
        if len(self._mirrorings) == 1:
            logits = logits_of(())
            # The labels from the logits themselves: the same argmax as the plain path.
            labels = logits.argmax(axis=1).astype(np.uint8)
            return UnetOutputs(labels, softmax(logits) if self._probabilities else None)
        def member(axes: tuple[int, ...]) -> npt.NDArray[np.float32]:
            return _flip(softmax(logits_of(axes)), axes)

        total = member(self._mirrorings[0])
        lo = region_probabilities(total) if self._spread else None
        hi = None if lo is None else lo.copy()
        for axes in self._mirrorings[1:]:
            p = member(axes)
            total += p
            if lo is not None and hi is not None:
                r = region_probabilities(p)
                np.minimum(lo, r, out=lo)
                np.maximum(hi, r, out=hi)
        total /= len(self._mirrorings)
        spread = None if lo is None or hi is None else hi - lo
        return UnetOutputs(total.argmax(axis=1).astype(np.uint8), total if self._probabilities else None, spread)


class VolumeOutputs:
    """One volume's U-Net outputs as the pipeline fills them in (background where the
    U-Net does not run: class 0, probability 1 for background, spread 0).

    Args:
        shape: ``(D, H, W)``.
        probabilities: Keep ``(D, 4, H, W)`` float32 class probabilities.
        spread: Keep the ``(D, 3, H, W)`` float32 range of the TTA members' WT, TC, ET probabilities.
    """

    def __init__(self, shape: tuple[int, int, int], *, probabilities: bool, spread: bool) -> None:
        d, h, w = shape
        self.classes: npt.NDArray[np.uint8] = np.zeros((d, h, w), dtype=np.uint8)
        self.probs: npt.NDArray[np.float32] | None = None
        if probabilities:
            self.probs = np.zeros((d, N_CLASSES, h, w), dtype=np.float32)
            self.probs[:, 0] = 1.0
        self.spread = np.zeros((d, 3, h, w), dtype=np.float32) if spread else None

    def paste(self, i: int, box: tuple[int, int, int, int], out: UnetOutputs, k: int, rows: slice, cols: slice) -> None:
        """Write item ``k`` of ``out`` (its ``rows x cols``) into slice ``i`` at ``box`` (r0, r1, c0, c1)."""
        r0, r1, c0, c1 = box
        self.classes[i, r0:r1, c0:c1] = out.labels[k, rows, cols]
        if self.probs is not None and out.probs is not None:
            self.probs[i, :, r0:r1, c0:c1] = out.probs[k, :, rows, cols]
        if self.spread is not None and out.spread is not None:
            self.spread[i, :, r0:r1, c0:c1] = out.spread[k, :, rows, cols]

    def put(self, slices: npt.NDArray[np.intp], out: UnetOutputs) -> None:
        """Write whole-slice outputs for ``slices``."""
        self.classes[slices] = out.labels
        if self.probs is not None and out.probs is not None:
            self.probs[slices] = out.probs
        if self.spread is not None and out.spread is not None:
            self.spread[slices] = out.spread


def _flip(a: npt.NDArray[np.float32], axes: tuple[int, ...]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(np.flip(a, axes)) if axes else a


def _span(span: Span, size: int, mirrored: bool) -> Span:
    """A window along an axis of length ``size``, in the mirrored frame when ``mirrored``."""
    return (size - span[1], size - span[0]) if mirrored else span
