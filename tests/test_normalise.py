from __future__ import annotations

import numpy as np
import pytest

from brats_sdk.data.normalise import (
    apply_stats,
    brain_mask,
    compute_stats,
    normalise_volume,
    slice_moments,
    stats_from_moments,
)
from brats_sdk.errors import DataError


def _raw_volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    vol = np.zeros((5, 4, 20, 20), dtype=np.float32)
    vol[1:4, :, 5:15, 5:15] = rng.uniform(100, 200, size=(3, 4, 10, 10)) * np.array([1, 2, 3, 4]).reshape(1, 4, 1, 1)
    return vol


def test_raw_volume_z_scored_over_brain_with_zero_background() -> None:
    vol = _raw_volume()
    out = normalise_volume(vol)
    assert out.dtype == np.float32
    brain = vol[:, 0] > 0
    for c in range(4):
        vals = out[:, c][brain]
        assert abs(vals.mean()) < 1e-5 and abs(vals.std() - 1) < 1e-4
        # independent check against a direct computation
        ref = (vol[:, c][brain] - vol[:, c][brain].mean()) / vol[:, c][brain].std()
        np.testing.assert_allclose(vals, ref, rtol=1e-4, atol=1e-5)
    assert (out[:, :, ~brain.any(axis=0)] == 0).all()
    assert (out[0] == 0).all() and (out[4] == 0).all()


def test_already_normalised_slices_use_above_minimum_as_brain() -> None:
    # Kaggle-like: background sits at a negative slice minimum, not at zero.
    vol = _raw_volume()
    shifted = vol.copy()
    for d in range(1, 4):
        s = shifted[d]
        s -= s.mean(axis=(1, 2), keepdims=True)
    mask = brain_mask(shifted)
    np.testing.assert_array_equal(mask, vol[:, 0] > 0)
    out = normalise_volume(shifted)
    assert (out[:, :, ~mask.any(axis=0)] == 0).all()


def test_streamed_moments_equal_whole_volume_stats_bit_for_bit() -> None:
    vol = _raw_volume()
    streamed = stats_from_moments([slice_moments(s) for s in vol])
    assert streamed == compute_stats(vol)
    np.testing.assert_array_equal(apply_stats(vol[2], streamed), normalise_volume(vol)[2])


def test_empty_volume_and_bad_input() -> None:
    out = normalise_volume(np.zeros((2, 4, 8, 8), dtype=np.float32))
    assert (out == 0).all()
    with pytest.raises(DataError, match="NaN"):
        normalise_volume(np.full((2, 4, 8, 8), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="expected a volume"):
        normalise_volume(np.zeros((4, 8, 8), dtype=np.float32))
