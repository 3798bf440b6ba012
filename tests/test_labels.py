"""Label conversions: one-hot <-> class indices <-> BraTS labels."""

from __future__ import annotations

import numpy as np
import pytest

from brats_sdk.errors import DataError
from brats_sdk.labels import classes_to_labels, classes_to_one_hot, one_hot_to_classes


def test_one_hot_and_classes_round_trip_on_batches_and_channel_axes() -> None:
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 4, size=(5, 2, 17, 23)).astype(np.uint8)
    one_hot = classes_to_one_hot(classes)
    assert one_hot.shape == (5, 2, 3, 17, 23)
    assert np.array_equal(one_hot_to_classes(one_hot), classes)
    last = np.moveaxis(one_hot, -3, -1)
    assert np.array_equal(one_hot_to_classes(last, channel_axis=-1), classes)
    # Any non-zero value counts as set (float masks written as 0/1.0 or 0/255 images).
    assert np.array_equal(one_hot_to_classes(one_hot * 255), classes)
    assert np.array_equal(classes_to_labels(np.array([0, 1, 2, 3], dtype=np.uint8)), [0, 1, 2, 4])


def test_overlapping_and_misshaped_masks_are_errors() -> None:
    mask = np.zeros((3, 4, 4), dtype=np.uint8)
    mask[0, 1, 1] = mask[2, 1, 1] = 1
    with pytest.raises(DataError, match="overlap"):
        one_hot_to_classes(mask)
    with pytest.raises(DataError, match="2 channels, expected 3"):
        one_hot_to_classes(np.zeros((2, 4, 4), dtype=np.uint8))
