"""Issue 18, groups 4 and 5: nothing silently wrong, messages a person can act on.

Real files in temporary folders; the CLI through CliRunner, and once as a subprocess
where the exit code is the point.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from brats_sdk.checkpoint import CheckpointKind, load_checkpoint, save_checkpoint
from brats_sdk.constants import IMAGE_CHANNELS
from brats_sdk.data.clinical import read_age_table, read_survival_csv
from brats_sdk.data.h5_folder import H5SliceFolder, read_h5_slice
from brats_sdk.data.inspection import inspect_h5_folder
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.sources import DataFormat, detect_format, open_source
from brats_sdk.errors import CheckpointError, ConfigError, DataError, TrainingDivergedError
from brats_sdk.finite import describe_non_finite
from brats_sdk.models.segmenter import Segmenter
from brats_sdk.summarise import summarise
from brats_sdk.training.loop import FitConfig, fit
from brats_sdk.training.segmenter_pipeline import SegmenterTrainConfig
from brats_sdk.training.tasks import SegmentationTask
from cli.main import cli
from tests.helpers import TensorDataset, write_slice

AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


@dataclasses.dataclass
class _NotPlain:
    value: int = 1


def _segmenter_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "segmenter.pt"
    Segmenter().save(path)
    return path


def _rewrite_weights(path: Path, out: Path, key: str, value: torch.Tensor) -> None:
    data = load_checkpoint(path, kind=CheckpointKind.SEGMENTER)
    state = dict(data["state_dict"])  # type: ignore[call-overload]  # a dict of tensors
    state[key] = value
    payload = {k: v for k, v in data.items() if k not in ("format_version", "kind")}
    payload["state_dict"] = state
    save_checkpoint(out, kind=CheckpointKind.SEGMENTER, payload=payload)


# ----------------------------------------------------------------------------- group 5
def test_summarise_keeps_the_first_items_and_counts_the_rest() -> None:
    assert summarise([1, 2, 3]) == "[1, 2, 3]"
    text = summarise(range(8, 99_999))
    assert text.startswith("[8, 9, 10") and text.endswith("... and 99981 more]") and len(text) < 80
    assert summarise(["a", "b"], brackets=False) == "'a', 'b'"


def test_pickled_objects_are_refused_without_torchs_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "kind": "segmenter", "config": _NotPlain()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, kind=CheckpointKind.SEGMENTER)
    message = str(info.value)
    assert "refused for safety" in message and "Python objects beyond tensors" in message
    assert "weights_only" not in message and "_NotPlain" in message and "\n" not in message


def test_weights_that_do_not_fit_name_the_tensor_and_both_shapes(tmp_path: Path) -> None:
    good = _segmenter_file(tmp_path)
    key = next(k for k, v in Segmenter().state_dict().items() if v.ndim == 4)
    bad = tmp_path / "bad.pt"
    _rewrite_weights(good, bad, key, torch.zeros(3, 3, 3, 3))
    with pytest.raises(CheckpointError) as info:
        Segmenter.from_checkpoint(bad)
    message = str(info.value)
    assert f"'{key}': stored (3, 3, 3, 3), model (" in message and "Error(s) in loading" not in message


def test_non_finite_weights_are_refused_on_load(tmp_path: Path) -> None:
    good = _segmenter_file(tmp_path)
    key = next(k for k, v in Segmenter().state_dict().items() if v.is_floating_point())
    weights = Segmenter().state_dict()[key].clone()
    weights.view(-1)[0] = math.nan
    bad = tmp_path / "nan.pt"
    _rewrite_weights(good, bad, key, weights)
    with pytest.raises(CheckpointError, match=rf"nan\.pt: weights tensor '{key}' holds 1 NaN or infinite"):
        Segmenter.from_checkpoint(bad)


def test_float32_overflow_is_named_as_such() -> None:
    assert describe_non_finite(np.array([1.0, 1e300, -1e39])).startswith("holds values beyond float32's range (max 3.4e+38)")
    assert describe_non_finite(np.array([np.nan, np.inf])) == "holds NaN (1 value) and infinite values (1 value)"


def test_h5_slice_with_float64_overflow(tmp_path: Path) -> None:
    image = np.ones((16, 16, 4))
    image[3, 3, 1] = 1e300
    path = write_slice(tmp_path / "volume_1_slice_0.h5", image)
    with pytest.raises(DataError) as info:
        read_h5_slice(path)
    assert "beyond float32's range" in str(info.value) and "e.g. 1e+300" in str(info.value)
    assert "NaN" not in str(info.value)


def test_nifti_with_float64_overflow(tmp_path: Path) -> None:
    case = tmp_path / "c"
    case.mkdir()
    for c, channel in enumerate(IMAGE_CHANNELS):
        data = np.ones((8, 8, 4), dtype=np.float64)
        if c == 2:
            data[1, 1, 1] = 1e40
        nib.save(nib.Nifti1Image(data, AFFINE), case / f"c_{channel}.nii.gz")
    with pytest.raises(DataError, match=r"c_t1ce\.nii\.gz: holds values beyond float32's range .* e\.g\. 1e\+40"):
        NiftiFolder(tmp_path).load_volume(1)


def test_far_slice_number_gives_a_short_problem_line(tmp_path: Path) -> None:
    for s in (*range(8), 99_999):
        write_slice(tmp_path / f"volume_1_slice_{s}.h5", size=8)
    problems = inspect_h5_folder(tmp_path).problems
    assert any("missing slices [8, 9, 10" in p and "more]" in p for p in problems)
    assert max(len(p) for p in problems) < 300
    with pytest.raises(DataError) as info:
        H5SliceFolder(tmp_path).load_volume(1)
    assert len(str(info.value)) < 300


# ----------------------------------------------------------------------------- group 4


def test_a_non_finite_loss_stops_training_naming_stage_epoch_and_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    images = torch.randn(8, 4, 16, 16)
    images[5] = math.nan  # the second step of batches of 4 meets it
    targets = torch.randint(0, 4, (8, 16, 16))
    data = TensorDataset(images, targets)
    model = torch.nn.Conv2d(4, 4, kernel_size=3, padding=1)
    config = FitConfig(lr=1e-3, max_epochs=2, batch_size=4, amp=False, seed=0)
    with pytest.raises(TrainingDivergedError, match=r"stage s1: the training loss became nan at epoch 1, step [12] "):
        fit(model=model, task=SegmentationTask(), train_data=data, val_data=data, config=config,
            device=torch.device("cpu"), checkpoint_dir=tmp_path, stage="s1")


@pytest.mark.parametrize("field", ["lr", "gamma", "time_limit_s"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_fit_config_refuses_non_finite_numbers(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"invalid {field}="):
        FitConfig(**{field: value})  # type: ignore[arg-type]  # one float field at a time


def test_train_config_refuses_a_non_finite_learning_rate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid lrs=\(inf, 0.001, 1e-05\): must be a finite number"):
        SegmenterTrainConfig(data_dir=tmp_path, out_dir=tmp_path, lrs=(math.inf, 1e-3, 1e-5))


@pytest.mark.parametrize("age", ["300", "1e308", "0", "-3", "inf"])
def test_implausible_ages_are_refused_with_the_line(tmp_path: Path, age: str) -> None:
    survival = tmp_path / "survival_info.csv"
    survival.write_text(f"Brats20ID,Age,Survival_days,Extent_of_Resection\nA,50,300,GTR\nB,{age},200,GTR\n")
    with pytest.raises(DataError, match=r"survival_info\.csv line 3: Age "):
        read_survival_csv(survival)
    ages = tmp_path / "ages.csv"
    ages.write_text(f"volume,age\n1,40\n2,{age}\n")
    with pytest.raises(DataError, match=r"ages\.csv line 3: age "):
        read_age_table(ages)


def test_plausible_ages_are_kept(tmp_path: Path) -> None:
    ages = tmp_path / "ages.csv"
    ages.write_text("volume,age\n1,0.5\n2,120\n")
    assert dict(read_age_table(ages).by_volume) == {1: 0.5, 2: 120.0}


def test_predict_refuses_unknown_volumes(tiny_cohort: Path, tmp_path: Path) -> None:
    seg = _segmenter_file(tmp_path)
    result = CliRunner().invoke(
        cli, ["predict", str(tiny_cohort), "--out", str(tmp_path / "out"), "--segmenter", str(seg),
              "--volumes", "999", "--device", "cpu", "--quiet"],
    )
    assert result.exit_code == 1, result.output
    assert "volumes [999] not found" in result.output
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_lr_inf_exits_1_with_one_line(tiny_cohort: Path, tmp_path: Path) -> None:
    """The exit code is the point: a subprocess, as a script would run it."""
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "train", "segmenter", str(tiny_cohort), "--out", str(tmp_path / "run"),
         "--lr", "inf,1e-3,1e-5", "--epochs", "1", "--device", "cpu"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "invalid lrs=(inf" in proc.stderr and "Traceback" not in proc.stderr


def test_inspect_reports_odd_slice_file_names(tmp_path: Path) -> None:
    for s in range(4):
        write_slice(tmp_path / f"volume_1_slice_{s}.h5", size=8)
    write_slice(tmp_path / "volume_1_slice_004.h5", size=8)
    write_slice(tmp_path / "Volume_1_Slice_5.h5", size=8)
    write_slice(tmp_path / "volume_1_slice_x.h5", size=8)
    problems = inspect_h5_folder(tmp_path).problems
    padded = [p for p in problems if "zero-padded" in p]
    unread = [p for p in problems if "not read" in p]
    assert len(padded) == 1 and "'volume_1_slice_004.h5'" in padded[0]
    assert len(unread) == 1 and "'Volume_1_Slice_5.h5'" in unread[0] and "'volume_1_slice_x.h5'" in unread[0]


def test_format_detection_follows_what_most_of_the_folder_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h5 = tmp_path / "h5"
    for s in range(4):
        write_slice(h5 / f"volume_1_slice_{s}.h5", size=8)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), AFFINE), h5 / "stray.nii.gz")
    with caplog.at_level(logging.WARNING, logger="brats_sdk"):
        assert detect_format(h5) is DataFormat.H5
    assert "ignoring 1 NIfTI file(s)" in caplog.text and "stray.nii.gz" in caplog.text
    assert len(open_source(h5).volumes()) == 1
    nifti = tmp_path / "nifti" / "c"
    nifti.mkdir(parents=True)
    for channel in IMAGE_CHANNELS:
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), AFFINE), nifti / f"c_{channel}.nii.gz")
    write_slice(tmp_path / "nifti" / "volume_1_slice_0.h5", size=8)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="brats_sdk"):
        assert detect_format(tmp_path / "nifti") is DataFormat.NIFTI
    assert "ignoring 1 h5 slice file(s)" in caplog.text


def test_json_records_unreadable_or_not_an_object_are_one_line_naming_the_file(tmp_path: Path) -> None:
    from brats_sdk.json_files import read_json_object

    bad, listed, good = tmp_path / "bad.json", tmp_path / "list.json", tmp_path / "good.json"
    bad.write_text("{not json", encoding="utf-8")
    listed.write_text("[1, 2]", encoding="utf-8")
    good.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json: unreadable JSON .*; delete it"):
        read_json_object(bad, hint="; delete it")
    with pytest.raises(CheckpointError, match=r"list\.json: expected a JSON object$"):
        read_json_object(listed, error=CheckpointError)
    assert read_json_object(good) == {"a": 1}
