# nibabel ships py.typed but leaves Nifti1Image() and some header methods unannotated.
# mypy: disable-error-code="no-untyped-call"
"""NiftiFolder (reading BraTS NIfTI cases) and write_label_nifti (writing label maps)."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest

from brats_sdk.constants import IMAGE_CHANNELS
from brats_sdk.data.nifti import NiftiFolder, axial_axis, looks_like_nifti_folder
from brats_sdk.data.nifti_out import default_affine, write_label_nifti
from brats_sdk.data.protocols import DataSource, SliceSource, VolumeSource
from brats_sdk.data.records import VolumeRecord
from brats_sdk.errors import ConfigError, DataError
from tests.conftest import SHARED

SHAPE = (24, 20, 12)  # file axes (x, y, z); z is axial
# LPS with 1.5 x 2 x 3 mm voxels and an offset, as BraTS files are (but not 1 mm).
AFFINE = np.array([[-1.5, 0, 0, 30.0], [0, -2.0, 0, 50.0], [0, 0, 3.0, -20.0], [0, 0, 0, 1]])
# A coronal-major file: voxel axis 1 runs superior, axis 2 anterior.
AFFINE_AXIS1 = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])
NAMES_2020 = {"flair": "_flair", "t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "seg": "_seg"}
NAMES_2021 = {"flair": "-t2f", "t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "seg": "-seg"}
REAL_CASE = SHARED / "data" / "real" / "BraTS-GLI-00001-000"


def load(path: Path) -> nib.Nifti1Image:
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    return img


def channel_data(c: int, shape: tuple[int, int, int] = SHAPE) -> npt.NDArray[np.float32]:
    """Every voxel distinct, and the channel readable from the thousands: c * 10000 + index."""
    return (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 10000 * c).astype(
        np.float32
    )


def tumour_labels(shape: tuple[int, int, int] = SHAPE, et: int = 4) -> npt.NDArray[np.uint8]:
    lab = np.zeros(shape, dtype=np.uint8)
    lab[5:15, 4:12, 3:9] = 2
    lab[7:12, 6:10, 4:8] = et
    lab[8:10, 7:9, 5:7] = 1
    return lab


def write_case(
    root: Path,
    name: str,
    *,
    naming: dict[str, str] = NAMES_2020,
    ext: str = ".nii.gz",
    seg: npt.NDArray[np.integer] | None = None,
    affine: npt.NDArray[np.float64] = AFFINE,
    shape: tuple[int, int, int] = SHAPE,
    skip: tuple[str, ...] = (),
) -> Path:
    """A case folder with the four modalities (channel_data) and optionally a segmentation."""
    case = root / name
    case.mkdir(parents=True, exist_ok=True)
    for c, channel in enumerate(IMAGE_CHANNELS):
        if channel in skip:
            continue
        nib.save(
            nib.Nifti1Image(channel_data(c, shape), affine), case / f"{name}{naming[channel]}{ext}"
        )
    if seg is not None:
        nib.save(nib.Nifti1Image(np.asarray(seg), affine), case / f"{name}{naming['seg']}{ext}")
    return case


def test_satisfies_protocols_and_numbers_cases_in_natural_order(tmp_path: Path) -> None:
    for name in ("case10", "case2", "case1"):
        write_case(tmp_path, name)
    (tmp_path / "notes").mkdir()  # a folder without NIfTI files is not a case
    src = NiftiFolder(tmp_path)
    assert (
        isinstance(src, DataSource)
        and isinstance(src, SliceSource)
        and isinstance(src, VolumeSource)
    )
    assert [(i.volume, i.name) for i in src.volumes()] == [
        (1, "case1"),
        (2, "case2"),
        (3, "case10"),
    ]
    assert src.case_name(3) == "case10" and src.case_dir(3) == tmp_path / "case10"
    assert len(src) == 3 * SHAPE[2]
    assert (
        src.slice_key(0) == (1, 0)
        and src.slice_key(SHAPE[2]) == (2, 0)
        and src.slice_key(len(src) - 1) == (3, 11)
    )
    info = src.volumes()[0]
    assert info.n_slices == 12 and not info.has_mask and info.spacing == (3.0, 1.5, 2.0)


def test_construction_opens_no_file_and_filters_volumes(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write_case(tmp_path, name)
    (tmp_path / "b" / "b_t1.nii.gz").write_bytes(b"garbage")  # would fail if opened
    src = NiftiFolder(tmp_path, volumes=[3, 1])
    assert [i.name for i in src.volumes()] == ["a", "c"]  # numbers stay those of the full folder
    assert [i.volume for i in NiftiFolder(tmp_path, max_volumes=2).volumes()] == [1, 2]
    with pytest.raises(DataError, match=r"volumes \[7\] not found"):
        NiftiFolder(tmp_path, volumes=[1, 7])
    with pytest.raises(DataError, match="no volume 2"):
        src.load_volume(2)


def test_finds_nested_cases_and_a_single_case_folder(tmp_path: Path) -> None:
    nested = tmp_path / "BraTS2020_TrainingData" / "MICCAI_BraTS2020_TrainingData"
    write_case(nested, "BraTS20_Training_001")
    write_case(nested, "BraTS20_Training_002")
    assert [i.name for i in NiftiFolder(tmp_path).volumes()] == [
        "BraTS20_Training_001",
        "BraTS20_Training_002",
    ]
    single = NiftiFolder(nested / "BraTS20_Training_002")
    assert [(i.volume, i.name) for i in single.volumes()] == [(1, "BraTS20_Training_002")]
    assert looks_like_nifti_folder(tmp_path) and looks_like_nifti_folder(
        nested / "BraTS20_Training_002"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not looks_like_nifti_folder(empty) and not looks_like_nifti_folder(tmp_path / "absent")
    with pytest.raises(DataError, match="no case folder"):
        NiftiFolder(empty)
    with pytest.raises(DataError, match="not a folder"):
        NiftiFolder(tmp_path / "absent")


@pytest.mark.parametrize(
    ("naming", "ext"),
    [(NAMES_2020, ".nii"), (NAMES_2020, ".nii.gz"), (NAMES_2021, ".nii.gz"), (NAMES_2021, ".nii")],
)
def test_channel_order_and_axial_slicing(tmp_path: Path, naming: dict[str, str], ext: str) -> None:
    write_case(tmp_path, "BraTS-GLI-00002-000", naming=naming, ext=ext)
    src = NiftiFolder(tmp_path)
    assert list(src.case_files(1)) == list(IMAGE_CHANNELS)
    vol = src.load_volume(1)
    assert vol.image.shape == (12, 4, 24, 20) and vol.image.dtype == np.float32 and vol.mask is None
    for c in range(4):
        data = channel_data(c)
        # value at data[x, y, k] appears at image[k, c, x, y]
        assert vol.image[7, c, 3, 5] == data[3, 5, 7]
        np.testing.assert_array_equal(vol.image[:, c], np.moveaxis(data, 2, 0))
    rec = src.read_slice(4)
    assert (rec.volume, rec.index) == (1, 4) and rec.image.shape == (4, 24, 20)
    np.testing.assert_array_equal(rec.image[1], channel_data(1)[:, :, 4])


def test_axial_axis_follows_the_affine(tmp_path: Path) -> None:
    assert axial_axis(AFFINE) == 2 and axial_axis(AFFINE_AXIS1) == 1
    write_case(tmp_path, "cor", affine=AFFINE_AXIS1, seg=tumour_labels())
    src = NiftiFolder(tmp_path)
    vol = src.load_volume(1)
    assert vol.image.shape == (20, 4, 24, 12)  # y is the slice axis; x, z keep file order
    assert vol.image[6, 2, 3, 5] == channel_data(2)[3, 6, 5]
    assert vol.mask is not None and vol.mask[6, 1, 10, 4] == (tumour_labels()[10, 6, 4] == 2)


def test_labels_become_one_hot_channels(tmp_path: Path) -> None:
    lab = tumour_labels()
    write_case(tmp_path, "c", seg=lab.astype(np.int16))
    vol = NiftiFolder(tmp_path, require_mask=True).load_volume(1)
    assert vol.info.has_mask and vol.mask is not None
    assert vol.mask.shape == (12, 3, 24, 20) and vol.mask.dtype == np.uint8
    for ch, value in enumerate((1, 2, 4)):  # NCR, ED, ET
        np.testing.assert_array_equal(vol.mask[:, ch], np.moveaxis(lab == value, 2, 0))
    assert int(vol.mask.sum(axis=1).max()) == 1


def test_float_segmentation_is_accepted(tmp_path: Path) -> None:
    write_case(tmp_path, "c", seg=tumour_labels().astype(np.float64))
    vol = NiftiFolder(tmp_path).load_volume(1)
    assert vol.mask is not None and int(vol.mask[:, 2].sum()) == int((tumour_labels() == 4).sum())


def test_label_3_is_read_under_the_named_convention(tmp_path: Path) -> None:
    write_case(tmp_path, "g", naming=NAMES_2021, seg=tumour_labels(et=3))
    with pytest.raises(DataError, match=r"g-seg\.nii\.gz: holds label 3, .* --label-convention brats2012 or brats2023"):
        NiftiFolder(tmp_path).load_volume(1)
    as_2023 = NiftiFolder(tmp_path, label_convention="brats2023").load_volume(1)
    assert as_2023.mask is not None
    np.testing.assert_array_equal(as_2023.mask[:, 2], np.moveaxis(tumour_labels() == 4, 2, 0))
    as_2012 = NiftiFolder(tmp_path, label_convention="brats2012").load_volume(1)
    assert as_2012.mask is not None and int(as_2012.mask[:, 2].sum()) == 0
    expected_ncr = (tumour_labels() == 4) | (tumour_labels() == 1)
    np.testing.assert_array_equal(as_2012.mask[:, 0], np.moveaxis(expected_ncr, 2, 0))


def _one_line_error(src: NiftiFolder, match: str) -> str:
    with pytest.raises(DataError, match=match) as info:
        src.load_volume(1)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_error_missing_modality(tmp_path: Path) -> None:
    write_case(tmp_path, "c", skip=("t1ce",))
    msg = _one_line_error(NiftiFolder(tmp_path), "missing modality t1ce")
    assert "c_t1ce" in msg and "c-t1c" in msg


def test_error_shapes_disagree(tmp_path: Path) -> None:
    case = write_case(tmp_path, "c")
    nib.save(nib.Nifti1Image(np.zeros((24, 20, 11), np.float32), AFFINE), case / "c_t2.nii.gz")
    _one_line_error(
        NiftiFolder(tmp_path), r"c_t2\.nii\.gz: shape \(24, 20, 11\) differs from c_flair"
    )


def test_error_seg_shape_disagrees(tmp_path: Path) -> None:
    write_case(tmp_path, "c", seg=np.zeros((24, 20, 13), np.uint8))
    _one_line_error(NiftiFolder(tmp_path), r"c_seg\.nii\.gz: shape")


@pytest.mark.parametrize(
    ("bad", "match"), [(5, r"labels \[5\]"), (-1, r"labels \[-1\]"), (300, r"labels \[300\]")]
)
def test_error_labels_outside_brats(tmp_path: Path, bad: int, match: str) -> None:
    lab = tumour_labels().astype(np.int16)
    lab[0, 0, 0] = bad
    write_case(tmp_path, "c", seg=lab)
    msg = _one_line_error(NiftiFolder(tmp_path), match)
    assert "c_seg.nii.gz" in msg


def test_error_labels_3_and_4_together(tmp_path: Path) -> None:
    lab = tumour_labels()
    lab[0, 0, 0] = 3
    write_case(tmp_path, "c", seg=lab)
    _one_line_error(NiftiFolder(tmp_path, label_convention="brats2023"), "both labels 3 and 4")
    # In the 2012-2016 convention 3 and 4 coexist: 3 joins label 1.
    mask = NiftiFolder(tmp_path, label_convention="brats2012").load_volume(1).mask
    assert mask is not None and int(mask[:, 0].sum()) == int((tumour_labels() == 1).sum()) + 1


@pytest.mark.parametrize("content", [b"garbage", b"", b"\x1f\x8b\x08\x00broken"])
def test_error_not_nifti(tmp_path: Path, content: bytes) -> None:
    case = write_case(tmp_path, "c")
    (case / "c_t1.nii.gz").write_bytes(content)
    _one_line_error(NiftiFolder(tmp_path), r"c_t1\.nii\.gz: not a readable NIfTI file")


def test_error_truncated_file(tmp_path: Path) -> None:
    case = write_case(tmp_path, "c", ext=".nii")
    path = case / "c_t2.nii"
    path.write_bytes(path.read_bytes()[:1000])
    _one_line_error(NiftiFolder(tmp_path), r"c_t2\.nii: cannot read the voxel data")


def test_error_required_mask_missing_and_duplicate_modality(tmp_path: Path) -> None:
    case = write_case(tmp_path, "c")
    with pytest.raises(DataError, match="no segmentation"):
        NiftiFolder(tmp_path, require_mask=True).volumes()
    nib.save(nib.Nifti1Image(channel_data(0), AFFINE), case / "c_flair.nii")
    with pytest.raises(DataError, match="second flair file"):
        NiftiFolder(tmp_path).load_volume(1)


def test_sequential_slice_reads_load_each_volume_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_case(tmp_path, "a", seg=tumour_labels())
    write_case(tmp_path, "b")
    src = NiftiFolder(tmp_path)
    loads: list[int] = []
    original = NiftiFolder._load

    def counting(self: NiftiFolder, volume: int) -> VolumeRecord:
        loads.append(volume)
        return original(self, volume)

    monkeypatch.setattr(NiftiFolder, "_load", counting)
    recs = [src.read_slice(i) for i in range(len(src))]
    assert loads == [1, 2]
    assert recs[0].mask is not None and recs[-1].mask is None
    recs[0].image[:] = -1  # a copy: the cache is untouched
    src.read_slice(len(src) - 1)
    src.read_slice(0)
    assert loads == [1, 2, 1]
    assert src.read_slice(0).image[0, 0, 0] == channel_data(0)[0, 0, 0]
    clone = pickle.loads(pickle.dumps(src))  # as DataLoader workers get it: no cached volume
    assert clone._cache is None and len(clone) == len(src)


# ----------------------------------------------------------------------------- writing


def test_write_label_nifti_round_trip_with_reference(tmp_path: Path) -> None:
    write_case(tmp_path / "in", "c", seg=tumour_labels())
    src = NiftiFolder(tmp_path / "in")
    ref = src.reference_image(1)
    assert ref.shape == SHAPE and ref.volume_shape == (12, 24, 20)
    sdk_labels = np.moveaxis(tumour_labels(), 2, 0)
    out = tmp_path / "out" / "c_pred.nii.gz"
    write_label_nifti(out, sdk_labels, reference=ref)
    img = load(out)
    assert img.shape == SHAPE and np.allclose(img.affine, AFFINE)
    assert img.get_data_dtype() == np.uint8 and img.header.get_intent()[0] == "label"
    back = np.asarray(img.dataobj)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, tumour_labels())
    assert os.listdir(tmp_path / "out") == ["c_pred.nii.gz"]  # no temporary file left


def test_written_prediction_reads_back_as_the_same_mask(tmp_path: Path) -> None:
    """Write a prediction as the case's segmentation and read it with the adapter again."""
    case = write_case(tmp_path, "cor", affine=AFFINE_AXIS1, naming=NAMES_2021, ext=".nii")
    src = NiftiFolder(tmp_path)
    labels = np.zeros((20, 24, 12), np.uint8)
    labels[3:9, 2:7, 1:4] = 4
    labels[5, 4, 2] = 1
    write_label_nifti(case / "cor-seg.nii", labels, reference=src.reference_image(1))
    vol = NiftiFolder(tmp_path).load_volume(1)
    assert vol.mask is not None
    for ch, value in enumerate((1, 2, 4)):
        np.testing.assert_array_equal(vol.mask[:, ch], labels == value)


