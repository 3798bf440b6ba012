from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from brats_sdk.constants import IMAGE_CHANNELS, META_CSV, NAME_MAPPING_CSV, SURVIVAL_CSV
from brats_sdk.data import packed_writer as pack_mod
from brats_sdk.data.convert import convert_nifti_to_h5
from brats_sdk.data.crops import RandomCrops, Window
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.normalise import Normalisation, brain_mask, slice_moments, slice_stats
from brats_sdk.data.packed import (
    PACKED_FORMAT_VERSION,
    PACKED_MANIFEST,
    PackedFolder,
    is_packed_folder,
    packed_path,
)
from brats_sdk.data.packed_writer import pack_folder
from brats_sdk.data.protocols import DataSource, SliceSource, VolumeSource
from brats_sdk.data.scan import scan_source
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.labels import one_hot_to_classes
from cli.pack_cmd import pack_cmd
from tests.helpers import write_slice

CONFIG = SynthConfig(volumes=3, slices=12, size=48)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic Kaggle-layout data folder (3 volumes x 12 slices x 48^2), shared read-only."""
    return make_cohort(tmp_path_factory.mktemp("cohort"), CONFIG)


@pytest.fixture
def own_cohort(cohort: Path, tmp_path: Path) -> Path:
    """A private copy of the cohort that a test may modify."""
    data = tmp_path / "src" / "data"
    shutil.copytree(cohort, data)
    return data


def _stamps(out: Path) -> dict[str, tuple[int, int]]:
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(out.glob("volume_*.h5"))
    }


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))


# float16 keeps 10 fraction bits: rounding to nearest moves a value by at most 2**-11 of it.
HALF_ROUNDING = 2.0**-11


def _box(path: Path) -> list[int]:
    with h5py.File(path, "r") as f:
        return [int(x) for x in f.attrs["box"]]


def _value_bound(x: npt.NDArray[np.float64], m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """How far a float16-packed value may be from ``x`` (``m``: its slice minimum, broadcast).

    The file stores ``x - m`` rounded to float16 (at most ``2**-11`` of it off, or
    ``2**-25`` below float16's normal range) and the reader adds ``m`` back in float32
    (half a float32 ulp of the sum); a brain voxel whose distance rounds to nothing is
    moved up by the least step that keeps it above ``m`` (a float32 ulp of ``m``, or a
    float16 subnormal). Every term is covered, with a factor 2 to spare on the small ones.
    """
    return HALF_ROUNDING * (x - m) + 2.0**-22 * (np.abs(x) + np.abs(m)) + 2.0**-23


def _input_tolerance(image: npt.NDArray[np.float32], brain: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Per channel, how far the normalised network input of a float16-packed slice may be
    from that of ``image`` (its source slice, ``(C, H, W)``).

    Per-slice normalisation gives ``y = (x - mean) / std`` over the brain voxels, which
    packing leaves as they are. If every brain value moves by at most ``E``, the mean
    moves by at most ``E`` and the standard deviation by at most ``E`` (it is the RMS of
    ``x - mean``, and an RMS moves by at most the RMS of the change), so
    ``|y' - y| <= ((x' - x) - (mean' - mean) + y (std - std')) / std'
    <= E (2 + |y|) / std'``, with ``std' >= std - E``. On top of that, both sides' float32
    arithmetic (``(x - mean) * (1 / std)``) rounds, a few ulps of the inputs over ``std``.
    """
    x = image.astype(np.float64)
    m = x.min(axis=(1, 2), keepdims=True)
    vals = x[:, brain]
    if vals.shape[1] == 0:
        return np.zeros(x.shape[0])
    stats = slice_stats(image, brain)
    mean, std = np.asarray(stats.mean), np.asarray(stats.std)
    e = _value_bound(vals, m[:, :, 0]).max(axis=1)
    y = np.abs(vals - mean[:, None]).max(axis=1) / std
    low = np.maximum(std - e, 1e-6)
    arithmetic = 2.0**-21 * (1.0 + y + (np.abs(vals).max(axis=1) + np.abs(mean)) / low)
    out: npt.NDArray[np.float64] = e * (2.0 + y) / low + arithmetic
    return out


def _datasets(
    ref: SliceSource, got: SliceSource, crop: Window | RandomCrops | None, rule: Normalisation
) -> tuple[SegmentationDataset, SegmentationDataset]:
    order = list(np.random.default_rng(0).permutation(len(ref)))
    stats = scan_source(ref).stats if rule is Normalisation.VOLUME else None
    return (
        SegmentationDataset(ref, order, stats, crop=crop, normalisation=rule),
        SegmentationDataset(got, order, stats, crop=crop, normalisation=rule),
    )


def assert_same_network_input(
    ref: SliceSource,
    got: SliceSource,
    *,
    exact: bool,
    crop: Window | RandomCrops | None = None,
    step: int = 1,
) -> None:
    """``SegmentationDataset`` serves the same items from ``ref`` and ``got`` (every
    ``step``-th of a shuffled order): bit for bit when ``exact``, else targets identical
    and images within :func:`_input_tolerance`."""
    ds_ref, ds_got = _datasets(ref, got, crop, Normalisation.SLICE)
    for i in range(0, len(ds_ref), step):
        torch.manual_seed(i)  # the same random window on both sides
        a = ds_ref[i]
        torch.manual_seed(i)
        b = ds_got[i]
        assert a.keys() == b.keys()
        assert torch.equal(a["target"], b["target"]), i
        assert torch.equal(a["volume"], b["volume"]) and torch.equal(a["slice"], b["slice"])
        if exact:
            assert torch.equal(a["image"], b["image"]), i
            continue
        rec = ref.read_slice(ds_ref.indices[i])
        tol = _input_tolerance(rec.image, brain_mask(rec.image))
        diff = (a["image"].double() - b["image"].double()).abs().amax(dim=(1, 2)).numpy()
        assert (diff <= tol).all(), (i, diff, tol)


def assert_same_records(ref: SliceSource, got: PackedFolder, *, exact: bool) -> None:
    """Full-frame slices, masks and the stored brain, classes and moments agree."""
    assert [got.slice_key(i) for i in range(len(got))] == [ref.slice_key(i) for i in range(len(ref))]
    for i in range(len(ref)):
        a, b = ref.read_slice(i), got.read_slice(i)
        assert (a.volume, a.index) == (b.volume, b.index)
        assert b.image.dtype == np.float32 and b.image.shape == a.image.shape
        assert b.image.flags.writeable and b.image.flags.c_contiguous
        brain = brain_mask(a.image)
        # What the dataset's fast path takes from the record is what it would compute.
        assert b.brain is not None and np.array_equal(b.brain, brain_mask(b.image))
        assert np.array_equal(b.brain, brain), i
        assert b.moments == slice_moments(b.image, b.brain)
        assert np.array_equal(b.image.min(axis=(1, 2)), a.image.min(axis=(1, 2)))
        if exact:
            assert np.array_equal(a.image, b.image), i
        else:
            x = a.image.astype(np.float64)
            bound = _value_bound(x, x.min(axis=(1, 2), keepdims=True))
            assert (np.abs(b.image - x) <= bound).all(), i
        assert a.mask is not None and b.mask is not None and b.mask.dtype == np.uint8
        assert np.array_equal(a.mask, b.mask)
        assert b.classes is not None and np.array_equal(b.classes, one_hot_to_classes(a.mask))


def test_float32_round_trip_is_bit_identical(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    result = pack_folder(cohort.parents[2], out)  # a parent of the data folder works too
    assert (
        result.ok
        and result.packed == (1, 2, 3)
        and result.skipped == ()
        and result.image_dtype == "float32"
    )
    ref, got = H5SliceFolder(cohort), PackedFolder(out)
    assert (
        isinstance(got, DataSource)
        and isinstance(got, SliceSource)
        and isinstance(got, VolumeSource)
    )
    assert got.root == out and got.data_dirs == (out,)
    assert len(got) == len(ref) == 36
    assert [(i.volume, i.n_slices, i.has_mask) for i in got.volumes()] == [
        (v, 12, True) for v in (1, 2, 3)
    ]
    assert_same_records(ref, got, exact=True)
    for v in (1, 2, 3):
        va, vb = ref.load_volume(v), got.load_volume(v)
        assert vb.image.dtype == np.float32 and np.array_equal(va.image, vb.image)
        assert va.mask is not None and vb.mask is not None and np.array_equal(va.mask, vb.mask)
    for name in (META_CSV, SURVIVAL_CSV, NAME_MAPPING_CSV):
        assert (out / name).read_bytes() == (cohort / name).read_bytes()
    manifest = json.loads((out / PACKED_MANIFEST).read_text())
    assert manifest["format"] == "brats_sdk.packed" and manifest["format_version"] == 2
    assert manifest["volumes"] == [1, 2, 3] and manifest["image_dtype"] == "float32"
    with h5py.File(packed_path(out, 1), "r") as f:
        z0, z1, y0, y1, x0, x1 = (int(x) for x in f.attrs["box"])
        # The synthetic brain leaves a margin: the box is smaller than the frame.
        assert (z1 - z0) * (y1 - y0) * (x1 - x0) < 12 * 48 * 48
        assert f["image"].shape == (z1 - z0, 4, y1 - y0, x1 - x0)
        assert f["image"].chunks == (1, 4, y1 - y0, x1 - x0) and f["image"].compression is None
        assert f["classes"].dtype == np.uint8 and f["classes"].shape == (z1 - z0, y1 - y0, x1 - x0)
        assert f["classes"].chunks == (1, y1 - y0, x1 - x0) and "mask" not in f
        assert f["minimum"].shape == (12, 4) and f["minimum"].dtype == np.float32
        assert f["moments_sum"].shape == (12, 4) and f["moments_count"].shape == (12,)
        assert (
            bool(f.attrs["complete"])
            and int(f.attrs["n_slices"]) == 12
            and int(f.attrs["volume"]) == 1
            and (int(f.attrs["height"]), int(f.attrs["width"])) == (48, 48)
            and f.attrs["format_version"] == PACKED_FORMAT_VERSION == 2
        )
    assert is_packed_folder(out) and not is_packed_folder(cohort)
    assert _leftovers(out) == []


@pytest.mark.parametrize("image_dtype", ["float32", "float16"])
def test_network_input_is_that_of_the_source(cohort: Path, tmp_path: Path, image_dtype: str) -> None:
    """Kaggle-style input (per-slice z-scores, background at a negative slice minimum):
    whole slices, a fixed window and random training windows, as training reads them."""
    pack_folder(cohort, tmp_path / "packed", image_dtype=image_dtype)  # type: ignore[arg-type]  # a valid ImageDtype
    ref, got = H5SliceFolder(cohort), PackedFolder(tmp_path / "packed")
    exact = image_dtype == "float32"
    assert scan_source(ref).slices == scan_source(got).slices  # brain pixels, boxes, tumour
    for crop in (None, Window(8, 40, 4, 36), RandomCrops(32)):
        assert_same_network_input(ref, got, exact=exact, crop=crop)
    if exact:
        assert scan_source(ref) == scan_source(got)


def test_volume_normalisation_is_identical_too(cohort: Path, tmp_path: Path) -> None:
    pack_folder(cohort, tmp_path / "packed")
    ref, got = H5SliceFolder(cohort), PackedFolder(tmp_path / "packed")
    ds_ref, ds_got = _datasets(ref, got, RandomCrops(32), Normalisation.VOLUME)
    for i in range(len(ds_ref)):
        torch.manual_seed(i)
        a = ds_ref[i]
        torch.manual_seed(i)
        b = ds_got[i]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_float16_values_brain_and_size(cohort: Path, tmp_path: Path) -> None:
    pack_folder(cohort, tmp_path / "f32")
    result = pack_folder(cohort, tmp_path / "f16", image_dtype="float16")
    assert result.ok and result.image_dtype == "float16"
    ref, got = H5SliceFolder(cohort), PackedFolder(tmp_path / "f16")
    assert_same_records(ref, got, exact=False)
    with h5py.File(packed_path(tmp_path / "f16", 1), "r") as f:
        assert f["image"].dtype == np.float16 and f.attrs["image_dtype"] == "float16"
        assert bool(f.attrs["image_offsets"]) and float(np.min(f["image"][()])) == 0.0
    assert (
        packed_path(tmp_path / "f16", 1).stat().st_size
        < 0.6 * packed_path(tmp_path / "f32", 1).stat().st_size
    )
    assert got.stored_dtypes(1) == {**dict.fromkeys(IMAGE_CHANNELS, "float16"), "seg": "uint8"}
    vol = got.load_volume(3)
    assert vol.image.dtype == np.float32
    assert np.array_equal(vol.image, np.stack([got.read_slice(24 + s).image for s in range(12)]))


def test_float16_keeps_a_brain_voxel_just_above_the_minimum(tmp_path: Path) -> None:
    """A distance from the minimum that float16 rounds to 0 would turn brain into background."""
    data = tmp_path / "src"
    image = np.full((16, 16, 4), 0.3, dtype=np.float32)
    image[4:12, 4:12] = np.linspace(1.0, 9.0, 64 * 4, dtype=np.float32).reshape(8, 8, 4)
    # Brain voxels one float32 ulp above 0.3 in one channel only, exactly 0.3 in the others.
    image[2, 3] = 0.3
    image[2, 3, 1] = np.nextafter(np.float32(0.3), np.float32(1.0))
    big = np.full((16, 16, 4), 1000.5, dtype=np.float32)
    big[5:9, 5:9] = 1500.25
    big[1, 1, 2] = np.nextafter(np.float32(1000.5), np.float32(2000.0))
    write_slice(data / "volume_1_slice_0.h5", image, image_dtype=np.float32, size=16)
    write_slice(data / "volume_1_slice_1.h5", big, image_dtype=np.float32, size=16)
    assert pack_folder(data, tmp_path / "f16", image_dtype="float16").ok
    ref, got = H5SliceFolder(data), PackedFolder(tmp_path / "f16")
    assert_same_records(ref, got, exact=False)
    assert got.read_slice(0).brain[2, 3] and got.read_slice(1).brain[1, 1]  # type: ignore[index]  # set by PackedFolder
    assert_same_network_input(ref, got, exact=False)


def test_float16_overflow_fails_the_volume(tmp_path: Path) -> None:
    data = tmp_path / "src"
    wide = np.zeros((16, 16, 4))
    wide[4:8, 4:8] = 1e6  # 1e6 above the slice minimum: beyond float16
    for s in range(2):
        write_slice(data / f"volume_1_slice_{s}.h5", size=16)
        write_slice(data / f"volume_2_slice_{s}.h5", wide, size=16)
        # Far from 0 but within 65504 of its minimum: offsets make it fit.
        write_slice(data / f"volume_3_slice_{s}.h5", np.where(wide > 0, 1.05e6, 1e6), size=16)
    result = pack_folder(data, tmp_path / "out", image_dtype="float16")
    assert result.packed == (1, 3) and [f.volume for f in result.failed] == [2]
    assert "float16 range" in result.failed[0].message and "pack with float32" in result.failed[0].message
    assert pack_folder(data, tmp_path / "out32").packed == (1, 2, 3)


def test_unknown_dtype_is_refused(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="float32, float16"):
        pack_folder(cohort, tmp_path / "out", image_dtype="int8")  # type: ignore[arg-type]  # bad on purpose


def test_output_must_differ_from_source(own_cohort: Path) -> None:
    with pytest.raises(ConfigError, match="must not be the source"):
        pack_folder(own_cohort, own_cohort)


def test_second_run_skips_everything(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack_folder(cohort, out)
    before = _stamps(out)
    ticks: list[int] = []
    again = pack_folder(cohort, out, progress=ticks.append)
    assert again.packed == () and again.skipped == (1, 2, 3) and again.ok
    assert ticks == [1, 1, 1]
    assert _stamps(out) == before
    # Another dtype is another packing: everything is rewritten.
    assert pack_folder(cohort, out, image_dtype="float16").packed == (1, 2, 3)


def test_corrupt_truncated_or_deleted_volumes_are_repacked(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack_folder(cohort, out)
    # Volume 1: bytes flipped inside the image data (header intact).
    p1 = packed_path(out, 1)
    raw = bytearray(p1.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(255 - b for b in raw[middle : middle + 64])
    p1.write_bytes(bytes(raw))
    # Volume 2: cut short.
    p2 = packed_path(out, 2)
    p2.write_bytes(p2.read_bytes()[: p2.stat().st_size // 3])
    # Volume 3: deleted.
    packed_path(out, 3).unlink()
    result = pack_folder(cohort, out)
    assert result.packed == (1, 2, 3) and result.skipped == ()
    ref, got = H5SliceFolder(cohort), PackedFolder(out)
    for i in range(len(ref)):
        assert np.array_equal(ref.read_slice(i).image, got.read_slice(i).image)


def test_changed_source_is_repacked(own_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack_folder(own_cohort, out)
    # Same size, other content: a regenerated cohort looks like this.
    slice_file = own_cohort / "volume_2_slice_5.h5"
    with h5py.File(slice_file, "r+") as f:
        f["image"][0, 0, 0] = 123.0
    st = slice_file.stat()
    os.utime(slice_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    result = pack_folder(own_cohort, out)
    assert result.packed == (2,) and result.skipped == (1, 3)
    rec = PackedFolder(out, volumes=[2]).read_slice(5)
    assert rec.image[:, 0, 0].tolist() == [
        123.0,
        *H5SliceFolder(own_cohort).read_slice(17).image[1:, 0, 0].tolist(),
    ]


def test_bad_source_file_fails_that_volume_only(own_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack_folder(own_cohort, out)
    bad = own_cohort / "volume_2_slice_7.h5"
    bad.write_bytes(b"this is not an HDF5 file")
    result = pack_folder(own_cohort, out)
    assert not result.ok and result.skipped == (1, 3) and result.packed == ()
    assert [f.volume for f in result.failed] == [2]
    assert str(bad) in result.failed[0].message
    # The stale file of volume 2 is gone, nothing partial is left, and readers see 1 and 3.
    assert not packed_path(out, 2).exists() and _leftovers(out) == []
    manifest = json.loads((out / PACKED_MANIFEST).read_text())
    assert manifest["volumes"] == [1, 3] and "2" in manifest["failed"]
    assert [i.volume for i in PackedFolder(out).volumes()] == [1, 3]


def test_write_error_leaves_no_partial_file(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "packed"
    real_write = pack_mod._write_h5

    def write_then_fail(tmp: Path, *args: object, **kwargs: object) -> None:
        real_write(tmp, *args, **kwargs)  # type: ignore[arg-type]  # forwarded unchanged
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pack_mod, "_write_h5", write_then_fail)
    with pytest.raises(DataError, match=r"volume_1\.h5: cannot write"):
        pack_folder(cohort, out)
    assert sorted(p.name for p in out.iterdir()) == []


def test_unlabelled_source_packs_without_mask(tmp_path: Path) -> None:
    data = tmp_path / "src"
    for s in range(3):
        write_slice(data / f"volume_4_slice_{s}.h5", size=16, with_mask=False)
    with pytest.raises(DataError, match="no 'mask'"):
        H5SliceFolder(data).read_slice(0)
    result = pack_folder(data, tmp_path / "out", require_mask=False)
    assert result.packed == (4,)
    with h5py.File(packed_path(tmp_path / "out", 4), "r") as f:
        assert "classes" not in f and "mask" not in f
    with pytest.raises(DataError, match=r"volume_4\.h5: no 'classes'"):
        PackedFolder(tmp_path / "out")
    folder = PackedFolder(tmp_path / "out", require_mask=False)
    assert folder.read_slice(1).mask is None and folder.load_volume(4).mask is None
    assert folder.volumes()[0].has_mask is False
    assert np.array_equal(
        folder.read_slice(1).image, H5SliceFolder(data, require_mask=False).read_slice(1).image
    )


def test_reader_refuses_incomplete_or_corrupt_files(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack_folder(cohort, out)
    p2 = packed_path(out, 2)
    with h5py.File(p2, "r+") as f:
        f.attrs["complete"] = False
    with pytest.raises(DataError, match=r"volume_2\.h5: incomplete"):
        PackedFolder(out)
    assert pack_folder(cohort, out).packed == (2,)  # and pack mends it
    p2.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"volume_2\.h5: not a readable HDF5"):
        PackedFolder(out)
    p2.unlink()
    with pytest.raises(
        DataError, match=r"volume_2\.h5: listed in packed_manifest\.json but missing"
    ):
        PackedFolder(out)
    (out / PACKED_MANIFEST).unlink()  # without a manifest, the files present are the volumes
    assert [i.volume for i in PackedFolder(out).volumes()] == [1, 3]
    with pytest.raises(DataError, match="no packed"):
        PackedFolder(tmp_path)


def test_volume_selection(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack_folder(cohort, out)
    assert [i.volume for i in PackedFolder(out, volumes=[3, 1]).volumes()] == [1, 3]
    assert [i.volume for i in PackedFolder(out, max_volumes=2).volumes()] == [1, 2]
    assert len(PackedFolder(out, volumes=[2])) == 12
    with pytest.raises(DataError, match=r"volumes \[7\] not found"):
        PackedFolder(out, volumes=[7])
    with pytest.raises(DataError, match="no volume 9"):
        PackedFolder(out).load_volume(9)


def test_dataloader_workers_after_reads_in_parent(cohort: Path, tmp_path: Path) -> None:
    pack_folder(cohort, tmp_path / "packed")
    folder = PackedFolder(tmp_path / "packed")
    stats = scan_source(folder).stats  # opens every file in this process before the fork
    ds = SegmentationDataset(folder, list(range(len(folder))), stats)
    expected = torch.stack([ds[i]["image"] for i in range(len(ds))])
    loader = DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    got = torch.cat([batch["image"] for batch in loader])
    assert torch.equal(got, expected)
    # Pickling (spawn start method) drops the handles and still reads the same.
    clone = pickle.loads(pickle.dumps(folder))
    assert np.array_equal(clone.read_slice(20).image, folder.read_slice(20).image)
    folder.close()
    assert np.array_equal(folder.read_slice(20).image, clone.read_slice(20).image)


def test_cli_pack_and_exit_code_on_failed_volume(own_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    runner = CliRunner()
    res = runner.invoke(pack_cmd, [str(own_cohort), str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "Packed 3 volumes, skipped 0" in res.output
    res = runner.invoke(pack_cmd, [str(own_cohort), str(out), "--dtype", "float16", "--quiet"])
    assert res.exit_code == 0 and "(float16)" in res.output
    (own_cohort / "volume_3_slice_0.h5").write_bytes(b"junk")
    res = runner.invoke(pack_cmd, [str(own_cohort), str(out), "--dtype", "float16", "--quiet"])
    assert res.exit_code == 3
    assert "Packed 0 volumes, skipped 2" in res.output and "1 failed" in res.output


def _write_nifti_case(root: Path, name: str, seed: int) -> None:
    """A raw-intensity NIfTI case (file axes x, y, z; z axial): int16, background 0, an
    ellipsoid of brain with values up to 4000 (beyond float16's exact integers), no
    brain in the first two and last slices, and one labelled voxel outside the brain."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = 30, 26, 12
    x, y, z = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    inside = ((x - 15) / 10) ** 2 + ((y - 12) / 8) ** 2 + ((z - 6) / 4.5) ** 2 < 1
    inside[:, :, :2] = False
    inside[:, :, -1] = False
    seg = np.zeros((nx, ny, nz), dtype=np.uint8)
    seg[12:17, 10:14, 5:8] = 2
    seg[13:16, 11:13, 6:7] = 4
    seg[14, 12, 6] = 1
    seg[1, 1, 5] = 2  # a label where every channel is 0
    case = root / name
    case.mkdir(parents=True)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    for channel in IMAGE_CHANNELS:
        data = np.where(inside, rng.integers(1, 4000, size=inside.shape), 0).astype(np.int16)
        nib.save(nib.Nifti1Image(data, affine), case / f"{name}_{channel}.nii.gz")  # type: ignore[no-untyped-call]  # nibabel leaves it unannotated
    nib.save(nib.Nifti1Image(seg, affine), case / f"{name}_seg.nii.gz")  # type: ignore[no-untyped-call]  # as above


@pytest.mark.parametrize("image_dtype", ["float32", "float16"])
def test_nifti_round_trip(tmp_path: Path, image_dtype: str) -> None:
    """Raw NIfTI intensities (background 0) through `brats convert` and `brats pack`."""
    src = tmp_path / "nifti"
    _write_nifti_case(src, "BraTS20_Training_001", seed=1)
    _write_nifti_case(src, "BraTS20_Training_002", seed=2)
    data = convert_nifti_to_h5(src, tmp_path / "h5")
    assert pack_folder(data, tmp_path / "packed", image_dtype=image_dtype).ok  # type: ignore[arg-type]  # a valid ImageDtype
    ref, got = NiftiFolder(src), PackedFolder(tmp_path / "packed")
    exact = image_dtype == "float32"
    assert_same_records(ref, got, exact=exact)
    box = _box(packed_path(tmp_path / "packed", 1))
    assert box[:2] == [2, 11] and box[2] == 1 and box[4] == 1  # brain slices; the stray label
    for crop in (None, RandomCrops(32)):
        assert_same_network_input(ref, got, exact=exact, crop=crop)
    a, b = ref.load_volume(2), got.load_volume(2)
    assert a.mask is not None and b.mask is not None and np.array_equal(a.mask, b.mask)
    if exact:
        assert np.array_equal(a.image, b.image)


def test_real_case_size_and_network_input(real_labelled: Path, tmp_path: Path) -> None:
    """A real 240 x 240 x 155 case: at most 40 MB in float16, and the same network input.

    The case with the brightest voxels (32767) where there is one: float16 rounds its
    intensities above 2048 (most real cases stay below, where float16 is exact)."""
    names = {i.name: i.volume for i in NiftiFolder(real_labelled).volumes()}
    volume = names.get("Brats18_TCIA10_639_1", min(names.values()))
    data = convert_nifti_to_h5(real_labelled, tmp_path / "h5", volumes=[volume], compress=False)
    sizes = {}
    for image_dtype in ("float16", "float32"):
        out = tmp_path / image_dtype
        assert pack_folder(data, out, image_dtype=image_dtype).ok  # type: ignore[arg-type]  # a valid ImageDtype
        sizes[image_dtype] = packed_path(out, volume).stat().st_size / 1e6
    assert sizes["float16"] <= 40.0, sizes
    assert sizes["float32"] < 143.0 / 2, sizes  # the whole 240x240 frame in float32 takes 143 MB
    ref = H5SliceFolder(data)
    assert_same_network_input(ref, PackedFolder(tmp_path / "float32"), exact=True, step=2)
    assert_same_network_input(
        ref, PackedFolder(tmp_path / "float16"), exact=False, crop=RandomCrops(128), step=2
    )
    assert_same_network_input(ref, PackedFolder(tmp_path / "float16"), exact=False, step=5)


def test_old_format_version_is_refused_and_repacked(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    pack_folder(cohort, out)
    with h5py.File(packed_path(out, 2), "r+") as f:
        f.attrs["format_version"] = 1
    with pytest.raises(DataError, match=r"volume_2\.h5: packed format version 1, .*run `brats pack` again") as info:
        PackedFolder(out)
    assert "\n" not in str(info.value)
    result = pack_folder(cohort, out)
    assert result.packed == (2,) and result.skipped == (1, 3)
    assert_same_records(H5SliceFolder(cohort), PackedFolder(out), exact=True)


def test_moments_from_other_normalisation_code_are_recomputed(
    cohort: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "packed"
    pack_folder(cohort, out)
    with h5py.File(packed_path(out, 1), "r+") as f:
        f.attrs["moments_probe"] = "packed by another slice_moments"
        f["moments_sum"][0, 0] = 12345.0  # would be wrong if trusted
    got = PackedFolder(out)
    assert "volumes [1] were packed by other normalisation code" in caplog.text
    assert got.read_slice(0).moments is None and got.read_slice(12).moments is not None
    assert_same_network_input(H5SliceFolder(cohort), got, exact=True)
    assert pack_folder(cohort, out).packed == (1,)  # and pack rewrites it


def test_interrupted_write_keeps_the_previous_file(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "packed"
    pack_folder(cohort, out, image_dtype="float16")
    before = packed_path(out, 1).read_bytes()

    def interrupted(tmp: Path, *args: object, **kwargs: object) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=np.zeros((1, 4, 2, 2), dtype=np.float32))
        raise KeyboardInterrupt

    monkeypatch.setattr(pack_mod, "_write_h5", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack_folder(cohort, out)  # float32: volume 1 is rewritten first
    assert packed_path(out, 1).read_bytes() == before and _leftovers(out) == []
    assert_same_records(H5SliceFolder(cohort), PackedFolder(out), exact=False)
