"""`brats audit` end to end on a tiny synthetic cohort: five rows, the files, resume, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from brats_sdk.constants import SURVIVAL_CSV
from brats_sdk.data.splits import read_split_csv
from cli.main import cli

ROWS = ["slice split", "patient split", "majority", "age only", "age + volumes"]
FAST = ["--epochs", "1", "--input-size", "32", "--batch-size", "8", "--max-steps-per-epoch", "2", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def audit_dir(tiny_cohort: Path, module_tmp: Path) -> Path:
    out = module_tmp / "audit"
    res = CliRunner().invoke(cli, ["audit", str(tiny_cohort), "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    assert "Inflation" in res.output and "age + volumes" in res.output
    return out


def test_five_rows_and_the_fixed_core(audit_dir: Path) -> None:
    doc = json.loads((audit_dir / "audit.json").read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    assert [r["name"] for r in doc["rows"]] == ROWS
    for r in doc["rows"]:
        assert r["bins"] == "quantile" and isinstance(r["n_patients"], int) and r["n_patients"] > 0
        low, high = r["acc_patient_ci"]
        assert 0.0 <= low <= r["acc_patient"] <= high <= 1.0
    assert doc["inflation"] == pytest.approx(rows["slice split"]["acc_patient"] - rows["patient split"]["acc_patient"])
    # The baselines are scored on the patient split's test patients, fitted on its training ones.
    for name in ROWS[2:]:
        assert rows[name]["n_patients"] == rows["patient split"]["n_patients"]
        assert rows[name]["test_patients_in_training"] == 0
        assert rows[name]["n_train_patients"] == rows["patient split"]["n_train_patients"]
    assert (audit_dir / "audit.html").read_text().count("data:image/png;base64,") == 1
    assert len((audit_dir / "audit.csv").read_text().splitlines()) == 6


def test_overlap_of_both_splits(audit_dir: Path) -> None:
    doc = json.loads((audit_dir / "audit.json").read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    patient = read_split_csv(audit_dir / "patient_split" / "split.csv")
    assert not set(patient.test) & set(patient.train)
    assert rows["patient split"]["test_patients_in_training"] == 0
    slices = read_split_csv(audit_dir / "slice_split" / "split.csv")
    trained = {v for v, _ in slices.train_slices}
    voted = [p["volume"] for p in json.loads((audit_dir / "slice_split" / "run.json").read_text())["patients"] if p["vote"] is not None]
    assert rows["slice split"]["n_patients"] == len(voted)
    assert rows["slice split"]["test_patients_in_training"] == sum(v in trained for v in voted) > 0


def test_resume_and_refusal(audit_dir: Path, tiny_cohort: Path) -> None:
    before = json.loads((audit_dir / "audit.json").read_text())["rows"]
    res = CliRunner().invoke(cli, ["audit", str(tiny_cohort), "--out", str(audit_dir), *FAST])
    assert res.exit_code == 1 and "already holds an audit" in res.output
    # Interrupted after the patient split's training, before its record: resume from its checkpoint.
    slice_record = audit_dir / "slice_split" / "run.json"
    stamp = slice_record.stat().st_mtime_ns
    (audit_dir / "patient_split" / "run.json").unlink()
    res = CliRunner().invoke(cli, ["audit", str(tiny_cohort), "--out", str(audit_dir), "--resume", *FAST])
    assert res.exit_code == 0, res.output
    assert slice_record.stat().st_mtime_ns == stamp
    after = json.loads((audit_dir / "audit.json").read_text())["rows"]
    assert [r["name"] for r in after] == ROWS
    assert after[0] == before[0]


def test_data_without_survival_rows(tiny_cohort: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_cohort, data)
    (data / SURVIVAL_CSV).write_text("Brats20ID,Age,Survival_days,Extent_of_Resection\nSomeone_Else,50,300,GTR\n")
    res = CliRunner().invoke(cli, ["audit", str(data), "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no survival rows" in lines[0], res.output


def test_data_without_a_survival_table(tiny_cohort: Path, tmp_path: Path) -> None:
    """The audit finds the table where training does, and says so in one line before reading the data."""
    data = tmp_path / "data"
    shutil.copytree(tiny_cohort, data, ignore=shutil.ignore_patterns(SURVIVAL_CSV))
    res = CliRunner().invoke(cli, ["audit", str(data), "--out", str(tmp_path / "out"), *FAST])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no survival_info.csv beside the data" in lines[0], res.output
    assert not (tmp_path / "out" / "scan.json").exists()