def test_write_label_nifti_without_reference(tmp_path: Path) -> None:
    labels = np.zeros((12, 24, 20), np.int64)
    labels[2, 3, 4] = 2
    write_label_nifti(tmp_path / "p.nii", labels, reference=None, spacing=(3.0, 1.5, 2.0))
    img = load(tmp_path / "p.nii")
    assert img.shape == (24, 20, 12) and img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(
        np.asarray(img.affine, np.float64), default_affine(labels.shape, (3.0, 1.5, 2.0))
    )
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S") and img.header.get_zooms() == (
        1.5,
        2.0,
        3.0,
    )
    np.testing.assert_array_equal(np.moveaxis(np.asarray(img.dataobj), 2, 0), labels)
    np.testing.assert_allclose(default_affine((155, 240, 240))[:3, 3], (0, 239, 0))


def test_write_label_nifti_errors(tmp_path: Path) -> None:
    write_case(tmp_path / "in", "c")
    ref = NiftiFolder(tmp_path / "in").reference_image(1)
    good = np.zeros((12, 24, 20), np.uint8)
    with pytest.raises(ConfigError, match=r"\.nii\.gz or \.nii"):
        write_label_nifti(tmp_path / "p.h5", good, reference=ref)
    with pytest.raises(DataError, match=r"label map has shape \(24, 20, 12\)"):
        write_label_nifti(tmp_path / "p.nii.gz", np.zeros(SHAPE, np.uint8), reference=ref)
    bad = good.copy()
    bad[0, 0, 0] = 3
    with pytest.raises(DataError, match=r"labels \[3\]"):
        write_label_nifti(tmp_path / "p.nii.gz", bad, reference=ref)
    with pytest.raises(DataError, match="expected integers"):
        write_label_nifti(tmp_path / "p.nii.gz", good.astype(np.float32), reference=ref)
    assert not (tmp_path / "p.nii.gz").exists()


