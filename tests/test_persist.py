"""Both models save and load through one implementation (``models/persist.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brats_sdk.bins import SurvivalBins
from brats_sdk.data.age_scaling import AgeScaler
from brats_sdk.errors import CheckpointError, ConfigError
from brats_sdk.models.persist import Checkpointed
from brats_sdk.models.segmenter import Segmenter, SegmenterConfig
from brats_sdk.models.survival import SurvivalClassifier, SurvivalConfig


def _edit(path: Path, **changes: object) -> None:
    """Rewrite a saved checkpoint's config entries (as an older or damaged file holds them)."""
    data = torch.load(path, weights_only=True)
    data["config"].update(changes)
    torch.save(data, path)


def test_one_load_path_for_both_models() -> None:
    for model_type in (Segmenter, SurvivalClassifier):
        assert issubclass(model_type, Checkpointed)
        assert model_type.from_checkpoint.__func__ is Checkpointed.from_checkpoint.__func__  # type: ignore[attr-defined, union-attr]  # bound classmethods
        assert model_type.config_from_dict.__func__ is Checkpointed.config_from_dict.__func__  # type: ignore[attr-defined, union-attr]  # bound classmethods
    assert Segmenter.config_from_dict({"head": "paper"}) == SegmenterConfig(head="paper")  # type: ignore[arg-type]  # a string value is accepted
    assert SurvivalClassifier.config_from_dict({"n_bins": 4}) == SurvivalConfig(n_bins=4)
    for model_type, name in ((Segmenter, "segmenter"), (SurvivalClassifier, "survival")):
        with pytest.raises(ConfigError, match=f"unknown {name} config fields \\['colour'\\]"):
            model_type.config_from_dict({"colour": "red"})


def test_invalid_stored_configs_are_checkpoint_errors(tmp_path: Path) -> None:
    seg = tmp_path / "segmenter.pt"
    Segmenter().save(seg)
    _edit(seg, n_classes=1)
    with pytest.raises(CheckpointError, match="holds an invalid segmenter model record: n_classes must be"):
        Segmenter.from_checkpoint(seg)
    surv = tmp_path / "survival.pt"
    SurvivalClassifier(SurvivalConfig(input_size=32), bins=SurvivalBins.brats(), age_scaler=AgeScaler.fit([40.0, 60.0])).save(surv)
    _edit(surv, dropout=2.0)
    with pytest.raises(CheckpointError, match="holds an invalid survival model record: dropout must be"):
        SurvivalClassifier.from_checkpoint(surv)


def test_stored_imagenet_weights_load_from_the_file_without_download(tmp_path: Path) -> None:
    """A model trained from ImageNet weights stores ``encoder_weights="imagenet"``; loading
    builds it without them (the file holds the trained weights) and keeps the bins and scaler."""
    model = SurvivalClassifier(SurvivalConfig(input_size=32), bins=SurvivalBins.brats(), age_scaler=AgeScaler.fit([40.0, 60.0]))
    path = tmp_path / "survival.pt"
    model.save(path, metadata={"epoch": 2})
    _edit(path, encoder_weights="imagenet")
    loaded = SurvivalClassifier.from_checkpoint(path)
    assert loaded.config == model.config and loaded.config.encoder_weights is None
    assert loaded.bins == model.bins and loaded.age_scaler == model.age_scaler and loaded.metadata == {"epoch": 2}
    assert not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
