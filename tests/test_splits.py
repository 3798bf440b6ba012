"""Tests of brats_sdk.data.splits."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from brats_sdk.data.splits import (
    Split,
    SplitMode,
    read_split_csv,
    split_by_patient,
    split_slices,
    write_split_csv,
)
from brats_sdk.errors import ConfigError, DataError

VOLUMES = list(range(1, 61))
# Three strata of unequal size: 30 / 20 / 10 volumes.
STRATA = {v: 0 if v <= 30 else 1 if v <= 50 else 2 for v in VOLUMES}


def _assert_partition(split: Split, volumes: list[int]) -> None:
    parts = [set(split.train), set(split.val), set(split.test)]
    assert sum(len(p) for p in parts) == len(volumes)
    assert set().union(*parts) == set(volumes)
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]


def test_patient_split_is_a_disjoint_partition() -> None:
    split = split_by_patient(VOLUMES, strata=STRATA, seed=3)
    _assert_partition(split, VOLUMES)
    assert split.mode is SplitMode.PATIENT
    assert not split.leaks_patients
    assert split.sizes() == (48, 6, 6)
    assert split.train_slices == split.val_slices == split.test_slices == ()


def test_stratification_keeps_proportions() -> None:
    split = split_by_patient(VOLUMES, strata=STRATA, seed=0)
    for part, expected in (
        (split.train, (24, 16, 8)),
        (split.val, (3, 2, 1)),
        (split.test, (3, 2, 1)),
    ):
        counts = Counter(STRATA[v] for v in part)
        assert tuple(counts[b] for b in range(3)) == expected


def test_every_bin_in_train_when_possible() -> None:
    volumes = list(range(10))
    strata = {0: 0, 1: 1, 2: 2}  # three singleton bins, the rest unknown
    for seed in range(20):
        split = split_by_patient(volumes, strata=strata, seed=seed)
        assert {0, 1, 2} <= set(split.train)
        _assert_partition(split, volumes)


def test_ten_volumes_give_non_empty_parts() -> None:
    split = split_by_patient(range(10), seed=5)
    assert split.sizes() == (8, 1, 1)
    split3 = split_by_patient([4, 5, 6], strata={4: 0, 5: 0, 6: 1})
    assert split3.sizes() == (1, 1, 1)


def test_deterministic_and_seed_dependent() -> None:
    a = split_by_patient(VOLUMES, strata=STRATA, seed=11)
    assert a == split_by_patient(list(reversed(VOLUMES)), strata=STRATA, seed=11)
    assert a != split_by_patient(VOLUMES, strata=STRATA, seed=12)


@pytest.mark.parametrize(
    ("volumes", "fractions", "seed", "error"),
    [
        ([1, 2], (0.8, 0.1, 0.1), 0, DataError),
        ([1, 2, 2, 3], (0.8, 0.1, 0.1), 0, DataError),
        (VOLUMES, (0.8, 0.1, 0.2), 0, ConfigError),
        (VOLUMES, (1.1, -0.1, 0.0), 0, ConfigError),
        (VOLUMES, (0.5, 0.5), 0, ConfigError),
        (VOLUMES, (0.8, 0.1, 0.1), -1, ConfigError),
    ],
)
def test_split_errors(
    volumes: list[int], fractions: tuple[float, ...], seed: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        split_by_patient(volumes, fractions=fractions, seed=seed)


def test_zero_fraction_leaves_part_empty() -> None:
    split = split_by_patient(range(10), fractions=(0.9, 0.1, 0.0))
    assert split.sizes() == (9, 1, 0)


def test_slice_split_flags_leak(caplog: pytest.LogCaptureFixture) -> None:
    keys = [(v, s) for v in range(1, 11) for s in range(20)]
    with caplog.at_level(logging.WARNING, logger="brats_sdk.data.splits"):
        split = split_slices(keys, strata={v: v % 3 for v in range(1, 11)}, seed=1)
    assert split.leaks_patients
    assert split.mode is SplitMode.SLICE
    assert split.train == split.val == split.test == ()
    assert split.sizes() == (160, 20, 20)
    all_keys = split.train_slices + split.val_slices + split.test_slices
    assert sorted(all_keys) == sorted(keys)
    assert any("leak" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    # The leak is real: some volume has slices in both train and test.
    assert {v for v, _ in split.train_slices} & {v for v, _ in split.test_slices}


@pytest.mark.parametrize("mode", [SplitMode.PATIENT, SplitMode.SLICE])
def test_csv_round_trip(tmp_path: Path, mode: SplitMode) -> None:
    if mode is SplitMode.PATIENT:
        split = split_by_patient(VOLUMES, strata=STRATA, seed=4)
    else:
        split = split_slices([(v, s) for v in range(1, 6) for s in range(10)], seed=4)
    path = tmp_path / "runs" / "split.csv"
    write_split_csv(split, path)
    assert read_split_csv(path) == split
    assert path.read_text().splitlines()[0] == "volume,slice,part,mode,seed"
    assert [p.name for p in path.parent.iterdir()] == ["split.csv"]  # no temp file left


def test_split_rejects_overlap_and_wrong_mode_fields() -> None:
    with pytest.raises(ConfigError, match="in train and in test"):
        Split(SplitMode.PATIENT, 0, train=(1, 2), val=(3,), test=(2,))
    with pytest.raises(ConfigError, match="other mode"):
        Split(SplitMode.PATIENT, 0, train=(1,), train_slices=((1, 0),))
    with pytest.raises(ConfigError, match="supported: patient, slice"):
        Split("volume", 0)  # type: ignore[arg-type]  # an invalid mode is what is tested


HEAD = "volume,slice,part,mode,seed\n"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "no rows"),
        ("1,,train,patient,0\n2,,holdout,patient,0\n", "line 3: part 'holdout'"),
        ("1,,train,patient,0\n2,,val,patient,1\n", "line 3: mode/seed"),
        ("1,,train,patient,0\nx,,val,patient,0\n", "line 3: volume 'x' is not an integer"),
        ("1,,train,patient,0\n1,,val,patient,0\n", "line 3: 1 repeats line 2"),
        ("1,4,train,patient,0\n", "line 2: slice must be empty"),
        ("1,,train,slice,0\n", "line 2: slice is empty"),
        ("1,,train,volume,0\n", "line 2: unknown split mode"),
        ("1,,train\n", "line 2: expected 5 fields"),
    ],
)
def test_read_split_csv_errors(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "split.csv"
    path.write_text(HEAD + body)
    with pytest.raises(DataError, match=r"split\.csv") as info:
        read_split_csv(path)
    assert problem in str(info.value)


def test_read_split_csv_missing_column_and_file(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text("volume,part\n1,train\n")
    with pytest.raises(DataError, match="missing column"):
        read_split_csv(path)
    with pytest.raises(DataError, match="not found"):
        read_split_csv(tmp_path / "none.csv")


def test_write_split_csv_error_is_data_error(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    with pytest.raises(DataError, match="cannot write split"):
        write_split_csv(split_by_patient(range(5)), target)
