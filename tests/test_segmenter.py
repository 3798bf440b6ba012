"""Segmenter: shapes, heads, freezing, prediction, checkpoints, weights, input checks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from brats_sdk.checkpoint import CheckpointKind, save_checkpoint
from brats_sdk.data.normalise import Normalisation
from brats_sdk.errors import CheckpointError, ConfigError, DataError, WeightsUnavailableError
from brats_sdk.models.losses import DiceLoss
from brats_sdk.models.segmenter import HeadKind, Segmenter, SegmenterConfig, config_to_dict


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 240, 240), (2, 100, 75), (1, 33, 31)])
def test_output_shape_any_size(batch: int, height: int, width: int) -> None:
    model = Segmenter().eval()
    with torch.no_grad():
        out = model(torch.randn(batch, 4, height, width))
    assert out.shape == (batch, 4, height, width)


def test_input_size_option_resizes() -> None:
    model = Segmenter(SegmenterConfig(input_size=256)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 4, 240, 240))
    assert out.shape == (1, 4, 240, 240)
    with pytest.raises(ConfigError, match="multiple of 32"):
        SegmenterConfig(input_size=250)


def test_paper_head_layers() -> None:
    model = Segmenter()
    assert model.config.head.value == "default"
    model.replace_head()
    assert model.config.head is HeadKind.PAPER
    head = model.head
    assert isinstance(head, nn.Sequential)
    assert [type(m) for m in head] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.Conv2d]
    shapes = [tuple(p.shape) for p in head.parameters()]
    assert shapes == [(8, 16, 3, 3), (8,), (4, 8, 3, 3), (4,), (4, 4, 1, 1), (4,)]
    built = Segmenter(head="paper")
    assert [tuple(p.shape) for p in built.head.parameters()] == shapes
    assert Segmenter(head=HeadKind.PAPER).config.head is HeadKind.PAPER
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 4, 64, 64)).shape == (1, 4, 64, 64)


def test_option_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown head kind 'fancy'; supported: default, paper"):
        Segmenter(head="fancy")
    with pytest.raises(ConfigError, match="valid values: None, 'imagenet'"):
        Segmenter(encoder_weights="ssl")
    with pytest.raises(ConfigError, match="unknown encoder 'resnet19'"):
        Segmenter(encoder_name="resnet19")


def test_freeze_backbone_trains_only_the_head() -> None:
    model = Segmenter()
    model.replace_head()
    model.freeze_backbone()
    model.train()
    assert model.backbone_frozen
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms and not any(m.training for m in batch_norms)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("unet.segmentation_head.") for n in trainable)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = DiceLoss()(model(torch.randn(2, 4, 64, 64)), torch.randint(0, 4, (2, 64, 64)))
    loss.backward()
    optimiser.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    head_keys = {k for k in before if k.startswith("unet.segmentation_head.")}
    assert changed == head_keys  # every head tensor moved; nothing else, BN stats included

    model.unfreeze()
    model.train()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in batch_norms)


def test_predict_and_labels() -> None:
    model = Segmenter().train()
    volume = np.random.default_rng(0).standard_normal((3, 4, 40, 36)).astype(np.float32)
    classes = model.predict(volume, batch_size=2)
    assert classes.shape == (3, 40, 36) and classes.dtype == np.uint8
    assert set(np.unique(classes)) <= {0, 1, 2, 3}
    assert model.training  # mode restored
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(volume)).argmax(1).numpy()
    np.testing.assert_array_equal(classes, expected)
    np.testing.assert_array_equal(model.predict(torch.from_numpy(volume), batch_size=32), classes)
    labels = model.predict_labels(volume)
    assert set(np.unique(labels)) <= {0, 1, 2, 4}
    np.testing.assert_array_equal(labels == 4, classes == 3)
    with pytest.raises(ConfigError, match="batch_size"):
        model.predict(volume, batch_size=0)
    with pytest.raises(DataError, match="volume must be"):
        model.predict(volume[0])


def test_input_checks() -> None:
    model = Segmenter()
    with pytest.raises(DataError, match="3 channels, expected 4"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(DataError, match=r"\(B, C, H, W\)"):
        model(torch.randn(4, 32, 32))
    x = torch.randn(1, 4, 32, 32)
    x[0, 1, 5, 5] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        model(x)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = Segmenter(head="paper").eval()
    path = tmp_path / "seg.pt"
    model.save(path, metadata={"epoch": 3, "dice": 0.5})
    loaded = Segmenter.from_checkpoint(path)
    assert loaded.config == model.config
    assert loaded.metadata == {"epoch": 3, "dice": 0.5}
    assert not loaded.training
    x = torch.randn(2, 4, 48, 40)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert config_to_dict(model.config)["head"] == "paper"
    assert Segmenter.config_from_dict(config_to_dict(model.config)) == model.config
    with pytest.raises(ConfigError, match="unknown segmenter config fields"):
        Segmenter.config_from_dict({"colour": "red"})


def test_checkpoint_records_the_normalisation(tmp_path: Path) -> None:
    for rule in Normalisation:
        path = tmp_path / f"{rule.value}.pt"
        Segmenter(SegmenterConfig(normalisation=rule)).save(path)
        assert Segmenter.from_checkpoint(path).config.normalisation is rule
    # A checkpoint whose config has no normalisation field was trained per volume.
    legacy = tmp_path / "legacy.pt"
    Segmenter().save(legacy)
    data = torch.load(legacy, weights_only=True)
    del data["config"]["normalisation"]
    torch.save(data, legacy)
    assert Segmenter.from_checkpoint(legacy).config.normalisation is Normalisation.VOLUME
    assert Segmenter().config.normalisation is Normalisation.SLICE


def test_checkpoint_errors(tmp_path: Path) -> None:
    survival = tmp_path / "survival.pt"
    save_checkpoint(survival, kind=CheckpointKind.SURVIVAL, payload={"config": {}})
    with pytest.raises(CheckpointError, match="is a survival checkpoint, expected a segmenter"):
        Segmenter.from_checkpoint(survival)
    old = tmp_path / "old.pt"
    torch.save({"format_version": 7, "kind": "segmenter"}, old)
    with pytest.raises(CheckpointError, match="format version 7"):
        Segmenter.from_checkpoint(old)
    with pytest.raises(CheckpointError, match="does not exist"):
        Segmenter.from_checkpoint(tmp_path / "missing.pt")
    mismatched = tmp_path / "mismatched.pt"
    Segmenter().save(mismatched)
    data = torch.load(mismatched, weights_only=True)
    data["config"]["head"] = "paper"
    torch.save(data, mismatched)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        Segmenter.from_checkpoint(mismatched)


def _smp_weights_cached() -> bool:
    from huggingface_hub import hf_hub_download
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders["resnet18"]["pretrained_settings"]["imagenet"]
    try:
        hf_hub_download(
            settings["repo_id"],
            "model.safetensors",
            revision=settings["revision"],
            local_files_only=True,
        )
    except Exception:
        return False
    return True


def test_imagenet_weights_fail_fast_without_network() -> None:
    if _smp_weights_cached():
        pytest.skip("resnet18 ImageNet weights are cached here")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="ImageNet weights for resnet18") as info:
        Segmenter(encoder_weights="imagenet")
    assert time.monotonic() - start < 10
    assert "encoder_weights=None" in str(info.value)


def test_imagenet_weights_load_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real smp weights file (random values) placed where huggingface_hub caches smp's
    # pinned commit: the segmenter must load it without touching the network.
    import huggingface_hub.constants
    from safetensors.torch import save_file
    from segmentation_models_pytorch.encoders import encoders, get_encoder

    settings = encoders["resnet18"]["pretrained_settings"]["imagenet"]
    repo_folder = "models--" + settings["repo_id"].replace("/", "--")
    snapshot = tmp_path / repo_folder / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    state = get_encoder("resnet18", in_channels=3, weights=None).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    start = time.monotonic()
    model = Segmenter(encoder_weights="imagenet")
    assert time.monotonic() - start < 10
    loaded = model.unet.get_parameter("encoder.layer1.0.conv1.weight")
    assert torch.equal(loaded, state["layer1.0.conv1.weight"])
