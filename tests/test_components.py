"""Small tumour components: drop_small_components and the predictor's min_component_voxels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from brats_sdk import (
    AgeScaler,
    CombinedPredictor,
    ConfigError,
    PredictorConfig,
    Segmenter,
    SurvivalBins,
    SurvivalClassifier,
)
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.labels import labels_to_classes
from brats_sdk.predict.components import drop_small_components
from brats_sdk.predict.results import region_volumes_ml


def _lesion() -> np.ndarray:
    """A 4x4x4 lesion of three classes, a 2-voxel speck far from it and a 3-voxel speck
    touching it only at a corner (26-connected: part of the lesion)."""
    classes = np.zeros((12, 20, 20), dtype=np.uint8)
    classes[2:6, 2:6, 2:6] = 2
    classes[3:5, 3:5, 3:5] = 1
    classes[4, 4, 4] = 3
    classes[10, 15, 15:17] = 3  # far speck
    classes[6, 6, 6:9] = 1  # corner-touching speck: shares only the corner (5, 5, 5)
    return classes


def test_small_far_components_become_background_and_the_rest_is_untouched() -> None:
    classes = _lesion()
    before = classes.copy()
    assert drop_small_components(classes, 3) == 2
    assert not classes[10].any()
    keep = np.ones(classes.shape, dtype=bool)
    keep[10] = False
    np.testing.assert_array_equal(classes[keep], before[keep])  # lesion, its classes and the corner speck


def test_a_component_of_exactly_the_threshold_stays() -> None:
    classes = _lesion()
    assert drop_small_components(classes, 2) == 0
    np.testing.assert_array_equal(classes, _lesion())


def test_the_largest_component_is_never_dropped() -> None:
    classes = np.zeros((5, 9, 9), dtype=np.uint8)
    classes[0, 0, 0:3] = 2  # 3 voxels: the largest
    classes[4, 8, 7:9] = 3  # 2 voxels
    assert drop_small_components(classes, 1000) == 2
    assert int((classes > 0).sum()) == 3 and classes[0, 0, 0:3].tolist() == [2, 2, 2]


@pytest.mark.parametrize("min_voxels", [0, 1])
def test_zero_or_one_keeps_everything(min_voxels: int) -> None:
    classes = _lesion()
    assert drop_small_components(classes, min_voxels) == 0
    np.testing.assert_array_equal(classes, _lesion())


def test_no_tumour_is_left_as_it_is() -> None:
    classes = np.zeros((3, 8, 8), dtype=np.uint8)
    assert drop_small_components(classes, 10) == 0 and not classes.any()


def test_config_refuses_a_negative_threshold() -> None:
    with pytest.raises(ConfigError, match="min_component_voxels"):
        PredictorConfig(min_component_voxels=-1)


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    root: Path = tmp_path_factory.mktemp("islands")
    make_cohort(root, SynthConfig(volumes=1, slices=12, size=64, seed=4))
    return H5SliceFolder(root).load_volume(1).image


def test_predictor_drops_the_network_s_small_components(volume: np.ndarray) -> None:
    """A randomly initialised U-Net (seed 1) marks dozens of scattered specks on this
    volume: with a threshold the labels are those of the plain run minus the small
    components, and the region volumes and the survival vote follow the cleaned labels."""
    torch.manual_seed(1)
    seg = Segmenter()
    survival = SurvivalClassifier(bins=SurvivalBins.brats(), age_scaler=AgeScaler(30.0, 80.0))
    plain = CombinedPredictor(segmenter=seg, survival=survival, device="cpu").predict_volume(volume, 50.0)
    _, n = ndimage.label(plain.labels > 0, structure=np.ones((3, 3, 3)))
    assert n > 10  # the premise: many components to drop
    cleaned = CombinedPredictor(segmenter=seg, survival=survival, device="cpu",
                                config=PredictorConfig(min_component_voxels=20)).predict_volume(volume, 50.0)
    want = plain.labels.copy()
    assert drop_small_components(want, 20) > 0
    np.testing.assert_array_equal(cleaned.labels, want)
    _, left = ndimage.label(cleaned.labels > 0, structure=np.ones((3, 3, 3)))
    assert 1 <= left < n
    assert cleaned.region_ml == pytest.approx(region_volumes_ml(labels_to_classes(want)))
    assert list(cleaned.slice_indices) == [s for s in range(want.shape[0]) if want[s].any()]
    assert cleaned.slice_probs.shape[0] == len(cleaned.slice_indices)
