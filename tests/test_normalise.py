from __future__ import annotations

import numpy as np
import pytest

from brats_sdk.data.normalise import (
    Normalisation,
    apply_stats,
    brain_mask,
    compute_stats,
    normalise_slice,
    normalise_volume,
    slice_moments,
    stats_from_moments,
)
from brats_sdk.errors import ConfigError, DataError

pytestmark = pytest.mark.numerics


def _raw_volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    vol = np.zeros((5, 4, 20, 20), dtype=np.float32)
    vol[1:4, :, 5:15, 5:15] = rng.uniform(100, 200, size=(3, 4, 10, 10)) * np.array([1, 2, 3, 4]).reshape(1, 4, 1, 1)
    return vol


def _per_slice_affine(vol: np.ndarray, seed: int = 1) -> np.ndarray:
    """Each slice and channel scaled and shifted by its own positive affine map, as the
    Kaggle release's per-slice z-score over the whole frame does."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.001, 50.0, size=(vol.shape[0], vol.shape[1], 1, 1))
    shift = rng.uniform(-300.0, 300.0, size=(vol.shape[0], vol.shape[1], 1, 1))
    return (vol.astype(np.float64) * scale + shift).astype(np.float32)


def test_volume_rule_z_scores_over_the_volumes_brain() -> None:
    vol = _raw_volume()
    out = normalise_volume(vol, Normalisation.VOLUME)
    assert out.dtype == np.float32
    brain = vol[:, 0] > 0
    for c in range(4):
        vals = out[:, c][brain]
        assert abs(vals.mean()) < 1e-5 and abs(vals.std() - 1) < 1e-4
        ref = (vol[:, c][brain] - vol[:, c][brain].mean()) / vol[:, c][brain].std()
        np.testing.assert_allclose(vals, ref, rtol=1e-4, atol=1e-5)
    assert (out[:, :, ~brain.any(axis=0)] == 0).all()
    assert (out[0] == 0).all() and (out[4] == 0).all()


def test_slice_rule_z_scores_each_slice_over_its_own_brain() -> None:
    vol = _raw_volume()
    out = normalise_volume(vol)  # the default rule
    brain = vol[:, 0] > 0
    for d in range(1, 4):
        for c in range(4):
            raw = vol[d, c][brain[d]].astype(np.float64)
            np.testing.assert_allclose(out[d, c][brain[d]], (raw - raw.mean()) / raw.std(), rtol=1e-5, atol=1e-5)
            assert (out[d, c][~brain[d]] == 0).all()
    assert (out[0] == 0).all() and (out[4] == 0).all()


def test_slice_rule_is_invariant_to_a_per_slice_affine_change() -> None:
    vol = _raw_volume()
    changed = _per_slice_affine(vol)
    np.testing.assert_array_equal(brain_mask(changed), brain_mask(vol))
    np.testing.assert_allclose(normalise_volume(changed), normalise_volume(vol), atol=2e-4)
    # The per-volume rule is not, which is why the slice rule is the default.
    assert np.abs(normalise_volume(changed, "volume") - normalise_volume(vol, "volume")).max() > 0.5


def test_already_normalised_slices_use_above_minimum_as_brain() -> None:
    # Kaggle-like: background sits at a negative slice minimum, not at zero.
    vol = _raw_volume()
    shifted = vol.copy()
    for d in range(1, 4):
        s = shifted[d]
        s -= s.mean(axis=(1, 2), keepdims=True)
    mask = brain_mask(shifted)
    np.testing.assert_array_equal(mask, vol[:, 0] > 0)
    for rule in Normalisation:
        out = normalise_volume(shifted, rule)
        assert (out[:, :, ~mask.any(axis=0)] == 0).all()


def test_streamed_moments_equal_whole_volume_stats_bit_for_bit() -> None:
    vol = _raw_volume()
    streamed = stats_from_moments([slice_moments(s) for s in vol])
    assert streamed == compute_stats(vol)
    np.testing.assert_array_equal(apply_stats(vol[2], streamed), normalise_volume(vol, "volume")[2])
    np.testing.assert_array_equal(
        normalise_slice(vol[2], Normalisation.VOLUME, volume_stats=streamed), normalise_volume(vol, "volume")[2]
    )
    np.testing.assert_array_equal(normalise_slice(vol[2], Normalisation.SLICE), normalise_volume(vol)[2])


def test_empty_volume_and_bad_input() -> None:
    for rule in Normalisation:
        out = normalise_volume(np.zeros((2, 4, 8, 8), dtype=np.float32), rule)
        assert (out == 0).all()
    with pytest.raises(DataError, match="NaN"):
        normalise_volume(np.full((2, 4, 8, 8), np.nan, dtype=np.float32))
    with pytest.raises(DataError, match="expected a volume"):
        normalise_volume(np.zeros((4, 8, 8), dtype=np.float32))
    with pytest.raises(ConfigError, match="supported: slice, volume"):
        normalise_volume(np.zeros((2, 4, 8, 8), dtype=np.float32), "per-patient")
    with pytest.raises(DataError, match="statistics"):
        normalise_slice(np.zeros((4, 8, 8), dtype=np.float32), Normalisation.VOLUME)