# ----------------------------------------------------------------------------- real case


@pytest.mark.skipif(not REAL_CASE.is_dir(), reason="real BraTS case not available")
def test_real_case_loads_and_prediction_aligns(tmp_path: Path) -> None:
    src = NiftiFolder(REAL_CASE.parent)
    assert [(i.volume, i.name) for i in src.volumes()] == [(1, REAL_CASE.name)]
    t0 = time.perf_counter()
    vol = src.load_volume(1)
    elapsed = time.perf_counter() - t0
    assert (
        vol.image.shape == (155, 4, 240, 240) and vol.image.dtype == np.float32 and vol.mask is None
    )
    assert elapsed < 10.0
    brain = int((vol.image.reshape(155, -1) != 0).any(axis=1).sum())
    assert 120 <= brain <= 140
    # flair (t2f) is channel 0: its file at [:, :, 77] is image[77, 0]
    flair = np.asarray(load(REAL_CASE / f"{REAL_CASE.name}-t2f.nii.gz").dataobj)
    np.testing.assert_array_equal(vol.image[77, 0], flair[:, :, 77].astype(np.float32))

    ref = src.reference_image(1)
    labels = np.zeros((155, 240, 240), np.uint8)
    labels[60:90, 100:140, 80:120] = 2
    labels[70:80, 110:130, 90:110] = 4
    out = tmp_path / f"{REAL_CASE.name}_pred.nii.gz"
    write_label_nifti(out, labels, reference=ref)
    img = load(out)
    scan = load(REAL_CASE / f"{REAL_CASE.name}-t1c.nii.gz")
    assert img.shape == scan.shape and np.allclose(img.affine, scan.affine)
    np.testing.assert_array_equal(np.moveaxis(np.asarray(img.dataobj), 2, 0), labels)
