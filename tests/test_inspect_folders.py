# nibabel ships py.typed but leaves Nifti1Image() and some header methods unannotated.
# mypy: disable-error-code="no-untyped-call"
"""``brats inspect`` on every layout, and segmentations of any dtype, on small real files.

The NIfTI folders here are written with nibabel to ``tmp_path`` (helpers of
``tests/test_nifti.py``); the 14 real cases are in ``tests/test_real_files.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner

from brats_sdk.constants import MASK_CHANNELS, MASK_LABELS
from brats_sdk.data.convert import convert_nifti_to_h5
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.inspection import inspect_folder, plan_inspection
from brats_sdk.data.nifti import LABEL_TOLERANCE, NiftiFolder
from brats_sdk.data.records import VolumeInfo
from brats_sdk.data.sources import DataFormat, open_source
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import DataError
from brats_sdk.report.folder import PredictedVolume
from brats_sdk.report.truth import match_ground_truth
from cli.main import cli
from tests.test_nifti import AFFINE, SHAPE, load, tumour_labels, write_case

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=600)


def _expected_counts(labels: npt.NDArray[np.integer]) -> tuple[dict[str, int], int]:
    """Voxels per BraTS label (as mask channel names) and axial slices (file axis 2) with a label."""
    voxels = {name: int((labels == lab).sum()) for name, lab in zip(MASK_CHANNELS, MASK_LABELS, strict=True)}
    return voxels, int((labels != 0).any(axis=(0, 1)).sum())


def _near_integer_float(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.float32]:
    """Labels as a float32 map with the rounding a resampling tool leaves (4 -> 3.9999998, 2 -> 2.0000002)."""
    out = labels.astype(np.float32)
    out[labels == 4] = np.nextafter(np.float32(4), np.float32(0))
    out[labels == 2] = np.nextafter(np.float32(2), np.float32(3))
    return out


# ----------------------------------------------------------------------------- segmentation dtypes


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_segmentation_of_any_integer_valued_dtype_loads(tmp_path: Path, dtype: type[np.generic]) -> None:
    lab = tumour_labels()
    write_case(tmp_path, "c", seg=lab.astype(dtype))
    src = NiftiFolder(tmp_path)
    assert src.stored_dtypes(1)["seg"] == np.dtype(dtype).name
    vol = src.load_volume(1)
    assert vol.mask is not None
    for ch, value in enumerate(MASK_LABELS):
        np.testing.assert_array_equal(vol.mask[:, ch], np.moveaxis(lab == value, 2, 0))


def test_float_segmentation_within_rounding_is_rounded(tmp_path: Path) -> None:
    lab = tumour_labels()
    seg = _near_integer_float(lab)
    assert not np.array_equal(seg, np.round(seg))  # really off an integer, as stored
    write_case(tmp_path, "c", seg=seg)
    stored = np.asarray(load(tmp_path / "c" / "c_seg.nii.gz").dataobj)
    assert stored.dtype == np.float32 and float(stored.max()) < 4.0
    vol = NiftiFolder(tmp_path).load_volume(1)
    assert vol.mask is not None
    for ch, value in enumerate(MASK_LABELS):
        np.testing.assert_array_equal(vol.mask[:, ch], np.moveaxis(lab == value, 2, 0))


@pytest.mark.parametrize(
    ("value", "match"),
    [(1.5, r"non-integer values \(e\.g\. 1\.5\)"), (4 - 10 * LABEL_TOLERANCE, "non-integer values"), (np.nan, "NaN")],
)
def test_float_segmentation_off_integers_is_a_one_line_error(tmp_path: Path, value: float, match: str) -> None:
    seg = tumour_labels().astype(np.float32)
    seg[0, 0, 0] = value
    write_case(tmp_path, "c", seg=seg)
    with pytest.raises(DataError, match=match) as info:
        NiftiFolder(tmp_path).load_volume(1)
    assert "c_seg.nii.gz" in str(info.value) and "\n" not in str(info.value)


def test_convert_and_ground_truth_read_float_segmentations_as_loading_does(tmp_path: Path) -> None:
    lab = tumour_labels()
    write_case(tmp_path / "in", "c", seg=_near_integer_float(lab))
    data = convert_nifti_to_h5(tmp_path / "in", tmp_path / "out")
    converted = H5SliceFolder(data).load_volume(1).mask
    truth = open_source(tmp_path / "in", require_mask=True).load_volume(1).mask  # the report's reader
    assert converted is not None and truth is not None
    np.testing.assert_array_equal(converted, truth)
    assert [int(converted[:, ch].sum()) for ch in range(3)] == list(_expected_counts(lab)[0].values())

    bad = tumour_labels().astype(np.float32)
    bad[1, 1, 1] = 1.5
    write_case(tmp_path / "bad", "b", seg=bad)
    with pytest.raises(DataError, match=r"b_seg\.nii\.gz: segmentation holds non-integer values"):
        convert_nifti_to_h5(tmp_path / "bad", tmp_path / "out_bad")


# ----------------------------------------------------------------------------- inspect, NIfTI


@pytest.fixture
def mixed_folder(tmp_path: Path) -> tuple[Path, dict[str, npt.NDArray[np.integer]]]:
    """Five cases: two good (int16 and near-integer float32 segs), one unlabelled, one
    without t1ce, one with label 5."""
    root = tmp_path / "cases"
    good = tumour_labels()
    other = tumour_labels()
    other[15:20, 12:18, 2:5] = 1
    write_case(root, "case1", seg=good.astype(np.int16))
    write_case(root, "case2", seg=_near_integer_float(other))
    write_case(root, "case3")
    write_case(root, "case4", seg=good, skip=("t1ce",))
    bad = good.astype(np.int16)
    bad[0, 0, 0] = 5
    write_case(root, "case5", seg=bad)
    return root, {"case1": good, "case2": other}


def test_inspect_nifti_folder_counts_and_problems(mixed_folder: tuple[Path, dict[str, npt.NDArray[np.integer]]]) -> None:
    root, labels = mixed_folder
    plan = plan_inspection(root)
    assert (plan.layout, plan.steps, plan.unit) == (DataFormat.NIFTI, 5, "cases")
    result = inspect_folder(root)
    assert result.layout == "nifti" and result.n_volumes == 5 and not result.ok
    assert [v.name for v in result.volumes] == ["case1", "case2", "case3"]
    assert result.n_slices == 3 * SHAPE[2] and result.slices_per_volume == {SHAPE[2]: 3}
    assert result.image_shapes == {str(SHAPE): 3}
    assert result.image_dtypes == {"float32": 12}  # as written by write_case
    assert result.mask_dtypes == {"int16": 1, "float32": 1} and result.dtypes_as_stored
    assert result.volumes_with_mask == 2 and result.slices_with_mask == 2 * SHAPE[2]
    for counted in result.volumes[:2]:
        voxels, tumour = _expected_counts(labels[counted.name])
        assert counted.voxels_per_channel == voxels and counted.slices_with_tumour == tumour
    assert result.voxels_per_channel == {
        c: sum(_expected_counts(lab)[0][c] for lab in labels.values()) for c in MASK_CHANNELS
    }
    assert result.tables == {"survival_info.csv": False, "name_mapping.csv": False}
    problems = sorted(result.problems)
    assert len(problems) == 3
    assert problems[0].startswith(f"{root / 'case3'}: no segmentation (case3_seg.nii.gz), unlike other cases")
    assert problems[1].startswith(f"{root / 'case4'}: missing modality t1ce")
    assert problems[2].startswith(f"{root / 'case5' / 'case5_seg.nii.gz'}: labels [5]")


def test_cli_inspect_nifti_names_each_bad_file_and_exits_1(
    mixed_folder: tuple[Path, dict[str, npt.NDArray[np.integer]]],
) -> None:
    root, _ = mixed_folder
    res = CliRunner().invoke(cli, ["inspect", str(root), "--quiet", "--per-volume"])
    assert res.exit_code == 1, res.output
    out = res.output.replace("\n", "")
    assert "nifti (one folder per case)" in out and "float32 x1, int16 x1" in out
    for line in inspect_folder(root).problems:
        assert f"problem {line}" in out
    assert "Traceback" not in res.output

    proc = _run("inspect", str(root), "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "case4_t1ce" in proc.stderr and "case5_seg.nii.gz: labels [5]" in proc.stderr
    assert "problems" in proc.stdout and "Traceback" not in proc.stderr


def test_inspect_unlabelled_nifti_and_require_masks(tmp_path: Path) -> None:
    write_case(tmp_path, "a")
    write_case(tmp_path, "b")
    runner = CliRunner()
    fine = runner.invoke(cli, ["inspect", str(tmp_path), "--quiet"])
    assert fine.exit_code == 0, fine.output
    assert "none: unlabelled" in fine.output
    result = inspect_folder(tmp_path)
    assert result.ok and not result.labelled and result.n_volumes == 2
    required = runner.invoke(cli, ["inspect", str(tmp_path), "--quiet", "--require-masks"])
    assert required.exit_code == 1
    assert f"{tmp_path}: unlabelled, no case folder has a segmentation" in required.output.replace("\n", "")


def test_inspect_finds_nifti_as_other_commands_do(tmp_path: Path) -> None:
    nested = tmp_path / "release" / "training"
    write_case(nested, "case1", seg=tumour_labels())
    write_case(nested, "case2", seg=tumour_labels())
    assert inspect_folder(tmp_path).n_volumes == 2  # a parent of the folder of cases
    single = inspect_folder(nested / "case2")  # one case folder
    assert single.n_volumes == 1 and single.volumes[0].name == "case2" and single.ok
    res = CliRunner().invoke(cli, ["inspect", str(tmp_path), "--quiet", "--format", "h5"])
    assert res.exit_code == 1 and "no volume_<V>_slice_<S>.h5 files" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["inspect", str(empty), "--quiet"])
    assert res.exit_code == 1 and "no data under this folder" in res.output
    assert "NIfTI" in res.output and "brats pack" in res.output


def test_unreadable_and_mismatched_nifti_files_are_problems(tmp_path: Path) -> None:
    write_case(tmp_path, "ok", seg=tumour_labels())
    broken = write_case(tmp_path, "broken", seg=tumour_labels())
    (broken / "broken_t2.nii.gz").write_bytes(b"not a nifti file")
    odd = write_case(tmp_path, "odd", seg=tumour_labels())
    nib.save(nib.Nifti1Image(np.zeros((SHAPE[0], SHAPE[1], SHAPE[2] + 1), np.float32), AFFINE), odd / "odd_t1.nii.gz")
    result = inspect_folder(tmp_path)
    assert [v.name for v in result.volumes] == ["ok"]
    assert any(p.startswith(f"{broken / 'broken_t2.nii.gz'}: not a readable NIfTI file") for p in result.problems)
    assert any(p.startswith(f"{odd / 'odd_t1.nii.gz'}: shape") for p in result.problems)


# ----------------------------------------------------------------------------- inspect, h5 and packed


def test_inspect_packed_folder_matches_its_h5_source(tmp_path: Path) -> None:
    data = make_cohort(tmp_path / "h5", SynthConfig(volumes=3, slices=8, size=32, seed=0))
    runner = CliRunner()
    packed = tmp_path / "packed"
    res = runner.invoke(cli, ["pack", str(data), str(packed), "--quiet"])
    assert res.exit_code == 0, res.output
    h5 = inspect_folder(tmp_path / "h5")
    got = inspect_folder(packed)
    assert h5.layout == "h5" and got.layout == "packed" and h5.ok and got.ok
    assert got.n_volumes == h5.n_volumes == 3 and got.n_slices == h5.n_slices == 24
    assert got.voxels_per_channel == h5.voxels_per_channel
    assert [(v.volume, v.voxels_per_channel, v.slices_with_tumour) for v in got.volumes] == [
        (v.volume, v.voxels_per_channel, v.slices_with_tumour) for v in h5.volumes
    ]
    shown = runner.invoke(cli, ["inspect", str(packed), "--quiet"])
    assert shown.exit_code == 0, shown.output
    assert "packed (brats pack" in shown.output


# ----------------------------------------------------------------------------- report matching


def _predicted(volume: int, name: str) -> PredictedVolume:
    return PredictedVolume(
        volume=volume, patient_id=name, name=name, status="ok", predicted_bin=None, mean_probs=None,
        votes=None, slices_used=0, region_ml={},
    )


def test_ground_truth_is_matched_by_case_name_when_both_sides_name_cases() -> None:
    truth = [VolumeInfo(v, n, 155) for v, n in enumerate(["a", "b", "c", "d"], start=1)]
    # predictions made on a copy of cases b and d: numbered 1 and 2 there
    assert match_ground_truth([_predicted(1, "b"), _predicted(2, "d"), _predicted(3, "x")], truth) == {1: 2, 2: 4}
    # h5 or packed on either side: names are placeholders, numbers match
    placeholders = [VolumeInfo(v, f"volume_{v}", 155) for v in (1, 2, 3)]
    assert match_ground_truth([_predicted(1, "b"), _predicted(4, "d")], placeholders) == {1: 1}
    assert match_ground_truth([_predicted(2, "volume_2"), _predicted(3, "")], truth) == {2: 2, 3: 3}


def test_nifti_folder_names_its_files_and_the_folders_of_its_cases(tmp_path: Path) -> None:
    from brats_sdk.data.sources import source_dirs
    from brats_sdk.training.run import find_survival_csv

    cases = tmp_path / "release" / "training"
    write_case(cases, "case1", seg=tumour_labels())
    write_case(cases, "case2")
    (cases / "survival_info.csv").write_text("Brats20ID,Age,Survival_days,Extent_of_Resection\n")
    src = NiftiFolder(tmp_path)  # a parent of the folder of cases
    assert src.data_dirs == (cases,) and source_dirs(src) == [str(cases.resolve())]
    assert find_survival_csv(src) == cases / "survival_info.csv"
    assert [p.name for p in src.volume_files(1)] == [f"case1_{k}.nii.gz" for k in ("flair", "t1", "t1ce", "t2", "seg")]
    assert [p.name for p in src.volume_files(2)] == [f"case2_{k}.nii.gz" for k in ("flair", "t1", "t1ce", "t2")]
    assert NiftiFolder(cases / "case2").data_dirs == (cases / "case2",)  # one case folder
    assert inspect_folder(tmp_path).tables == {"survival_info.csv": True, "name_mapping.csv": False}
