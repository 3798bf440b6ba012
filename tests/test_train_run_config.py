"""The two training pipelines share one config base (its fields, defaults and checks) and one opening."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from brats_sdk import (
    ConfigError,
    DataError,
    SegmenterTrainConfig,
    SurvivalTrainConfig,
    TrainRunConfig,
)
from brats_sdk.constants import SURVIVAL_CSV
from brats_sdk.data.sources import DataFormat
from brats_sdk.data.splits import SplitMode
from brats_sdk.distributed import DistContext
from brats_sdk.run_files import SCAN_FILE, SPLIT_FILE
from brats_sdk.training.run import data_parallel, open_run

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


def test_open_run_scans_splits_and_forms_the_cohort_once(tiny_cohort: Path, tmp_path: Path) -> None:
    """Both pipelines open a run the same way; a second opening reuses scan.json and split.csv."""
    seg = SegmenterTrainConfig(data_dir=tiny_cohort, out_dir=tmp_path / "run", device="cpu")
    calls: list[tuple[int, int]] = []
    first = open_run(seg, progress=lambda done, total: calls.append((done, total)))
    assert first.survival_csv == tiny_cohort / SURVIVAL_CSV and first.cohort is None
    assert (tmp_path / "run" / SCAN_FILE).is_file() and (tmp_path / "run" / SPLIT_FILE).is_file()
    assert calls[-1] == (len(first.source), len(first.source)) and len(first.scan.slices) == len(first.source)
    assert set(first.split.train) | set(first.split.val) | set(first.split.test) == {f.volume for f in first.scan.slices}
    surv = SurvivalTrainConfig(data_dir=tiny_cohort, out_dir=tmp_path / "run", device="cpu")
    second = open_run(surv, cohort=True, bin_method=surv.bins)
    assert second.split == first.split  # reused: both models train on the same patients
    assert second.cohort is not None and set(second.cohort.volumes) <= {f.volume for f in first.scan.slices}


def test_open_run_for_survival_needs_a_survival_table(tiny_cohort: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_cohort, data, ignore=shutil.ignore_patterns(SURVIVAL_CSV))
    surv = SurvivalTrainConfig(data_dir=data, out_dir=tmp_path / "run", device="cpu")
    with pytest.raises(DataError, match=r"no survival_info\.csv beside the data"):
        open_run(surv, cohort=True)
    assert not (tmp_path / "run" / SCAN_FILE).exists()  # refused before reading the data
    seg = SegmenterTrainConfig(data_dir=data, out_dir=tmp_path / "seg", device="cpu")
    assert open_run(seg).survival_csv is None  # the segmenter splits without survival strata


def test_one_process_steps_the_model_itself() -> None:
    """Both pipelines wrap through data_parallel: one process gets its own model back (the
    DDP wrapping under torchrun is checked by test_distributed's two gloo ranks)."""
    model = torch.nn.Linear(2, 2)
    assert data_parallel(model, DistContext(), torch.device("cpu")) is model
