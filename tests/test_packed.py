from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from brats_sdk.constants import META_CSV, NAME_MAPPING_CSV, SURVIVAL_CSV
from brats_sdk.data import pack as pack_mod
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.pack import pack_folder
from brats_sdk.data.packed import (
    PACKED_MANIFEST,
    PackedFolder,
    is_packed_folder,
    packed_path,
)
from brats_sdk.data.protocols import DataSource, SliceSource, VolumeSource
from brats_sdk.data.scan import scan_source
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import ConfigError, DataError
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
    assert [got.slice_key(i) for i in range(len(got))] == [
        ref.slice_key(i) for i in range(len(ref))
    ]
    assert [(i.volume, i.n_slices, i.has_mask) for i in got.volumes()] == [
        (v, 12, True) for v in (1, 2, 3)
    ]
    for i in range(len(ref)):
        a, b = ref.read_slice(i), got.read_slice(i)
        assert (a.volume, a.index) == (b.volume, b.index)
        assert (
            b.image.dtype == np.float32 and b.image.shape == (4, 48, 48) and b.image.flags.writeable
        )
        assert np.array_equal(a.image, b.image)
        assert a.mask is not None and b.mask is not None and b.mask.dtype == np.uint8
        assert np.array_equal(a.mask, b.mask)
    va, vb = ref.load_volume(2), got.load_volume(2)
    assert vb.image.dtype == np.float32 and np.array_equal(va.image, vb.image)
    assert va.mask is not None and vb.mask is not None and np.array_equal(va.mask, vb.mask)
    for name in (META_CSV, SURVIVAL_CSV, NAME_MAPPING_CSV):
        assert (out / name).read_bytes() == (cohort / name).read_bytes()
    manifest = json.loads((out / PACKED_MANIFEST).read_text())
    assert manifest["format"] == "brats_sdk.packed" and manifest["format_version"] == 1
    assert manifest["volumes"] == [1, 2, 3] and manifest["image_dtype"] == "float32"
    with h5py.File(packed_path(out, 1), "r") as f:
        assert f["image"].shape == (12, 4, 48, 48) and f["image"].chunks == (1, 4, 48, 48)
        assert f["mask"].dtype == np.uint8 and f["mask"].chunks == (1, 3, 48, 48)
        assert f["image"].compression is None
        assert (
            bool(f.attrs["complete"])
            and int(f.attrs["n_slices"]) == 12
            and int(f.attrs["volume"]) == 1
        )
    assert is_packed_folder(out) and not is_packed_folder(cohort)
    assert _leftovers(out) == []


def test_segmentation_samples_are_identical(cohort: Path, tmp_path: Path) -> None:
    pack_folder(cohort, tmp_path / "packed")
    ref, got = H5SliceFolder(cohort), PackedFolder(tmp_path / "packed")
    stats_ref, stats_got = scan_source(ref), scan_source(got)
    assert stats_ref == stats_got
    order = list(np.random.default_rng(0).permutation(len(ref)))
    ds_ref = SegmentationDataset(ref, order, stats_ref.stats)
    ds_got = SegmentationDataset(got, order, stats_got.stats)
    for i in range(len(order)):
        a, b = ds_ref[i], ds_got[i]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_float16_is_nearest_half_value(cohort: Path, tmp_path: Path) -> None:
    pack_folder(cohort, tmp_path / "f32")
    result = pack_folder(cohort, tmp_path / "f16", image_dtype="float16")
    assert result.ok and result.image_dtype == "float16"
    ref, got = H5SliceFolder(cohort), PackedFolder(tmp_path / "f16")
    for i in range(len(ref)):
        a, b = ref.read_slice(i), got.read_slice(i)
        assert b.image.dtype == np.float32
        assert np.array_equal(b.image, a.image.astype(np.float16).astype(np.float32))
        np.testing.assert_allclose(b.image, a.image, rtol=2.0**-11, atol=2.0**-24)
        assert a.mask is not None and b.mask is not None and np.array_equal(a.mask, b.mask)
    with h5py.File(packed_path(tmp_path / "f16", 1), "r") as f:
        assert f["image"].dtype == np.float16 and f.attrs["image_dtype"] == "float16"
    assert (
        packed_path(tmp_path / "f16", 1).stat().st_size
        < packed_path(tmp_path / "f32", 1).stat().st_size
    )
    vol = got.load_volume(3)
    assert vol.image.dtype == np.float32


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


def test_float16_overflow_fails_the_volume(tmp_path: Path) -> None:
    data = tmp_path / "src"
    for s in range(2):
        write_slice(data / f"volume_1_slice_{s}.h5", size=16)
        write_slice(data / f"volume_2_slice_{s}.h5", np.full((16, 16, 4), 1e6), size=16)
    result = pack_folder(data, tmp_path / "out", image_dtype="float16")
    assert result.packed == (1,) and [f.volume for f in result.failed] == [2]
    assert "float16 range" in result.failed[0].message
    assert pack_folder(data, tmp_path / "out32").packed == (1, 2)


def test_unlabelled_source_packs_without_mask(tmp_path: Path) -> None:
    data = tmp_path / "src"
    for s in range(3):
        write_slice(data / f"volume_4_slice_{s}.h5", size=16, with_mask=False)
    with pytest.raises(DataError, match="no 'mask'"):
        H5SliceFolder(data).read_slice(0)
    result = pack_folder(data, tmp_path / "out", require_mask=False)
    assert result.packed == (4,)
    with h5py.File(packed_path(tmp_path / "out", 4), "r") as f:
        assert "mask" not in f
    with pytest.raises(DataError, match=r"volume_4\.h5: no 'mask'"):
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
    assert "Packed 3 volume(s), skipped 0" in res.output
    res = runner.invoke(pack_cmd, [str(own_cohort), str(out), "--dtype", "float16", "--quiet"])
    assert res.exit_code == 0 and "(float16)" in res.output
    (own_cohort / "volume_3_slice_0.h5").write_bytes(b"junk")
    res = runner.invoke(pack_cmd, [str(own_cohort), str(out), "--dtype", "float16", "--quiet"])
    assert res.exit_code == 2
    assert "Packed 0 volume(s), skipped 2" in res.output and "1 failed" in res.output
