"""convert_nifti_to_h5 and ``brats convert``: NIfTI cases -> the Kaggle h5 layout."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import click
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from brats_sdk.constants import KAGGLE_DATA_SUBDIR
from brats_sdk.data.clinical import PatientIdMap
from brats_sdk.data.convert import VOLUME_MAP_CSV, convert_nifti_to_h5
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.errors import BratsError, DataError
from cli.convert_cmd import convert_cmd
from tests.test_nifti import NAMES_2021, REAL_CASE, SHAPE, tumour_labels, write_case


def _cohort(root: Path) -> Path:
    src = root / "nifti"
    write_case(src, "BraTS20_Training_001", seg=tumour_labels())
    write_case(src, "BraTS20_Training_002", naming=NAMES_2021, ext=".nii")  # no segmentation
    (src / "survival_info.csv").write_text(
        "Brats20ID,Age,Survival_days,Extent_of_Resection\nBraTS20_Training_001,60.0,300,GTR\n"
    )
    return src


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_convert_gives_identical_slices_through_the_h5_adapter(tmp_path: Path) -> None:
    src = _cohort(tmp_path)
    calls: list[int] = []
    data_dir = convert_nifti_to_h5(src, tmp_path / "out", progress=calls.append)
    assert data_dir == (tmp_path / "out").joinpath(*KAGGLE_DATA_SUBDIR)
    assert calls == [1] * (2 * SHAPE[2])

    nifti = NiftiFolder(src)
    h5 = H5SliceFolder(tmp_path / "out", require_mask=False)
    assert len(h5) == len(nifti) == 24
    for i in range(len(h5)):
        a, b = nifti.read_slice(i), h5.read_slice(i)
        assert (a.volume, a.index) == (b.volume, b.index) == nifti.slice_key(i)
        np.testing.assert_array_equal(a.image, b.image)
        if a.mask is None:
            assert b.mask is None
        else:
            assert b.mask is not None
            np.testing.assert_array_equal(a.mask, b.mask)
    with h5py.File(data_dir / "volume_1_slice_5.h5") as f:
        assert f["image"].shape == (24, 20, 4) and f["image"].dtype == np.float32
        assert f["mask"].shape == (24, 20, 3) and f["mask"].dtype == np.uint8
    with h5py.File(data_dir / "volume_2_slice_5.h5") as f:
        assert "mask" not in f

    meta = _rows(data_dir / "meta_data.csv")
    assert list(meta[0]) == ["slice_path", "target", "volume", "slice"]
    assert meta[0] == {
        "slice_path": "/content/data/volume_1_slice_0.h5",
        "target": "0",
        "volume": "1",
        "slice": "0",
    }
    tumour_slices = {int(r["slice"]) for r in meta if r["volume"] == "1" and r["target"] == "1"}
    assert tumour_slices == set(range(3, 9))
    assert all(r["target"] == "0" for r in meta if r["volume"] == "2")

    ids = PatientIdMap.from_csv(data_dir / VOLUME_MAP_CSV)
    assert (
        ids.patient_id(1) == "BraTS20_Training_001" and ids.patient_id(2) == "BraTS20_Training_002"
    )
    assert (data_dir / "survival_info.csv").read_text() == (src / "survival_info.csv").read_text()
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_convert_uncompressed_selected_volume_and_overwrite(tmp_path: Path) -> None:
    src = _cohort(tmp_path)
    out = tmp_path / "out"
    data_dir = convert_nifti_to_h5(src, out, compress=False)
    with pytest.raises(DataError, match="already holds 24 slice files"):
        convert_nifti_to_h5(src, out, volumes=[2])
    convert_nifti_to_h5(src, out, volumes=[2], overwrite=True)
    h5 = H5SliceFolder(out, require_mask=False)
    assert [i.volume for i in h5.volumes()] == [2]  # volume 1's slices were removed
    assert {r["volume"] for r in _rows(data_dir / "meta_data.csv")} == {"2"}
    np.testing.assert_array_equal(h5.load_volume(2).image, NiftiFolder(src).load_volume(2).image)


def test_convert_reports_bad_case_naming_the_file(tmp_path: Path) -> None:
    src = _cohort(tmp_path)
    (src / "BraTS20_Training_002" / "BraTS20_Training_002-t1c.nii").write_bytes(b"not nifti")
    with pytest.raises(
        DataError, match=r"BraTS20_Training_002-t1c\.nii: not a readable NIfTI file"
    ):
        convert_nifti_to_h5(src, tmp_path / "out")


class _Group(click.Group):
    """Like the app's group: library errors become one-line ClickExceptions."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BratsError as exc:
            raise click.ClickException(str(exc)) from exc


def test_cli_convert(tmp_path: Path) -> None:
    src = _cohort(tmp_path)
    app = _Group(commands={"convert": convert_cmd})
    runner = CliRunner()
    result = runner.invoke(
        app, ["convert", str(src), str(tmp_path / "out"), "--volumes", "1", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "Converted 1 volume, 0 failed (12 slices)" in result.output
    assert len(H5SliceFolder(tmp_path / "out")) == 12

    # A rerun over more cases keeps the one converted and converts the other.
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0 and "Converted 1 volume, kept 1 converted before" in result.output
    # Slice files of cases outside this conversion are not its own: refused.
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out"), "--volumes", "2", "--quiet"])
    assert result.exit_code == 1 and "already holds 24 slice files" in result.output
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "o2"), "--volumes", "x"])
    assert result.exit_code == 2 and "comma-separated integers" in result.output
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "o2"), "--volumes", "9"])
    assert result.exit_code == 1 and "volumes [9] not found" in result.output


@pytest.mark.skipif(not REAL_CASE.is_dir(), reason="real BraTS case not available")
def test_convert_real_case(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    data_dir = convert_nifti_to_h5(REAL_CASE, tmp_path)
    assert time.perf_counter() - t0 < 30.0
    h5 = H5SliceFolder(tmp_path, require_mask=False)
    assert len(h5) == 155
    vol = NiftiFolder(REAL_CASE).load_volume(1)
    np.testing.assert_array_equal(h5.read_slice(77).image, vol.image[77])
    assert PatientIdMap.from_csv(data_dir / VOLUME_MAP_CSV).patient_id(1) == REAL_CASE.name
