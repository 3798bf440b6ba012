"""``brats report``: a real prediction folder, built with the predict writers, scored and drawn.

The folder holds volumes 1-4 of a synthetic cohort plus volume 5 (not in the ground
truth) and volume 6 (a failed prediction). Predictions equal the truth for volumes 1,
2 and 4 and are the truth shifted by two columns for volume 3, so every expected
number is computed here independently with numpy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner

from brats_sdk.bins import SurvivalBins
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import DataError
from brats_sdk.labels import classes_to_labels, labels_to_classes, one_hot_to_classes
from brats_sdk.metrics.survival import majority_vote
from brats_sdk.models.survival import AgeScaler, SurvivalClassifier, SurvivalConfig
from brats_sdk.predict.outputs import (
    failure_row,
    mask_file_name,
    prediction_row,
    write_json,
    write_prediction_masks,
    write_rows_csv,
)
from brats_sdk.predict.results import VolumeFailure, VolumePrediction, region_volumes_ml
from brats_sdk.report import ReportOptions, evaluate_predictions, write_report
from brats_sdk.run_files import MASKS_DIR, PREDICTIONS_CSV, PREDICTIONS_JSON
from cli.main import cli

BINS = SurvivalBins.brats()  # synthetic cohort: volume 2 -> 538 d (long), volume 4 -> 271 d (short, GTR)
SHIFT = 2


@dataclass(frozen=True)
class Cohort:
    data_dir: Path
    survival_csv: Path
    truth: dict[int, npt.NDArray[np.uint8]]  # volume -> (D, H, W) class indices
    pred: dict[int, npt.NDArray[np.uint8]]
    slice_correct: tuple[int, int]  # correct slices, all slices (volumes 2 and 4)


def _probs(bins: list[int]) -> npt.NDArray[np.float64]:
    out = np.full((len(bins), 3), 0.1)
    out[np.arange(len(bins)), bins] = 0.8
    return out


def _prediction(volume: int, classes: npt.NDArray[np.uint8], slice_bins: list[int] | None) -> VolumePrediction:
    labels = classes_to_labels(classes)
    used = tuple(int(i) for i in np.flatnonzero(classes.reshape(classes.shape[0], -1).any(axis=1)))
    if slice_bins is None:
        return VolumePrediction(
            volume=volume, name=f"volume_{volume}", patient_id=f"BraTS20_Training_{volume:03d}", labels=labels,
            age=None, slice_indices=(), slice_probs=np.zeros((0, 3)), predicted_bin=None, mean_prob_bin=None,
            mean_probs=None, votes=None, bin_label=None, bin_days=None, region_ml=region_volumes_ml(classes),
            status="no age", seconds=0.1,
        )
    probs = _probs(slice_bins[: len(used)] + [slice_bins[-1]] * (len(used) - len(slice_bins)))
    winner, votes = majority_vote(probs)
    mean = probs.mean(axis=0)
    return VolumePrediction(
        volume=volume, name=f"volume_{volume}", patient_id=f"BraTS20_Training_{volume:03d}", labels=labels,
        age=55.0, slice_indices=used, slice_probs=probs, predicted_bin=winner, mean_prob_bin=int(mean.argmax()),
        mean_probs=tuple(float(p) for p in mean), votes=votes, bin_label=BINS.labels[winner],
        bin_days=BINS.range_text(winner), region_ml=region_volumes_ml(classes), status="ok", seconds=0.1,
    )


def _write_folder(out: Path, preds: list[VolumePrediction], failures: list[VolumeFailure], *, leaks: bool) -> Path:
    rows = [prediction_row(p, BINS) for p in preds] + [failure_row(f) for f in failures]
    rows.sort(key=lambda r: int(str(r["volume"])))
    for p in preds:
        write_prediction_masks(out / MASKS_DIR / mask_file_name(p.volume), p, BINS.n_bins)
    write_rows_csv(out / PREDICTIONS_CSV, rows)
    split = {"mode": "slice" if leaks else "patient", "seed": 0, "train": [1, 2], "val": [], "test": [3, 4]}
    models = {
        "segmenter": {"sdk_version": "0.1.0", "architecture": "smp.Unet(resnet18)", "split": split, "leaks_patients": leaks},
        "survival": {"sdk_version": "0.1.0", "architecture": "resnet50", "split": split, "leaks_patients": leaks,
                     "trained_on": "ground-truth masks"},
    }
    write_json(out / PREDICTIONS_JSON, {
        "sdk_version": "0.1.0", "created": "2025-01-01T00:00:00+00:00", "input": "", "models": models,
        "bins": BINS.to_dict(), "bin_ranges": [BINS.range_text(b) for b in range(3)], "volumes": rows,
        "failures": [{"volume": f.volume, "name": f.name, "reason": f.reason} for f in failures],
    })
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    data_dir = make_cohort(tmp_path_factory.mktemp("report_cohort"), SynthConfig(volumes=4, slices=16, size=48, seed=0))
    source = H5SliceFolder(data_dir)
    truth: dict[int, npt.NDArray[np.uint8]] = {}
    for info in source.volumes():
        mask = source.load_volume(info.volume).mask
        assert mask is not None
        truth[info.volume] = one_hot_to_classes(mask, channel_axis=1)
    pred = {v: t.copy() for v, t in truth.items()}
    pred[3] = np.roll(truth[3], SHIFT, axis=2)
    pred[5] = np.zeros_like(truth[1])
    pred[5][8, 20:26, 20:26] = 2
    n2 = int(pred[2].reshape(16, -1).any(axis=1).sum())
    n4 = int(pred[4].reshape(16, -1).any(axis=1).sum())
    return Cohort(data_dir, data_dir / "survival_info.csv", truth, pred, (n2 + 1, n2 + n4))


def _predictions(cohort: Cohort, out: Path, *, leaks: bool = False) -> Path:
    preds = [
        _prediction(1, cohort.pred[1], [0]),
        _prediction(2, cohort.pred[2], [2]),  # long, correct on every slice
        _prediction(3, cohort.pred[3], [1]),
        _prediction(4, cohort.pred[4], [0, 1]),  # short; one slice right, the vote says mid (wrong)
        _prediction(5, cohort.pred[5], None),
    ]
    return _write_folder(out, preds, [VolumeFailure(6, "volume_6", "BraTS20_Training_006", "bad file")], leaks=leaks)


def _dice(p: npt.NDArray[np.bool_], t: npt.NDArray[np.bool_]) -> float:
    return 2.0 * float((p & t).sum()) / float(p.sum() + t.sum())


@pytest.fixture(scope="module")
def full_report(cohort: Cohort, module_tmp: Path) -> Path:
    tmp = module_tmp / "full_report"
    pred_dir = _predictions(cohort, tmp / "pred")
    model = SurvivalClassifier(SurvivalConfig(n_bins=3, input_size=32), bins=BINS, age_scaler=AgeScaler(20.0, 80.0))
    model.save(tmp / "survival.pt")
    write_report(pred_dir, tmp / "report", ground_truth=cohort.data_dir, survival_csv=cohort.survival_csv,
                 survival_model=tmp / "survival.pt", options=ReportOptions(feature_slices_per_volume=4, device="cpu"))
    return tmp / "report"


def test_report_files_and_embedded_figures(full_report: Path) -> None:
    for name in ("report.html", "metrics.json", "per_volume.csv"):
        assert (full_report / name).is_file()
    pngs = sorted(p.stem for p in (full_report / "figures").glob("*.png"))
    for stem in ("confusion_pixels", "region_scores", "survival_confusion", "survival_roc", "survival_votes",
                 "pca_features", "correlation", "overlay_volume_4"):
        assert stem in pngs
    assert len([p for p in pngs if p.startswith("overlay_")]) == 3
    html = (full_report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    assert 'name="viewport"' in html and "@media print" in html
    assert "http://" not in html and "https://" not in html and not re.search(r"<script[^>]*\ssrc=", html)
    metrics = json.loads((full_report / "metrics.json").read_text())
    assert set(metrics["figures"]) == set(pngs)


def test_segmentation_numbers(full_report: Path, cohort: Cohort) -> None:
    m = json.loads((full_report / "metrics.json").read_text())
    rows = {r["volume"]: r for r in m["per_volume"]}
    for v in (1, 2, 4):
        assert rows[v]["WT_dice"] == 1.0 and rows[v]["WT_hd95"] == 0.0
    wt = labels_to_classes(classes_to_labels(cohort.truth[3])) > 0
    assert rows[3]["WT_dice"] == pytest.approx(_dice(np.roll(wt, SHIFT, axis=2), wt), abs=1e-12)
    assert 0.0 < rows[3]["WT_hd95"] <= SHIFT
    assert m["segmentation"]["n_volumes"] == 4
    assert m["volumes"]["missing_in_ground_truth"] == [5, 6]
    assert m["volumes"]["failed"] == [6] and m["volumes"]["without_mask_file"] == [6]
    # Pooled channel Dice over the four matched volumes, computed directly.
    pred = np.concatenate([cohort.pred[v] for v in (1, 2, 3, 4)])
    truth = np.concatenate([cohort.truth[v] for v in (1, 2, 3, 4)])
    for c, name in enumerate(("NCR", "ED", "ET"), start=1):
        assert m["segmentation"]["channel_dice_pooled"][name] == pytest.approx(_dice(pred == c, truth == c))
    assert m["segmentation"]["n_pixels"] == truth.size
    assert np.asarray(m["segmentation"]["confusion"]["counts"]).sum() == truth.size


def test_survival_numbers_and_counts(full_report: Path, cohort: Cohort) -> None:
    s = json.loads((full_report / "metrics.json").read_text())["survival"]
    assert s["per_patient"]["n"] == 2 and s["per_patient"]["accuracy"] == 0.5
    correct, total = cohort.slice_correct
    assert s["per_slice"]["n"] == total and s["per_slice"]["accuracy"] == pytest.approx(correct / total)
    assert s["brats_challenge"] == {"accuracy": 0.0, "n": 1, "population": "GTR patients"}
    assert s["excluded"] == {"no survival row": 3, "censored": 1, "no survival days": 0}
    assert s["per_patient"]["confusion"] == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]


def test_every_accuracy_has_its_count(full_report: Path) -> None:
    html = (full_report / "report.html").read_text()
    percents = re.findall(r"\d+\.\d%[^<]{0,20}", html)
    assert percents
    assert all("(n = " in p for p in percents), percents


def test_leak_warning(cohort: Cohort, tmp_path: Path) -> None:
    pred_dir = _predictions(cohort, tmp_path / "pred", leaks=True)
    files = write_report(pred_dir, tmp_path / "report", survival_csv=cohort.survival_csv)
    html = files.html.read_text()
    assert 'class="box leak"' in html and "leak patients" in html
    metrics = json.loads(files.metrics.read_text())
    assert metrics["honesty"]["leaks_patients"] is True and metrics["honesty"]["warning"]


def test_no_warning_on_a_patient_split(full_report: Path) -> None:
    html = (full_report / "report.html").read_text()
    assert 'class="box leak"' not in html
    assert "were in the segmenter model's training or validation set" in html


def test_predictions_only(cohort: Cohort, tmp_path: Path) -> None:
    pred_dir = _predictions(cohort, tmp_path / "pred")
    data = write_report(pred_dir, tmp_path / "report", options=ReportOptions(max_figure_volumes=1)).data
    assert data.segmentation is None and data.survival is None
    assert data.exploratory.pca_note is not None and data.exploratory.corr_bin_source == "predicted"
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Not scored" in html
    assert sorted(p.stem for p in (tmp_path / "report" / "figures").glob("*.png")) == [
        "correlation", "overlay_volume_4", "survival_votes"]


def test_not_a_prediction_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"predictions\.json"):
        evaluate_predictions(tmp_path)


def test_cli_report(cohort: Cohort, tmp_path: Path) -> None:
    pred_dir = _predictions(cohort, tmp_path / "pred")
    command, prefix = cli, ["report"]
    runner = CliRunner()
    result = runner.invoke(command, [*prefix, str(pred_dir), "--out", str(tmp_path / "rep"), "--ground-truth",
                                     str(cohort.data_dir), "--survival-csv", str(cohort.survival_csv), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output and "Survival accuracy per patient" in result.output
    assert "50.0% (n = 2 patients)" in result.output
    hd = runner.invoke(command, [*prefix, str(pred_dir), "--out", str(tmp_path / "rep3"), "--ground-truth",
                                 str(cohort.data_dir), "--hd95-method", "max_directed", "--quiet"])
    assert hd.exit_code == 0, hd.output
    pooled = json.loads((tmp_path / "rep" / "metrics.json").read_text())["segmentation"]
    directed = json.loads((tmp_path / "rep3" / "metrics.json").read_text())["segmentation"]
    assert (pooled["hd95_method"], directed["hd95_method"]) == ("pooled", "max_directed")
    assert directed["regions"]["WT"]["hd95"]["max"] >= pooled["regions"]["WT"]["hd95"]["max"]
    bad = runner.invoke(command, [*prefix, str(tmp_path), "--out", str(tmp_path / "rep2")])
    assert bad.exit_code == 1, bad.output
    assert len(bad.output.strip().splitlines()) == 1 and "predictions.json" in bad.output, bad.output
