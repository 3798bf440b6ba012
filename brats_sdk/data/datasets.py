"""Thin torch ``Dataset`` wrappers over the slice-source protocol, for training.

The segmentation dataset applies the model's normalisation rule
(:class:`~brats_sdk.data.normalise.Normalisation`; per volume it takes the statistics of
a :class:`~brats_sdk.data.scan.SourceScan`) so that training sees exactly what
prediction sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from brats_sdk.data.augment import augment_item
from brats_sdk.data.crops import RandomCrops, Window
from brats_sdk.data.normalise import (
    Normalisation,
    NormStats,
    apply_stats,
    brain_mask,
    slice_stats,
    stats_from_moments,
)
from brats_sdk.data.protocols import SliceSource
from brats_sdk.data.records import SliceRecord
from brats_sdk.errors import DataError
from brats_sdk.labels import one_hot_to_classes

__all__ = ["SegmentationDataset", "SurvivalDataset", "random_pose"]

Sample = dict[str, torch.Tensor]
Bool2D = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]


class SegmentationDataset(Dataset[Sample]):
    """Normalised slices and their class-index targets.

    Each item: ``image`` ``(4, H, W)`` float32, ``target`` ``(H, W)`` uint8 in 0..3,
    ``volume`` and ``slice`` as 0-d int64 tensors; ``H, W`` are the window's when
    ``crop`` is given.

    Args:
        source: The slice source (must have masks).
        indices: Which slices of ``source`` to serve.
        stats: Normalisation statistics per volume (used by ``VOLUME`` normalisation only).
        crop: None (whole slices, the paper's), one fixed :class:`Window` for every slice
            (validation on the brain box), or :class:`RandomCrops` (training windows).
        normalisation: The model's rule; per-slice statistics come from the whole slice,
            also when a window of it is served, as prediction computes them.
        augment: Random intensity jitter, mirroring, rotation and zoom of each item
            (:func:`~brats_sdk.data.augment.augment_item`; training only).
        oedema_contrast_min: With ``augment``, fade the oedema of some items by factors
            down to this (:func:`~brats_sdk.data.augment.fade_oedema`); 1: never.

    Raises:
        DataError: ``VOLUME`` normalisation without statistics for a served volume.
    """

    def __init__(
        self,
        source: SliceSource,
        indices: Sequence[int],
        stats: Mapping[int, NormStats] | None = None,
        *,
        crop: Window | RandomCrops | None = None,
        normalisation: Normalisation | str = Normalisation.SLICE,
        augment: bool = False,
        oedema_contrast_min: float = 1.0,
    ) -> None:
        self.source = source
        self.indices = list(indices)
        self.stats = dict(stats or {})
        self.crop = crop
        self.normalisation = Normalisation.parse(normalisation)
        self.augment = augment
        self.oedema_contrast_min = oedema_contrast_min
        if self.normalisation is Normalisation.VOLUME and self.indices:
            missing = sorted({source.slice_key(i)[0] for i in self.indices} - set(self.stats))
            if missing:
                raise DataError(f"volume normalisation needs statistics of volumes {missing[:5]}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        rec, brain, target, window, (h, w) = self._read(i)
        out = {
            "image": torch.empty((rec.image.shape[0], h, w), dtype=torch.float32),
            "target": torch.empty((h, w), dtype=torch.uint8),
            "volume": torch.empty((), dtype=torch.int64),
            "slice": torch.empty((), dtype=torch.int64),
        }
        self._write(rec, brain, target, window, out)
        return out

    def fill(self, i: int, out: Mapping[str, torch.Tensor]) -> bool:
        """Write item ``i`` into ``out`` (CPU tensors shaped like an item, such as a row of a
        batch buffer) instead of allocating it.

        Returns:
            False, with nothing written, when item ``i`` has another shape than ``out``.
        """
        rec, brain, target, window, (h, w) = self._read(i)
        if tuple(out["image"].shape) != (rec.image.shape[0], h, w):
            return False
        self._write(rec, brain, target, window, out)
        return True

    def _read(self, i: int) -> tuple[SliceRecord, Bool2D, U8, Window | None, tuple[int, int]]:
        """The slice, its brain and target, its window and the item's ``(H, W)``."""
        rec = self.source.read_slice(self.indices[i])
        if rec.mask is None:
            raise DataError(f"slice {rec.index} of volume {rec.volume} has no mask; training needs labels")
        # The brain test uses the whole slice's own minimum, also when a window is cut.
        # A source that stores the brain and class indices (packed) hands them over.
        brain = brain_mask(rec.image) if rec.brain is None else rec.brain
        target = one_hot_to_classes(rec.mask) if rec.classes is None else rec.classes  # uint8: 8x less to move between workers
        window = self.crop
        if isinstance(window, RandomCrops):
            window = window.window(brain=brain, tumour=target > 0)
        h, w = target.shape if window is None else (window.y1 - window.y0, window.x1 - window.x0)
        return rec, brain, target, window, (h, w)

    def _write(self, rec: SliceRecord, brain: Bool2D, target: U8, window: Window | None, out: Mapping[str, torch.Tensor]) -> None:
        image = rec.image
        stats = self.stats.get(rec.volume)
        if self.normalisation is Normalisation.SLICE:
            # Over the whole slice, as prediction computes it (or from its stored moments).
            stats = slice_stats(image, brain) if rec.moments is None else stats_from_moments((rec.moments,), n_channels=image.shape[0])
        if window is not None:  # normalising is per voxel: the window of the result is the result of the window
            image, brain, target = window.cut(image), window.cut(brain), window.cut(target)
        if stats is None:
            raise DataError(f"volume {rec.volume}: no normalisation statistics")
        apply_stats(image, stats, brain, out=out["image"].numpy())
        out["target"].numpy()[...] = target
        out["volume"].fill_(rec.volume)
        out["slice"].fill_(rec.index)
        if self.augment:
            augment_item(out["image"], out["target"], torch.from_numpy(brain), oedema_contrast_min=self.oedema_contrast_min)


class SurvivalDataset(Dataset[Sample]):
    """Tumour masks with the patient's scaled age and survival bin.

    Each item: ``mask`` ``(3, H, W)`` float32 one-hot (resizing and ImageNet
    normalisation happen in the model's preprocessing, on the batch), ``age`` ``(1,)``
    float32 scaled, ``target`` int64 bin, ``volume`` and ``slice``.

    Args:
        source: The slice source (must have masks).
        indices: Which slices of ``source`` to serve.
        scaled_age: Scaled age per volume.
        bins: Survival bin per volume.
        augment: Apply one of the 8 flips/quarter-turns of the square, at random, to each
            mask (survival does not depend on orientation; a network that sees each
            patient's tumour in one pose only learns to recognise the patient).
    """

    def __init__(
        self,
        source: SliceSource,
        indices: Sequence[int],
        scaled_age: Mapping[int, float],
        bins: Mapping[int, int],
        *,
        augment: bool = False,
    ) -> None:
        self.source = source
        self.indices = list(indices)
        self.scaled_age = dict(scaled_age)
        self.bins = dict(bins)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        rec = self.source.read_slice(self.indices[i])
        if rec.mask is None:
            raise DataError(f"slice {rec.index} of volume {rec.volume} has no mask; survival training needs masks")
        mask = torch.from_numpy(rec.mask.astype(np.float32))
        if self.augment:
            mask = random_pose(mask)
        return {
            "mask": mask,
            "age": torch.tensor([self.scaled_age[rec.volume]], dtype=torch.float32),
            "target": torch.tensor(self.bins[rec.volume], dtype=torch.int64),
            "volume": torch.tensor(rec.volume),
            "slice": torch.tensor(rec.index),
        }


def random_pose(image: torch.Tensor) -> torch.Tensor:
    """``image`` ``(C, H, W)`` under one of the 8 symmetries of the square, drawn from torch's
    global generator (seeded and checkpointed by the training loop); flips only when
    ``H != W``."""
    k = int(torch.randint(8, ()))
    turns = (k >> 1) if image.shape[-1] == image.shape[-2] else (k >> 1) & 0b10  # half turns only if not square
    if k & 1:
        image = image.flip(-1)
    if turns:
        image = torch.rot90(image, turns, dims=(-2, -1))
    return image.contiguous()
