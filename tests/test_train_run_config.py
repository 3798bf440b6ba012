"""The two training configs share one base: its fields, defaults and checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from brats_sdk import ConfigError, SegmenterTrainConfig, SurvivalTrainConfig, TrainRunConfig
from brats_sdk.data.sources import DataFormat
from brats_sdk.data.splits import SplitMode

DATA, RUN = Path("data"), Path("run")


def _shared_names() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainRunConfig)}


@pytest.mark.parametrize("config_type", [SegmenterTrainConfig, SurvivalTrainConfig])
def test_both_configs_carry_every_shared_field(config_type: type[TrainRunConfig]) -> None:
    config = config_type(data_dir=DATA, out_dir=RUN)
    assert isinstance(config, TrainRunConfig)
    names = [f.name for f in dataclasses.fields(config)]
    assert _shared_names() <= set(names) and len(names) == len(set(names))
    assert {"seed", "device", "epochs", "batch_size", "split_mode", "amp", "num_workers"} <= _shared_names()


def test_each_model_keeps_its_own_defaults() -> None:
    seg = SegmenterTrainConfig(data_dir=DATA, out_dir=RUN)
    surv = SurvivalTrainConfig(data_dir=DATA, out_dir=RUN)
    assert (seg.batch_size, seg.epochs, seg.stage_epochs) == (120, None, (50, 50, 50))
    assert (surv.batch_size, surv.epochs, surv.lr) == (32, 50, 1e-4)
    assert seg.survival_csv is None and surv.survival_csv is None  # both find it beside the data
    assert seg.split_mode is SplitMode.PATIENT and surv.data_format is DataFormat.AUTO


@pytest.mark.parametrize("config_type", [SegmenterTrainConfig, SurvivalTrainConfig])
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs must be >= 1"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("patience", 0, "patience must be >= 1"),
        ("num_workers", -1, "num_workers must be >= 0"),
        ("max_steps_per_epoch", 0, "max_steps_per_epoch must be >= 1"),
        ("split_mode", "volume", "unknown split mode 'volume'; supported: patient, slice"),
        ("data_format", "dicom", "unknown data format 'dicom'"),
        ("encoder_weights", "random", "unknown encoder_weights 'random'"),
    ],
)
def test_the_shared_checks_reject_bad_values_for_both(
    config_type: type[TrainRunConfig], field: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config_type(data_dir=DATA, out_dir=RUN, **{field: value})  # type: ignore[arg-type]  # a bad value on purpose


def test_string_options_become_enum_members_and_replace_rechecks() -> None:
    config = SurvivalTrainConfig(data_dir=DATA, out_dir=RUN, split_mode="slice", data_format="h5", bins="brats")  # type: ignore[arg-type]  # strings are accepted
    assert config.split_mode is SplitMode.SLICE and config.data_format is DataFormat.H5
    assert config.bins.value == "brats"
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        dataclasses.replace(config, batch_size=0)


@pytest.mark.parametrize("config_type", [SegmenterTrainConfig, SurvivalTrainConfig])
def test_the_configs_are_keyword_only_and_frozen(config_type: type[TrainRunConfig]) -> None:
    with pytest.raises(TypeError):
        config_type(Path("data"), Path("run"))  # type: ignore[call-arg]  # positional on purpose
    config = config_type(data_dir=DATA, out_dir=RUN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]  # frozen on purpose
