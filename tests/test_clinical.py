"""Tests of brats_sdk.data.clinical on real CSV files written into tmp_path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from brats_sdk.data.clinical import (
    AgeTable,
    PatientIdMap,
    SurvivalRecord,
    read_age_table,
    read_survival_csv,
)
from brats_sdk.data.cohort import CohortEntry, survival_cohort
from brats_sdk.errors import ConfigError, DataError

HEADER = "Brats20ID,Age,Survival_days,Extent_of_Resection\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _survival(tmp_path: Path, body: str) -> Path:
    return _write(tmp_path, "survival_info.csv", HEADER + body)


# --------------------------------------------------------------------------- survival_info.csv


def test_reads_rows_with_quirks(tmp_path: Path) -> None:
    path = _survival(
        tmp_path,
        "BraTS20_Training_001,60.463,289,GTR\n"
        "BraTS20_Training_002,52.263,616,NA\n"
        "BraTS20_Training_003,54.301,ALIVE (361 days later),STR\n"
        " BraTS20_Training_004 , 39.068 , 1 , \n"
        "BraTS20_Training_005,NA,,GTR\n",
    )
    recs = read_survival_csv(path)
    assert [r.patient_id for r in recs] == [f"BraTS20_Training_{i:03d}" for i in range(1, 6)]
    assert recs[0] == SurvivalRecord("BraTS20_Training_001", 60.463, 289.0, False, "GTR")


def test_alive_is_censored_not_a_death(tmp_path: Path) -> None:
    path = _survival(
        tmp_path,
        "A,54.3,ALIVE (361 days later),STR\nB,50,alive( 361  days later ),GTR\n",
    )
    for rec in read_survival_csv(path):
        assert rec.censored is True
        assert rec.survival_days == 361.0


def test_na_resection_stays_text(tmp_path: Path) -> None:
    path = _survival(tmp_path, "A,60,289,NA\nB,61,300,\nC,62,301,gtr\n")
    recs = read_survival_csv(path)
    assert [r.resection for r in recs] == ["NA", "NA", "GTR"]
    for rec in recs:
        assert isinstance(rec.resection, str)


def test_blank_days_and_age_are_none(tmp_path: Path) -> None:
    path = _survival(tmp_path, "A,,,GTR\nB,NA,NA,GTR\n")
    for rec in read_survival_csv(path):
        assert rec.age is None
        assert rec.survival_days is None
        assert rec.censored is False


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("X,60,abc,GTR", "Survival_days 'abc' is not a number or 'ALIVE (N days later)'"),
        ("X,old,100,GTR", "Age 'old' is not a number"),
        ("X,60,-5,GTR", "Survival_days '-5'"),
        ("X,60,100,partial", "Extent_of_Resection 'partial'"),
        ("X,60,100", "expected 4 fields"),
        (",60,100,GTR", "empty Brats20ID"),
        ("A,61,101,GTR", "duplicate Brats20ID 'A' (first on line 2)"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, row: str, problem: str) -> None:
    # Line 1 header, line 2 a good row, line 3 blank (still counted), line 4 the bad row.
    path = _survival(tmp_path, f"A,60,100,GTR\n\n{row}\n")
    with pytest.raises(DataError) as info:
        read_survival_csv(path)
    msg = str(info.value)
    assert "survival_info.csv line 4" in msg
    assert problem in msg


def test_missing_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "survival_info.csv", "Brats20ID,Age,Survival_days\nA,60,100\n")
    with pytest.raises(DataError, match=r"missing column\(s\) Extent_of_Resection"):
        read_survival_csv(path)


def test_missing_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_survival_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="empty file"):
        read_survival_csv(_write(tmp_path, "empty.csv", ""))


def test_headers_case_insensitive_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("\ufeffbrats20id,AGE,survival_days,extent_of_resection,extra\nA,1,2,GTR,x\n")
    assert read_survival_csv(path) == (SurvivalRecord("A", 1.0, 2.0, False, "GTR"),)


# --------------------------------------------------------------------------- age table


def test_age_table_by_patient(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "ages.csv", "Brats20ID,Age\nBraTS20_Training_001,60.5\nBraTS20_Training_002,NA\n"
    )
    table = read_age_table(path)
    assert dict(table.by_patient) == {"BraTS20_Training_001": 60.5}
    assert dict(table.by_volume) == {}
    assert table.age_for(1, "BraTS20_Training_001") == 60.5
    assert table.age_for(2, "BraTS20_Training_002") is None


def test_age_table_by_volume(tmp_path: Path) -> None:
    path = _write(tmp_path, "ages.csv", "VOLUME,age\n1,60.5\n7,\n12,33\n")
    table = read_age_table(path)
    assert dict(table.by_volume) == {1: 60.5, 12: 33.0}
    assert table.age_for(12, "whatever") == 33.0
    assert table.age_for(7, "whatever") is None


def test_survival_csv_is_an_age_table(tmp_path: Path) -> None:
    path = _survival(tmp_path, "A,60,100,GTR\nB,61,ALIVE (361 days later),NA\n")
    assert dict(read_age_table(path).by_patient) == {"A": 60.0, "B": 61.0}


def test_age_table_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="line 3: age 'x' is not a number"):
        read_age_table(_write(tmp_path, "a.csv", "volume,age\n1,2\n2,x\n"))
    with pytest.raises(DataError, match=r"expected Brats20ID,Age .* volume,Age"):
        read_age_table(_write(tmp_path, "b.csv", "id,years\n1,2\n"))
    with pytest.raises(DataError, match="line 3: duplicate key 1"):
        read_age_table(_write(tmp_path, "c.csv", "volume,age\n1,2\n1,3\n"))
    with pytest.raises(DataError, match="line 2: volume 'v1' is not an integer"):
        read_age_table(_write(tmp_path, "d.csv", "volume,age\nv1,2\n"))


def test_age_table_is_read_only() -> None:
    table = AgeTable(by_volume={1: 2.0})
    with pytest.raises(TypeError):
        table.by_volume[2] = 3.0  # type: ignore[index]  # writing is what is tested


# --------------------------------------------------------------------------- id map


def test_id_map_default_and_override(tmp_path: Path) -> None:
    assert PatientIdMap().patient_id(7) == "BraTS20_Training_007"
    assert PatientIdMap().patient_id(369) == "BraTS20_Training_369"
    path = _write(tmp_path, "ids.csv", "Volume,Patient_ID\n7,BraTS20_Training_100\n")
    ids = PatientIdMap.from_csv(path)
    assert ids.patient_id(7) == "BraTS20_Training_100"
    assert ids.patient_id(8) == "BraTS20_Training_008"
    assert PatientIdMap(fmt="case{volume}").patient_id(3) == "case3"


def test_id_map_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="line 3: duplicate volume 7"):
        PatientIdMap.from_csv(_write(tmp_path, "a.csv", "volume,patient_id\n7,A\n7,B\n"))
    with pytest.raises(DataError, match="line 3: patient_id 'A' already given on line 2"):
        PatientIdMap.from_csv(_write(tmp_path, "b.csv", "volume,patient_id\n7,A\n8,A\n"))
    with pytest.raises(DataError, match="line 2: volume 'x' is not an integer"):
        PatientIdMap.from_csv(_write(tmp_path, "c.csv", "volume,patient_id\nx,A\n"))
    with pytest.raises(DataError, match="missing column"):
        PatientIdMap.from_csv(_write(tmp_path, "d.csv", "volume,id\n1,A\n"))
    with pytest.raises(ConfigError, match="volume"):
        PatientIdMap(fmt="case{vol}")


# --------------------------------------------------------------------------- cohort


def test_survival_cohort_counts(tmp_path: Path) -> None:
    path = _survival(
        tmp_path,
        "BraTS20_Training_001,60,289,GTR\n"
        "BraTS20_Training_002,50,ALIVE (361 days later),GTR\n"
        "BraTS20_Training_003,,300,STR\n"
        "BraTS20_Training_004,40,,NA\n"
        "P5,45,500,NA\n",
    )
    ids = PatientIdMap(overrides={5: "P5"})
    cohort = survival_cohort(read_survival_csv(path), [1, 2, 3, 4, 5, 6, 7], ids)
    assert cohort.entries == (
        CohortEntry(1, "BraTS20_Training_001", 60.0, 289.0, "GTR"),
        CohortEntry(5, "P5", 45.0, 500.0, "NA"),
    )
    assert (
        cohort.n_no_survival,
        cohort.n_censored,
        cohort.n_missing_age,
        cohort.n_missing_days,
    ) == (
        2,
        1,
        1,
        1,
    )
    assert cohort.n_excluded == 5
    assert cohort.volumes == (1, 5)
    assert "2 usable of 7 volumes" in cohort.summary()
    assert all(math.isfinite(e.days) for e in cohort.entries)


def test_survival_cohort_rejects_duplicate_volumes() -> None:
    with pytest.raises(DataError, match="more than once: 1"):
        survival_cohort((), [1, 1, 2])
