"""Thin torch ``Dataset`` wrappers over the slice-source protocol, for training.

Both apply the SDK's normalisation (with the per-volume statistics of a
:class:`~brats_sdk.data.scan.SourceScan`) so that training sees exactly what
prediction sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from brats_sdk.data.normalise import NormStats, apply_stats
from brats_sdk.data.protocols import SliceSource
from brats_sdk.errors import DataError
from brats_sdk.labels import one_hot_to_classes

__all__ = ["SegmentationDataset", "SurvivalDataset"]

Sample = dict[str, torch.Tensor]


class SegmentationDataset(Dataset[Sample]):
    """Normalised slices and their class-index targets.

    Each item: ``image`` ``(4, H, W)`` float32, ``target`` ``(H, W)`` uint8 in 0..3,
    ``volume`` and ``slice`` as 0-d int64 tensors.

    Args:
        source: The slice source (must have masks).
        indices: Which slices of ``source`` to serve.
        stats: Normalisation statistics per volume.
    """

    def __init__(self, source: SliceSource, indices: Sequence[int], stats: Mapping[int, NormStats]) -> None:
        self.source = source
        self.indices = list(indices)
        self.stats = dict(stats)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        rec = self.source.read_slice(self.indices[i])
        if rec.mask is None:
            raise DataError(f"slice {rec.index} of volume {rec.volume} has no mask; training needs labels")
        image = apply_stats(rec.image, self.stats[rec.volume])
        target = one_hot_to_classes(rec.mask)  # uint8: 8x less to move between workers
        return {
            "image": torch.from_numpy(image),
            "target": torch.from_numpy(target),
            "volume": torch.tensor(rec.volume),
            "slice": torch.tensor(rec.index),
        }


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
    """

    def __init__(
        self,
        source: SliceSource,
        indices: Sequence[int],
        scaled_age: Mapping[int, float],
        bins: Mapping[int, int],
    ) -> None:
        self.source = source
        self.indices = list(indices)
        self.scaled_age = dict(scaled_age)
        self.bins = dict(bins)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        rec = self.source.read_slice(self.indices[i])
        if rec.mask is None:
            raise DataError(f"slice {rec.index} of volume {rec.volume} has no mask; survival training needs masks")
        return {
            "mask": torch.from_numpy(rec.mask.astype(np.float32)),
            "age": torch.tensor([self.scaled_age[rec.volume]], dtype=torch.float32),
            "target": torch.tensor(self.bins[rec.volume], dtype=torch.int64),
            "volume": torch.tensor(rec.volume),
            "slice": torch.tensor(rec.index),
        }
