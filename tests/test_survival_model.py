"""SurvivalClassifier, AgeScaler and the preprocessing functions."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from brats_sdk.bins import SurvivalBins
from brats_sdk.checkpoint import CheckpointKind, save_checkpoint
from brats_sdk.constants import IMAGENET_MEAN, IMAGENET_STD
from brats_sdk.errors import CheckpointError, ConfigError, DataError, WeightsUnavailableError
from brats_sdk.models.survival import (
    AgeScaler,
    SurvivalClassifier,
    SurvivalConfig,
    prepare_age,
    prepare_masks,
)

BINS = SurvivalBins.quantile([5.0, 100.0, 265.0, 268.0, 300.5, 476.0, 486.0, 900.0, 1767.0])
SCALER = AgeScaler.fit([19.0, 45.5, 86.7])


@pytest.fixture(scope="module")
def model() -> SurvivalClassifier:
    torch.manual_seed(0)
    return SurvivalClassifier(bins=BINS, age_scaler=SCALER)


def _masks(n: int, height: int = 60, width: int = 50, seed: int = 0) -> np.ndarray:
    classes = np.random.default_rng(seed).integers(0, 4, size=(n, height, width))
    return np.stack([(classes == k) for k in (1, 2, 3)], axis=1).astype(np.uint8)


def test_layer_shapes(model: SurvivalClassifier) -> None:
    def shapes(module: nn.Module) -> list[tuple[int, ...]]:
        return [tuple(p.shape) for p in module.parameters()]

    backbone = model.backbone
    assert isinstance(backbone, nn.Module)
    assert tuple(backbone.get_parameter("conv1.weight").shape) == (64, 3, 7, 7)
    fc = backbone.get_submodule("fc")
    assert [type(m) for m in fc] == [nn.Linear, nn.ReLU, nn.Dropout]  # type: ignore[attr-defined]  # fc is a Sequential
    assert shapes(fc) == [(128, 2048), (128,)]
    assert [type(m) for m in model.age_branch] == [nn.Linear, nn.ReLU, nn.Linear]
    assert shapes(model.age_branch) == [(10, 1), (10,), (10, 10), (10,)]
    assert [type(m) for m in model.head] == [
        nn.Linear,
        nn.ReLU,
        nn.Dropout,
        nn.Linear,
        nn.ReLU,
        nn.Dropout,
        nn.Linear,
    ]
    assert shapes(model.head) == [(256, 138), (256,), (128, 256), (128,), (3, 128), (3,)]
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3 and all(d.p == 0.3 for d in dropouts)
    assert model.config.n_bins == 3


def test_forward_shapes_and_checks(model: SurvivalClassifier) -> None:
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224), torch.rand(2, 1))
    assert out.shape == (2, 3)
    with pytest.raises(DataError, match=r"\(B, 3, 224, 224\)"):
        model(torch.randn(2, 3, 100, 100), torch.rand(2, 1))
    with pytest.raises(DataError, match=r"age must be \(B, 1\)"):
        model(torch.randn(2, 3, 224, 224), torch.rand(2))
    with pytest.raises(DataError, match=r"age must be \(B, 1\)"):
        model(torch.randn(2, 3, 224, 224), torch.rand(3, 1))


def test_predict_proba_and_determinism(model: SurvivalClassifier) -> None:
    model.train()
    masks = _masks(3)
    ages = [30.0, 55.0, 90.0]
    proba = model.predict_proba(masks, ages, batch_size=2)
    assert proba.shape == (3, 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert model.training  # mode restored
    again = model.predict_proba(torch.from_numpy(masks), np.array(ages), batch_size=3)
    np.testing.assert_allclose(again, proba, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.predict(masks, ages, batch_size=2), proba.argmax(1))
    with pytest.raises(DataError, match="3 ages"):
        model.predict_proba(masks[:2], ages)


def test_checkpoint_round_trip(model: SurvivalClassifier, tmp_path: Path) -> None:
    path = tmp_path / "survival.pt"
    model.save(path, metadata={"epoch": 7})
    loaded = SurvivalClassifier.from_checkpoint(path)
    assert loaded.bins == BINS
    assert loaded.age_scaler == SCALER
    assert loaded.config == model.config
    assert loaded.metadata == {"epoch": 7}
    model.eval()
    x, a = torch.randn(2, 3, 224, 224), torch.rand(2, 1)
    with torch.no_grad():
        assert torch.equal(model(x, a), loaded(x, a))
    segmenter_kind = tmp_path / "seg.pt"
    save_checkpoint(segmenter_kind, kind=CheckpointKind.SEGMENTER, payload={})
    with pytest.raises(CheckpointError, match="is a segmenter checkpoint, expected a survival"):
        SurvivalClassifier.from_checkpoint(segmenter_kind)


def test_config_and_bins_errors() -> None:
    with pytest.raises(ConfigError, match="n_bins=4"):
        SurvivalClassifier(SurvivalConfig(n_bins=4), bins=BINS)
    with pytest.raises(ConfigError, match="dropout"):
        SurvivalConfig(dropout=1.5)
    with pytest.raises(ConfigError, match="valid values"):
        SurvivalConfig(encoder_weights="imagenet21k")
    bare = SurvivalClassifier(SurvivalConfig(n_bins=2))
    assert bare.bins is None and bare.age_scaler is None
    with pytest.raises(ConfigError, match="no age scaler"):
        bare.predict_proba(_masks(1), [50.0])


def test_age_scaler() -> None:
    scaler = AgeScaler.fit([30.0, 50.0, 70.0])
    assert scaler == AgeScaler(30.0, 70.0)
    assert scaler.transform(50.0) == 0.5
    assert scaler.transform(90.0) == 1.5  # not clipped
    assert AgeScaler.fit([42.0, 42.0]) == AgeScaler(42.0, 43.0)
    assert AgeScaler.from_dict(scaler.to_dict()) == scaler
    with pytest.raises(DataError, match="no ages"):
        AgeScaler.fit([])
    with pytest.raises(DataError, match="NaN"):
        AgeScaler.fit([30.0, float("nan")])
    with pytest.raises(ConfigError, match="max_age > min_age"):
        AgeScaler(50.0, 50.0)
    torch.testing.assert_close(prepare_age([30.0, 90.0], scaler), torch.tensor([[0.0], [1.5]]))
    with pytest.raises(DataError, match="NaN"):
        prepare_age([float("nan")], scaler)


def test_prepare_masks() -> None:
    masks = _masks(2, 30, 40)
    out = prepare_masks(masks)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(prepare_masks(torch.from_numpy(masks).float()), out)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    zeros = prepare_masks(torch.zeros(1, 3, 10, 10))
    torch.testing.assert_close(zeros[0, :, 0, 0], -mean / std)
    ones = prepare_masks(torch.ones(1, 3, 10, 10, dtype=torch.uint8))
    torch.testing.assert_close(ones[0, :, 100, 100], (1 - mean) / std)
    with pytest.raises(DataError, match=r"\(N, 3, H, W\)"):
        prepare_masks(torch.zeros(1, 4, 10, 10))
    torch.testing.assert_close(prepare_masks(torch.ones(1, 3, 10, 10, dtype=torch.bool)), ones)
    for bad in (2.0, float("nan"), float("inf"), -float("inf"), -0.5):
        x = torch.zeros(1, 3, 10, 10)
        x[0, 1, 4, 4] = bad
        with pytest.raises(DataError, match=r"\[0, 1\]"):
            prepare_masks(x)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        prepare_masks(torch.full((1, 3, 10, 10), 2, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        prepare_masks(np.full((1, 3, 10, 10), -1, dtype=np.int16))


def test_imagenet_weights_fail_fast_without_network() -> None:
    from torchvision.models import ResNet50_Weights

    cached = (
        Path(torch.hub.get_dir()) / "checkpoints" / Path(ResNet50_Weights.IMAGENET1K_V1.url).name
    )
    if cached.is_file():
        pytest.skip("resnet50 ImageNet weights are cached here")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="ImageNet weights for resnet50"):
        SurvivalClassifier(encoder_weights="imagenet")
    assert time.monotonic() - start < 10


def test_imagenet_weights_load_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real torchvision ResNet-50 state dict (random values) in the torch hub cache.
    from torchvision.models import ResNet50_Weights, resnet50

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    checkpoints.mkdir(parents=True)
    state = resnet50(weights=None).state_dict()
    torch.save(state, checkpoints / Path(ResNet50_Weights.IMAGENET1K_V1.url).name)

    model = SurvivalClassifier(encoder_weights="imagenet")
    loaded = model.backbone.get_parameter("layer1.0.conv1.weight")
    assert torch.equal(loaded, state["layer1.0.conv1.weight"])
