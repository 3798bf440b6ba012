"""Tests of the synthetic cohort generator (brats_sdk.data.synth)."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pytest

from brats_sdk.constants import (
    DEFAULT_PATIENT_ID_FORMAT,
    IMAGE_CHANNELS,
    KAGGLE_DATA_SUBDIR,
    MASK_CHANNELS,
    META_CSV,
    NAME_MAPPING_CSV,
    SURVIVAL_CSV,
)
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import ConfigError

SMALL = SynthConfig(volumes=3, seed=0, slices=16, size=64)
FLAIR, T1CE = IMAGE_CHANNELS.index("flair"), IMAGE_CHANNELS.index("t1ce")
NCR, ED, ET = (MASK_CHANNELS.index(c) for c in ("NCR", "ED", "ET"))


def _read(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
    with h5py.File(path, "r") as fh:
        return np.asarray(fh["image"]), np.asarray(fh["mask"])


def _volume(
    data: Path, volume: int, slices: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8]]:
    pairs = [_read(data / f"volume_{volume}_slice_{s}.h5") for s in range(slices)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _hashes(data: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.iterdir())}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("synth"), SMALL)


def test_layout_is_exactly_the_kaggle_one(cohort: Path) -> None:
    assert cohort == cohort.parents[2].joinpath(*KAGGLE_DATA_SUBDIR)
    expected = {
        f"volume_{v}_slice_{s}.h5" for v in range(1, SMALL.volumes + 1) for s in range(SMALL.slices)
    }
    expected |= {META_CSV, SURVIVAL_CSV, NAME_MAPPING_CSV}
    assert {p.name for p in cohort.iterdir()} == expected
    assert [p.name for p in cohort.parents[2].iterdir()] == [KAGGLE_DATA_SUBDIR[0]]


def test_h5_datasets_dtypes_shapes_and_no_extras(cohort: Path) -> None:
    with h5py.File(cohort / "volume_2_slice_8.h5", "r") as fh:
        assert sorted(fh.keys()) == ["image", "mask"]
        assert dict(fh.attrs) == {}
        for key, dtype, channels in (("image", np.float64, 4), ("mask", np.uint8, 3)):
            ds = fh[key]
            assert ds.dtype == dtype
            assert ds.shape == (SMALL.size, SMALL.size, channels)
            assert ds.compression is None
            assert ds.chunks is None
            assert dict(ds.attrs) == {}


def test_masks_are_one_hot_and_present_on_some_slices_only(cohort: Path) -> None:
    for v in range(1, SMALL.volumes + 1):
        _, mask = _volume(cohort, v, SMALL.slices)
        assert set(np.unique(mask)) <= {0, 1}
        assert mask.sum(axis=-1).max() == 1
        per_slice = [bool(m.any()) for m in mask]
        assert any(per_slice)
        assert not all(per_slice)
        assert not per_slice[0]
        assert not per_slice[-1]


def test_images_are_normalised_like_the_release(cohort: Path) -> None:
    image, _ = _volume(cohort, 1, SMALL.slices)
    # Empty end slices are all zeros.
    assert not image[0].any()
    assert not image[-1].any()
    brain_slices = 0
    for s in range(SMALL.slices):
        for c in range(len(IMAGE_CHANNELS)):
            plane = image[s, ..., c]
            low = plane.min()
            brain = plane > low
            if not brain.any():
                continue
            brain_slices += 1
            # Background (corner) sits at the slice minimum; brain is z-scored.
            assert plane[0, 0] == low
            assert abs(plane[brain].mean()) < 0.1
            assert 0.8 < plane[brain].std() < 1.2
    assert brain_slices >= 4 * SMALL.slices // 2


def test_meta_data_csv_matches_masks(cohort: Path) -> None:
    text = (cohort / META_CSV).read_text()
    assert text.splitlines()[0] == "slice_path,target,volume,slice"
    rows = _rows(cohort / META_CSV)
    assert len(rows) == SMALL.volumes * SMALL.slices
    for row in rows:
        v, s = int(row["volume"]), int(row["slice"])
        assert row["slice_path"] == f"/content/data/volume_{v}_slice_{s}.h5"
        _, mask = _read(cohort / f"volume_{v}_slice_{s}.h5")
        assert row["target"] == str(int(mask.any()))
    assert {r["target"] for r in rows} == {"0", "1"}


def test_survival_csv_has_censored_and_na_rows(cohort: Path) -> None:
    text = (cohort / SURVIVAL_CSV).read_text()
    lines = text.splitlines()
    assert lines[0] == "Brats20ID,Age,Survival_days,Extent_of_Resection"
    assert re.search(r",ALIVE \(\d+ days later\),", text)
    assert any(line.endswith(",NA") for line in lines[1:])
    rows = _rows(cohort / SURVIVAL_CSV)
    assert len(rows) == SMALL.volumes  # cohorts of 3 or fewer: every volume
    ids = {DEFAULT_PATIENT_ID_FORMAT.format(volume=v) for v in range(1, SMALL.volumes + 1)}
    for row in rows:
        assert row["Brats20ID"] in ids
        assert 20.0 <= float(row["Age"]) <= 85.0
        assert row["Extent_of_Resection"] in {"GTR", "STR", "NA"}
        days = row["Survival_days"]
        assert days.startswith("ALIVE") or 5 <= int(days) <= 1800


def test_name_mapping_covers_every_volume(cohort: Path) -> None:
    lines = (cohort / NAME_MAPPING_CSV).read_text().splitlines()
    assert lines[0] == (
        "Grade,BraTS_2017_subject_ID,BraTS_2018_subject_ID,TCGA_TCIA_subject_ID,"
        "BraTS_2019_subject_ID,BraTS_2020_subject_ID"
    )
    rows = _rows(cohort / NAME_MAPPING_CSV)
    assert [r["BraTS_2020_subject_ID"] for r in rows] == [
        DEFAULT_PATIENT_ID_FORMAT.format(volume=v) for v in range(1, SMALL.volumes + 1)
    ]
    assert {r["Grade"] for r in rows} <= {"HGG", "LGG"}


def test_small_cohort_supports_three_quantile_bins(tmp_path: Path) -> None:
    data = make_cohort(tmp_path, SynthConfig(volumes=10, slices=8, size=32))
    rows = _rows(data / SURVIVAL_CSV)
    assert len(rows) == 9
    assert sum(r["Survival_days"].startswith("ALIVE") for r in rows) == 1
    days = np.array([int(r["Survival_days"]) for r in rows if r["Survival_days"].isdigit()])
    assert len(days) == 8
    assert len(set(days.tolist())) == len(days)
    edges = np.quantile(days, [1 / 3, 2 / 3])
    bins = np.digitize(days, edges)
    assert np.bincount(bins, minlength=3).min() >= 2


def test_same_config_gives_byte_identical_files(tmp_path: Path) -> None:
    a = make_cohort(tmp_path / "a", SMALL)
    b = make_cohort(tmp_path / "b", SMALL)
    ha, hb = _hashes(a), _hashes(b)
    assert len(ha) == SMALL.volumes * SMALL.slices + 3
    assert ha == hb


def test_volume_does_not_depend_on_cohort_size(tmp_path: Path, cohort: Path) -> None:
    one = make_cohort(tmp_path, SynthConfig(volumes=1, seed=0, slices=16, size=64))
    for s in range(SMALL.slices):
        name = f"volume_1_slice_{s}.h5"
        assert (one / name).read_bytes() == (cohort / name).read_bytes()


def test_different_seeds_differ(tmp_path: Path, cohort: Path) -> None:
    other = make_cohort(tmp_path, SynthConfig(volumes=3, seed=1, slices=16, size=64))
    a, _ = _volume(cohort, 1, SMALL.slices)
    b, _ = _volume(other, 1, SMALL.slices)
    assert not np.array_equal(a, b)
    assert (cohort / SURVIVAL_CSV).read_text() != (other / SURVIVAL_CSV).read_text()


def test_tumour_regions_have_their_contrast(cohort: Path) -> None:
    ed_flair, normal_flair, et_t1ce, ncr_t1ce = [], [], [], []
    for v in range(1, SMALL.volumes + 1):
        image, mask = _volume(cohort, v, SMALL.slices)
        brain = image[..., FLAIR] > image[..., FLAIR].min(axis=(1, 2), keepdims=True)
        normal = brain & ~mask.any(axis=-1)
        ed_flair.append(image[..., FLAIR][mask[..., ED] == 1])
        normal_flair.append(image[..., FLAIR][normal])
        et_t1ce.append(image[..., T1CE][mask[..., ET] == 1])
        ncr_t1ce.append(image[..., T1CE][mask[..., NCR] == 1])
    assert np.concatenate(ed_flair).mean() > np.concatenate(normal_flair).mean() + 1.0
    assert np.concatenate(et_t1ce).mean() > np.concatenate(ncr_t1ce).mean() + 2.0


def test_full_size_default_geometry(tmp_path: Path) -> None:
    config = SynthConfig(volumes=1, slices=20)
    assert config.size == 240
    data = make_cohort(tmp_path, config)
    assert len(list(data.glob("*.h5"))) == 20
    image, mask = _read(data / "volume_1_slice_10.h5")
    assert image.dtype == np.float64 and image.shape == (240, 240, 4)
    assert mask.dtype == np.uint8 and mask.shape == (240, 240, 3)
    assert np.isfinite(image).all()


def test_overwrite_removes_stale_slices_and_reports_progress(tmp_path: Path) -> None:
    make_cohort(tmp_path, SynthConfig(volumes=2, slices=10, size=32))
    seen: list[int] = []
    data = make_cohort(tmp_path, SynthConfig(volumes=1, slices=8, size=32), progress=seen.append)
    assert seen == [1]
    assert sorted(p.name for p in data.glob("*.h5")) == sorted(
        f"volume_1_slice_{s}.h5" for s in range(8)
    )
    assert len(_rows(data / META_CSV)) == 8
    assert not list(data.glob(".*"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("volumes", 0), ("slices", 7), ("size", 31), ("seed", -1), ("volumes", True), ("size", 64.0)],
)
def test_invalid_config_is_rejected(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SynthConfig(**{field: value})  # type: ignore[arg-type]  # deliberately wrong types
