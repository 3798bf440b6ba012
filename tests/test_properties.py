"""Property-based tests (Hypothesis) of the parsers, label conversions and the split.

Arbitrary bytes and values never give a traceback: a reader either succeeds or raises
the library's own :class:`~brats_sdk.errors.BratsError`. Valid inputs round-trip.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brats_sdk.data.clinical import read_age_table, read_survival_csv
from brats_sdk.data.nifti_labels import LabelConvention, segmentation_labels
from brats_sdk.data.splits import (
    Split,
    SplitMode,
    read_split_csv,
    split_by_patient,
    write_split_csv,
)
from brats_sdk.errors import BratsError
from brats_sdk.labels import (
    classes_to_labels,
    classes_to_one_hot,
    labels_to_classes,
    one_hot_to_classes,
)
from brats_sdk.report.folder import read_prediction_folder
from brats_sdk.run_files import PREDICTIONS_CSV, PREDICTIONS_JSON

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Bytes that look like CSV more often than uniform noise does: digits, separators, quotes,
# the column names the readers look for, odd characters.
_TOKENS = st.sampled_from(
    [b",", b"\n", b"\r\n", b'"', b" ", b"0", b"1", b"7", b"-1", b"1e308", b"nan", b"inf", b"NA", b"ALIVE (361 days later)",
     b"Brats20ID", b"Age", b"Survival_days", b"Extent_of_Resection", b"volume", b"patient_id", b"GTR", b"STR",
     b"mode", b"seed", b"part", b"slice", b"patient", b"train", b"val", b"test", b"predicted_bin", b"\x00", b"\xff",
     b"\xef\xbb\xbf"]
)
CSV_BYTES = st.one_of(st.binary(max_size=300), st.lists(_TOKENS, max_size=60).map(b"".join))


def _only_brats_errors(read: Callable[[Path], object], path: Path) -> None:
    """Run ``read``: success or a BratsError; anything else fails the test."""
    with contextlib.suppress(BratsError):
        read(path)


# ------------------------------------------------------------------------------ CSV readers
@FAST
@given(data=CSV_BYTES)
def test_survival_csv_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "survival_info.csv"
    path.write_bytes(b"Brats20ID,Age,Survival_days,Extent_of_Resection\n" + data)
    _only_brats_errors(read_survival_csv, path)
    path.write_bytes(data)
    _only_brats_errors(read_survival_csv, path)


@FAST
@given(data=CSV_BYTES)
def test_age_table_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "ages.csv"
    for head in (b"volume,age\n", b"Brats20ID,Age\n", b""):
        path.write_bytes(head + data)
        _only_brats_errors(read_age_table, path)


AGES = st.floats(min_value=0.01, max_value=120.0, allow_nan=False)
DAYS = st.one_of(st.none(), st.integers(min_value=0, max_value=5000))


@FAST
@given(rows=st.lists(st.tuples(AGES, DAYS, st.booleans(), st.sampled_from(["GTR", "STR", "NA"])), min_size=1, max_size=20))
def test_survival_csv_round_trip(tmp_path: Path, rows: list[tuple[float, int | None, bool, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["Brats20ID", "Age", "Survival_days", "Extent_of_Resection"])
    for i, (age, days, alive, resection) in enumerate(rows):
        text = "NA" if days is None else (f"ALIVE ({days} days later)" if alive else str(days))
        writer.writerow([f"BraTS20_Training_{i:03d}", repr(age), text, resection])
    path = tmp_path / "survival_info.csv"
    path.write_text(buf.getvalue())
    records = read_survival_csv(path)
    assert [r.patient_id for r in records] == [f"BraTS20_Training_{i:03d}" for i in range(len(rows))]
    for r, (age, days, alive, resection) in zip(records, rows, strict=True):
        assert r.age == age and r.resection == resection
        assert r.survival_days == (None if days is None else float(days))
        assert r.censored == (days is not None and alive)


@FAST
@given(ages=st.dictionaries(st.integers(min_value=0, max_value=10_000), AGES, max_size=30))
def test_age_table_round_trip(tmp_path: Path, ages: dict[int, float]) -> None:
    path = tmp_path / "ages.csv"
    path.write_text("volume,age\n" + "".join(f"{v},{a!r}\n" for v, a in ages.items()))
    assert dict(read_age_table(path).by_volume) == ages


# ------------------------------------------------------------------------------ split
@FAST
@given(data=CSV_BYTES)
def test_split_csv_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "split.csv"
    for head in (b"mode,seed,part,volume,slice\n", b""):
        path.write_bytes(head + data)
        _only_brats_errors(read_split_csv, path)


@FAST
@given(
    volumes=st.lists(st.integers(min_value=0, max_value=500), max_size=40),
    bins=st.lists(st.integers(min_value=0, max_value=2), max_size=40),
    fractions=st.tuples(*(st.one_of(st.floats(min_value=-0.5, max_value=1.5), st.sampled_from([math.nan, math.inf])),) * 3),
    seed=st.integers(min_value=-3, max_value=2**31),
)
def test_split_is_a_partition_or_a_brats_error(
    tmp_path: Path, volumes: list[int], bins: list[int], fractions: tuple[float, float, float], seed: int
) -> None:
    strata = dict(zip(volumes, bins, strict=False))
    try:
        split = split_by_patient(volumes, strata=strata, fractions=fractions, seed=seed)
    except BratsError:
        return
    parts = (split.train, split.val, split.test)
    assert sorted(v for p in parts for v in p) == sorted(volumes)
    assert len(set(split.train) | set(split.val) | set(split.test)) == len(volumes)
    path = tmp_path / "split.csv"
    write_split_csv(split, path)
    assert read_split_csv(path) == split


@FAST
@given(keys=st.sets(st.tuples(st.integers(0, 50), st.integers(0, 200)), min_size=3, max_size=40), seed=st.integers(0, 100))
def test_slice_split_round_trips(tmp_path: Path, keys: set[tuple[int, int]], seed: int) -> None:
    ordered = sorted(keys)
    split = Split(SplitMode.SLICE, seed, train_slices=tuple(ordered[::2]), val_slices=tuple(ordered[1::2]))
    path = tmp_path / "split.csv"
    write_split_csv(split, path)
    assert read_split_csv(path) == split


# ------------------------------------------------------------------------------ predictions.csv
@FAST
@given(data=CSV_BYTES, with_bins=st.booleans())
def test_predictions_csv_arbitrary_bytes(tmp_path: Path, data: bytes, with_bins: bool) -> None:
    bins = {"method": "brats", "cutoffs": [304.2, 456.25], "labels": ["short", "mid", "long"]} if with_bins else None
    (tmp_path / PREDICTIONS_JSON).write_text(json.dumps({"bins": bins}))
    for head in (b"volume,patient_id,name,status,predicted_bin,slices_used,WT_ml\n", b""):
        (tmp_path / PREDICTIONS_CSV).write_bytes(head + data)
        _only_brats_errors(read_prediction_folder, tmp_path)


ROWS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 2)),
        st.integers(0, 155),
        st.floats(min_value=0, max_value=1e4, allow_nan=False),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    ),
    max_size=12,
)


@FAST
@given(rows=ROWS)
def test_predictions_csv_round_trip(tmp_path: Path, rows: list[tuple[int | None, int, float, str]]) -> None:
    bins = {"method": "brats", "cutoffs": [304.2, 456.25], "labels": ["short", "mid", "long"]}
    (tmp_path / PREDICTIONS_JSON).write_text(json.dumps({"bins": bins}))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["volume", "patient_id", "name", "status", "predicted_bin", "slices_used", "WT_ml"])
    for v, (pb, used, wt, pid) in enumerate(rows, start=1):
        writer.writerow([v, pid, f"volume_{v}", "ok", "" if pb is None else pb, used, repr(wt)])
    (tmp_path / PREDICTIONS_CSV).write_text(buf.getvalue())
    folder = read_prediction_folder(tmp_path)
    assert [(p.predicted_bin, p.slices_used, p.region_ml["WT"], p.patient_id) for p in folder.volumes] == [
        (pb, used, wt, pid) for pb, used, wt, pid in rows
    ]


# ------------------------------------------------------------------------------ labels
CLASSES = hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=3, max_side=6), elements=st.integers(0, 3))


@FAST
@given(classes=CLASSES)
def test_label_conversions_round_trip(classes: np.ndarray) -> None:
    assert np.array_equal(labels_to_classes(classes_to_labels(classes)), classes)
    one_hot = classes_to_one_hot(classes[None] if classes.ndim == 2 else classes)
    back = one_hot_to_classes(one_hot)
    assert np.array_equal(back, classes[None] if classes.ndim == 2 else classes)


@FAST
@given(
    values=hnp.arrays(
        st.sampled_from([np.int16, np.int64, np.uint8, np.float32, np.float64]),
        hnp.array_shapes(max_dims=3, max_side=5),
    ),
    convention=st.sampled_from(list(LabelConvention)),
)
def test_segmentation_labels_of_any_values(values: np.ndarray, convention: LabelConvention) -> None:
    try:
        labels, _ = segmentation_labels(Path("seg.nii.gz"), values, convention)
    except BratsError:
        return
    assert labels.dtype == np.uint8 and labels.shape == values.shape
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, 4}


@FAST
@given(values=hnp.arrays(np.int64, hnp.array_shapes(max_dims=3, max_side=5), elements=st.integers(-300, 300)))
def test_labels_to_classes_of_any_integers(values: np.ndarray) -> None:
    try:
        classes = labels_to_classes(values)
    except BratsError:
        return
    assert np.array_equal(classes_to_labels(classes), values)


@pytest.mark.parametrize("convention", list(LabelConvention))
def test_segmentation_labels_keep_valid_labels(convention: LabelConvention) -> None:
    raw = np.array([[0, 1], [2, 4]], dtype=np.int16)
    labels, mapped = segmentation_labels(Path("seg.nii.gz"), raw, convention)
    assert np.array_equal(labels, raw) and not mapped
