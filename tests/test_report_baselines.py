"""`brats report` shows the majority and age-only baselines beside the model's accuracy.

A prediction folder written with the predict writers: 30 training patients and 12 test
patients whose survival bin follows age (young patients live long), as the survival CSV
says; the model's votes are set here, so every expected number is computed independently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from brats_sdk.bins import SurvivalBins
from brats_sdk.metrics.survival import majority_vote
from brats_sdk.predict.outputs import (
    mask_file_name,
    prediction_row,
    write_json,
    write_prediction_masks,
    write_rows_csv,
)
from brats_sdk.predict.results import VolumePrediction, region_volumes_ml
from brats_sdk.report import write_report
from brats_sdk.run_files import MASKS_DIR, PREDICTIONS_CSV, PREDICTIONS_JSON

BINS = SurvivalBins.brats()
TRAIN = list(range(1, 31))
TEST = list(range(31, 43))


def _age(v: int) -> float:
    return 30.0 + (v * 37) % 50


def _days(v: int) -> int:
    # Bins by age: under 45 long, 45-60 mid, over 60 short; every fourth test patient
    # defies age (and only a model that knows more than age gets it right).
    age = _age(v)
    if v in TEST and v % 4 == 0:
        return 200 if age < 45 else 600
    return 600 if age < 45 else 380 if age < 60 else 200


def _prediction(v: int, vote: int) -> VolumePrediction:
    classes = np.zeros((4, 8, 8), dtype=np.uint8)
    classes[1:3, 2:5, 2:5] = 2
    labels = classes.copy()
    probs = np.full((2, 3), 0.1)
    probs[:, vote] = 0.8
    winner, votes = majority_vote(probs)
    return VolumePrediction(
        volume=v, name=f"volume_{v}", patient_id=f"BraTS20_Training_{v:03d}", labels=labels, age=_age(v),
        slice_indices=(1, 2), slice_probs=probs, predicted_bin=winner, mean_prob_bin=winner,
        mean_probs=tuple(float(p) for p in probs.mean(axis=0)), votes=votes, bin_label=BINS.labels[winner],
        bin_days=BINS.range_text(winner), region_ml=region_volumes_ml(classes), status="ok", seconds=0.1,
    )


def _folder(out: Path, votes: dict[int, int]) -> Path:
    preds = [_prediction(v, votes[v]) for v in TEST]
    for p in preds:
        write_prediction_masks(out / MASKS_DIR / mask_file_name(p.volume), p, BINS.n_bins)
    rows = [prediction_row(p, BINS) for p in preds]
    write_rows_csv(out / PREDICTIONS_CSV, rows)
    split = {"mode": "patient", "seed": 0, "train": TRAIN[:-3], "val": TRAIN[-3:], "test": TEST}
    write_json(out / PREDICTIONS_JSON, {
        "sdk_version": "0.1.0", "created": "2025-01-01T00:00:00+00:00", "input": "",
        "models": {"survival": {"architecture": "resnet50", "split": split, "leaks_patients": False}},
        "bins": BINS.to_dict(), "volumes": rows, "failures": [],
    })
    return out


@pytest.fixture(scope="module")
def survival_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline_csv") / "survival_info.csv"
    lines = ["Brats20ID,Age,Survival_days,Extent_of_Resection"]
    lines += [f"BraTS20_Training_{v:03d},{_age(v)},{_days(v)},GTR" for v in TRAIN + TEST]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _truth(v: int) -> int:
    return int(BINS.assign(_days(v)))


def test_a_model_worse_than_age_is_called_so(survival_csv: Path, tmp_path: Path) -> None:
    wrong = {v: (_truth(v) + 1) % 3 for v in TEST}
    files = write_report(_folder(tmp_path / "pred", wrong), tmp_path / "report", survival_csv=survival_csv)
    s = json.loads(files.metrics.read_text())["survival"]
    rows = {b["name"]: b for b in s["baselines"]}
    assert set(rows) == {"majority", "age only"}
    assert s["per_patient"]["accuracy"] == 0.0
    # Age separates the training patients' bins: a fit on them finds it.
    assert rows["age only"]["acc_patient"] >= 0.5 and rows["age only"]["n_patients"] == len(TEST)
    assert rows["age only"]["n_train_patients"] == len(TRAIN)
    counts = np.bincount([_truth(v) for v in TRAIN], minlength=3)
    majority = int(np.argmax(counts))
    assert rows["majority"]["acc_patient"] == pytest.approx(np.mean([_truth(v) == majority for v in TEST]))
    assert "does not beat age alone" in s["baseline_note"]
    html = files.html.read_text()
    assert "Baselines on the same patients" in html and "does not beat age alone" in html
    headline = json.loads(files.metrics.read_text())["headline"]
    assert any(h["name"] == "Baseline per patient: age only" for h in headline)


def test_a_model_better_than_age_is_not_called_worse(survival_csv: Path, tmp_path: Path) -> None:
    right = {v: _truth(v) for v in TEST}
    files = write_report(_folder(tmp_path / "pred", right), tmp_path / "report", survival_csv=survival_csv)
    s = json.loads(files.metrics.read_text())["survival"]
    assert s["per_patient"]["accuracy"] == 1.0
    age = next(b for b in s["baselines"] if b["name"] == "age only")
    assert age["acc_patient"] < 1.0
    assert "does not beat" not in s["baseline_note"]
