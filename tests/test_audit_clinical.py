"""`brats audit --clinical-only`: baselines on a survival table, real and synthetic; bad tables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from brats_sdk.audit import clinical_only_audit, table_counts
from brats_sdk.data.clinical import read_survival_csv
from cli.main import cli
from tests.conftest import REAL_CLINICAL

CORE = ("name", "bins", "n_patients", "acc_patient", "acc_patient_ci")


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("Brats20ID,Age,Survival_days,Extent_of_Resection\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def real_table() -> Path:
    if not REAL_CLINICAL.is_file():
        pytest.skip("../shared/data/real-clinical/survival_info.csv is absent")
    return REAL_CLINICAL


def test_real_table_counts(real_table: Path) -> None:
    records = read_survival_csv(real_table)
    counts = table_counts(records)
    assert counts["rows"] == 236
    assert counts["censored"] == 1
    assert counts["missing_days"] == 0
    # The text NA is a resection class, not a missing value; the censored patient is GTR
    # (DOMAIN.md: 118 GTR, 10 STR, 107 NA among the 235 uncensored).
    assert counts["resection"] == {"GTR": 119, "NA": 107, "STR": 10}
    censored = [r for r in records if r.censored]
    assert censored[0].survival_days == 361.0


def test_real_table_baselines(real_table: Path) -> None:
    result = clinical_only_audit(real_table, folds=5, seed=0)
    assert {(r.bins, r.subset, r.name) for r in result.rows} == {
        (b, s, n) for b in ("quantile", "brats") for s in ("all", "GTR") for n in ("majority", "age only")
    }
    for r in result.rows:
        assert r.patient.n == (235 if r.subset == "all" else result.counts["usable"]["GTR"])  # type: ignore[index]
        assert r.patient.value is not None and r.patient.ci is not None
        assert r.patient.ci[0] <= r.patient.value <= r.patient.ci[1]
        assert r.confusion is not None and sum(map(sum, r.confusion)) == r.patient.n


def _random_table(path: Path, n: int = 60) -> Path:
    """A table of ``n`` patients whose survival falls with age, plus one censored row."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(1, n + 1):
        age = float(rng.uniform(30, 80))
        days = int(np.exp(np.log(400) - 0.03 * (age - 55) + rng.normal(0, 0.5)))
        rows.append(f"BraTS20_Training_{i:03d},{age:.3f},{days},{'GTR' if i % 2 else rng.choice(['STR', 'NA'])}")
    rows.append(f"BraTS20_Training_{n + 1:03d},50,ALIVE (361 days later),GTR")
    return _write(path, rows)


def test_clinical_only_cli_on_a_synthetic_table(tmp_path: Path) -> None:
    out = tmp_path / "audit"
    table = _random_table(tmp_path / "table.csv")
    res = CliRunner().invoke(cli, ["audit", "--clinical-only", str(table), "--out", str(out), "--folds", "3"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "audit.json").read_text())
    assert doc["inflation"] is None and doc["kind"] == "clinical-only"
    assert all(all(k in row for k in CORE) for row in doc["rows"])
    assert {row["subset"] for row in doc["rows"]} == {"all", "GTR"}
    assert doc["counts"]["censored"] == 1
    assert all(row["n_patients"] == (60 if row["subset"] == "all" else 30) for row in doc["rows"])
    assert "data:image/png;base64," in (out / "audit.html").read_text()
    assert len((out / "audit.csv").read_text().splitlines()) == len(doc["rows"]) + 1


def _one_line_error(args: list[str]) -> str:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_bad_tables_give_one_line_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    empty = _write(tmp_path / "empty.csv", [])
    assert "no survival rows" in _one_line_error(["audit", "--clinical-only", str(empty), "--out", out])
    censored = _write(tmp_path / "censored.csv", [f"BraTS20_Training_{i:03d},{50 + i},ALIVE ({100 + i} days later),GTR" for i in range(1, 9)])
    assert "censored" in _one_line_error(["audit", "--clinical-only", str(censored), "--out", out])
    # Everyone dies within 300 days: the BraTS bins mid and long hold nobody.
    short = _write(tmp_path / "short.csv", [f"BraTS20_Training_{i:03d},{40 + i},{100 + 10 * i},GTR" for i in range(1, 21)])
    assert "holds no patient" in _one_line_error(["audit", "--clinical-only", str(short), "--out", out])


@pytest.mark.slow
def test_clinical_only_as_a_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "sub"
    table = _random_table(tmp_path / "table.csv")
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "audit", "--clinical-only", str(table), "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "age only" in proc.stdout
    assert json.loads((out / "audit.json").read_text())["rows"]
