from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from brats_sdk.data.h5_folder import H5SliceFolder, read_h5_slice
from brats_sdk.data.protocols import SliceSource, VolumeSource
from brats_sdk.errors import DataError
from tests.helpers import write_slice

NESTED = ("BraTS2020_training_data", "content", "data")


def _release(root: Path, volumes: tuple[int, ...] = (1, 2, 9, 10), slices: int = 3) -> Path:
    data = root.joinpath(*NESTED)
    for v in volumes:
        for s in range(slices):
            img = np.full((16, 16, 4), v * 100 + s, dtype=np.float64)
            img[..., 1] += 0.5
            write_slice(data / f"volume_{v}_slice_{s}.h5", img)
    (data / "meta_data.csv").write_text("slice_path,target,volume,slice\n")
    return data


def test_reads_nested_release_from_any_parent_in_numeric_order(tmp_path: Path) -> None:
    _release(tmp_path)
    for root in (tmp_path, tmp_path / NESTED[0], tmp_path.joinpath(*NESTED)):
        folder = H5SliceFolder(root)
        assert isinstance(folder, SliceSource) and isinstance(folder, VolumeSource)
        assert [i.volume for i in folder.volumes()] == [1, 2, 9, 10]
        assert [folder.slice_key(i) for i in range(len(folder))][:4] == [(1, 0), (1, 1), (1, 2), (2, 0)]
        assert folder.slice_key(len(folder) - 1) == (10, 2)


def test_slice_is_channels_first_float32_and_mask_uint8(tmp_path: Path) -> None:
    _release(tmp_path)
    rec = H5SliceFolder(tmp_path).read_slice(4)  # volume 2, slice 1
    assert (rec.volume, rec.index) == (2, 1)
    assert rec.image.shape == (4, 16, 16) and rec.image.dtype == np.float32
    assert rec.image[0, 0, 0] == 201.0 and rec.image[1, 0, 0] == 201.5
    assert rec.mask is not None and rec.mask.shape == (3, 16, 16) and rec.mask.dtype == np.uint8
    assert rec.mask[1, 3, 3] == 1 and rec.mask.sum() == 9


def test_load_volume_stacks_slices_in_order(tmp_path: Path) -> None:
    _release(tmp_path)
    vol = H5SliceFolder(tmp_path).load_volume(10)
    assert vol.image.shape == (3, 4, 16, 16)
    assert vol.mask is not None and vol.mask.shape == (3, 3, 16, 16)
    assert [float(vol.image[s, 0, 0, 0]) for s in range(3)] == [1000.0, 1001.0, 1002.0]


def test_construction_opens_no_file(tmp_path: Path) -> None:
    data = _release(tmp_path)
    (data / "volume_1_slice_0.h5").write_bytes(b"garbage")  # would fail if opened
    folder = H5SliceFolder(tmp_path)
    assert len(folder) == 12


def test_missing_slices_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _release(tmp_path)
    (data / "volume_2_slice_1.h5").unlink()
    folder = H5SliceFolder(tmp_path)
    info = {i.volume: i for i in folder.volumes()}[2]
    assert info.missing_slices == (1,)
    assert "missing slice" in caplog.text
    with pytest.raises(DataError, match=r"volume 2 is missing slice file\(s\) 1"):
        folder.load_volume(2)


def test_subset_and_max_volumes(tmp_path: Path) -> None:
    _release(tmp_path)
    assert [i.volume for i in H5SliceFolder(tmp_path, volumes=[10, 1]).volumes()] == [1, 10]
    assert [i.volume for i in H5SliceFolder(tmp_path, max_volumes=2).volumes()] == [1, 2]
    with pytest.raises(DataError, match=r"volumes \[5\] not found"):
        H5SliceFolder(tmp_path, volumes=[5])


def test_empty_folder_and_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no volume_<V>_slice_<S>\.h5 files"):
        H5SliceFolder(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        H5SliceFolder(tmp_path / "nope")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not hdf5 at all"), "not a readable HDF5 file"),
        (lambda p: write_slice(p, with_mask=False), "no 'mask' dataset"),
        (lambda p: write_slice(p, np.zeros((16, 16, 3))), r"'image' has shape \(16, 16, 3\)"),
        (lambda p: write_slice(p, np.zeros((16, 16, 4)), np.zeros((16, 8, 3), np.uint8)), "'mask' has shape"),
        (lambda p: write_slice(p, np.zeros((16, 16, 4)), np.zeros((16, 16, 3), np.float32)), "'mask' has dtype float32"),
        (lambda p: write_slice(p, np.zeros((16, 16, 4)), image_dtype=np.int16), "'image' has dtype int16"),
        (lambda p: write_slice(p, np.full((16, 16, 4), np.nan)), "NaN"),
        (lambda p: write_slice(p, np.zeros((16, 16, 4)), np.ones((16, 16, 3), np.uint8)), "overlap"),
        (lambda p: write_slice(p, np.zeros((16, 16, 4)), np.full((16, 16, 3), 3, np.uint8)), "values other than 0 and 1"),
    ],
)
def test_bad_files_name_the_file_and_problem(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "volume_1_slice_0.h5"
    make(path)  # type: ignore[operator]  # a writer lambda from the parametrize list
    with pytest.raises(DataError, match=message) as err:
        read_h5_slice(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_image_dataset(tmp_path: Path) -> None:
    path = tmp_path / "volume_1_slice_0.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("mask", data=np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(DataError, match="no 'image' dataset"):
        read_h5_slice(path)


def test_unlabelled_files_allowed_when_mask_not_required(tmp_path: Path) -> None:
    write_slice(tmp_path / "volume_3_slice_0.h5", with_mask=False)
    rec = H5SliceFolder(tmp_path, require_mask=False).read_slice(0)
    assert rec.mask is None
    assert H5SliceFolder(tmp_path, require_mask=False).load_volume(3).mask is None


def test_duplicate_slice_in_two_folders(tmp_path: Path) -> None:
    write_slice(tmp_path / "a" / "volume_1_slice_0.h5")
    write_slice(tmp_path / "b" / "volume_1_slice_0.h5")
    with pytest.raises(DataError, match="also at"):
        H5SliceFolder(tmp_path)
