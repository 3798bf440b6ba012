"""Issue 18, group 4: predictions record what they were made from; the report refuses
ground truth of another cohort and malformed ``predictions.csv`` fields; NIfTI labels
and affines are checked, not guessed."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from brats_sdk.constants import IMAGE_CHANNELS
from brats_sdk.data.convert import CONVERSION_JSON
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.nifti_grid import grid_difference
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import DataError
from brats_sdk.models.segmenter import Segmenter
from brats_sdk.report import ReportOptions
from brats_sdk.report.evaluate import evaluate_predictions
from brats_sdk.report.folder import read_prediction_folder
from brats_sdk.report.provenance import GroundTruthMismatchError
from brats_sdk.run_files import PREDICTIONS_CSV, PREDICTIONS_JSON
from cli.main import cli

COHORT = SynthConfig(volumes=2, slices=16, size=48, seed=0)


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder, prediction folder) of a fresh segmenter on a 2-volume synthetic cohort."""
    root = tmp_path_factory.mktemp("provenance")
    data = make_cohort(root / "cohort", COHORT)
    torch.manual_seed(0)
    Segmenter().save(root / "segmenter.pt")
    out = root / "pred"
    result = CliRunner().invoke(
        cli, ["predict", str(data), "--out", str(out), "--segmenter", str(root / "segmenter.pt"), "--save-masks",
              "--device", "cpu", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    return data, out


def test_predictions_record_each_volumes_input(predicted: tuple[Path, Path]) -> None:
    data, out = predicted
    meta = json.loads((out / PREDICTIONS_JSON).read_text())
    assert meta["input"] == str(data) and sorted(meta["inputs"]) == ["1", "2"]
    first = meta["inputs"]["1"]
    assert first["name"] == "volume_1" and first["shape"] == [16, 48, 48] and len(first["fingerprint"]) == 3 * len(IMAGE_CHANNELS)


def test_report_refuses_another_cohort_unless_forced(predicted: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = predicted
    same = evaluate_predictions(out, ground_truth=data, options=ReportOptions(max_figure_volumes=0, viewer_volumes=0))
    assert all(v.regions is not None for v in same.volumes)
    other = make_cohort(tmp_path / "other", SynthConfig(volumes=2, slices=16, size=48, seed=1))
    with pytest.raises(GroundTruthMismatchError, match=r"volume 1 \(volume_1\) is not the image predicted as volume 1 .*other image intensities.*--force"):
        evaluate_predictions(out, ground_truth=other, options=ReportOptions(max_figure_volumes=0, viewer_volumes=0))
    forced = evaluate_predictions(
        out, ground_truth=other, options=ReportOptions(max_figure_volumes=0, viewer_volumes=0, force=True)
    )
    assert all(v.regions is not None for v in forced.volumes)
    larger = make_cohort(tmp_path / "larger", SynthConfig(volumes=2, slices=20, size=48, seed=0))
    result = CliRunner().invoke(
        cli, ["report", str(out), "--out", str(tmp_path / "rep"), "--ground-truth", str(larger), "--quiet",
              "--max-figure-volumes", "0", "--viewer-volumes", "0"],
    )
    assert result.exit_code == 1 and "shape (20, 48, 48) instead of (16, 48, 48)" in result.output


def _rewrite_cell(src: Path, dst: Path, column: str, value: str) -> None:
    shutil.copytree(src, dst)
    with (src / PREDICTIONS_CSV).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[1][column] = value
    with (dst / PREDICTIONS_CSV).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize(
    ("column", "value", "match"),
    [
        ("predicted_bin", "-1", r"line 3: predicted_bin '-1' must be an integer in 0\.\.0"),
        ("predicted_bin", "7", r"line 3: predicted_bin '7' must be"),
        ("slices_used", "2.5", r"line 3: slices_used '2\.5' must be an integer"),
        ("WT_ml", "-4", r"line 3: WT_ml '-4' must be a number in 0\.\.inf"),
        ("volume", "x", r"line 3: volume 'x' is not an integer"),
        ("volume", "1", r"line 3: volume 1 appears twice"),
    ],
)
def test_every_field_of_predictions_csv_is_checked(
    predicted: tuple[Path, Path], tmp_path: Path, column: str, value: str, match: str
) -> None:
    _, out = predicted
    _rewrite_cell(out, tmp_path / "p", column, value)
    with pytest.raises(DataError, match=rf"predictions\.csv {match}"):
        read_prediction_folder(tmp_path / "p")


def test_a_bin_outside_the_models_bins_is_refused(predicted: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = predicted
    shutil.copytree(out, tmp_path / "p")
    meta = json.loads((out / PREDICTIONS_JSON).read_text())
    meta["bins"] = {"method": "brats", "cutoffs": [304.2, 456.25], "labels": ["short", "mid", "long"]}
    (tmp_path / "p" / PREDICTIONS_JSON).write_text(json.dumps(meta))
    text = (out / PREDICTIONS_CSV).read_text().splitlines()
    header = text[0] + ",prob_short,prob_mid,prob_long,votes_short,votes_mid,votes_long"
    rows = [line + ",0.2,0.3,0.5,1,2,3" for line in text[1:]]
    cells = rows[0].split(",")
    cells[text[0].split(",").index("predicted_bin")] = "7"
    rows[0] = ",".join(cells)
    (tmp_path / "p" / PREDICTIONS_CSV).write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(DataError, match=r"predictions\.csv line 2: predicted_bin '7' must be an integer in 0\.\.2"):
        read_prediction_folder(tmp_path / "p")
    rows[0] = rows[0].replace(",7,", ",2,", 1)
    (tmp_path / "p" / PREDICTIONS_CSV).write_text("\n".join([header, *rows]) + "\n")
    assert read_prediction_folder(tmp_path / "p").volumes[0].predicted_bin == 2


# ------------------------------------------------------------------------- NIfTI labels and affines
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def _case(root: Path, name: str, *, seg: np.ndarray | None = None, t2_affine: np.ndarray = AFFINE) -> Path:
    case = root / name
    case.mkdir(parents=True)
    for c, channel in enumerate(IMAGE_CHANNELS):
        data = np.full((8, 8, 4), 100.0 + c, dtype=np.float32)
        nib.save(nib.Nifti1Image(data, t2_affine if channel == "t2" else AFFINE), case / f"{name}_{channel}.nii.gz")
    if seg is not None:
        nib.save(nib.Nifti1Image(seg, AFFINE), case / f"{name}_seg.nii.gz")
    return case


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda a: a @ np.diag([1.0, 1.0, 2.0, 1.0]), r"voxel size \(1, 1, 2\) mm differs from c_flair\.nii\.gz's \(1, 1, 1\) mm"),
        (lambda a: a + np.array([[0, 0, 0, 0.5], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), r"origin \(0\.5, 0, 0\) mm differs"),
        (lambda a: np.diag([-1.0, 1.0, 1.0, 1.0]) @ a, r"orientation LAS differs from c_flair\.nii\.gz's RAS"),
    ],
)
def test_modalities_must_share_the_whole_affine(tmp_path: Path, change: object, what: str) -> None:
    _case(tmp_path, "c", t2_affine=change(AFFINE))  # type: ignore[operator]  # a lambda of the table
    with pytest.raises(DataError, match=rf"c_t2\.nii\.gz: {what}"):
        NiftiFolder(tmp_path).load_volume(1)


def test_affines_agree_within_float_rounding() -> None:
    assert grid_difference(AFFINE + 1e-5, AFFINE) is None
    assert grid_difference(AFFINE * 1.01, AFFINE) is not None


def test_convert_needs_and_records_the_label_convention(tmp_path: Path) -> None:
    seg = np.zeros((8, 8, 4), dtype=np.uint8)
    seg[2:4, 2:4, 1:3] = 3
    _case(tmp_path / "in", "c", seg=seg)
    inspected = CliRunner().invoke(cli, ["inspect", str(tmp_path / "in"), "--quiet"])
    assert inspected.exit_code == 1 and "holds label 3" in inspected.output
    inspected = CliRunner().invoke(cli, ["inspect", str(tmp_path / "in"), "--label-convention", "brats2012", "--quiet"])
    assert inspected.exit_code == 0, inspected.output
    refused = CliRunner().invoke(cli, ["convert", str(tmp_path / "in"), str(tmp_path / "out"), "--quiet"])
    # The case is skipped (the batch contract: exit 3, the reason listed), not converted under a guess.
    assert refused.exit_code == 3 and "holds label 3" in refused.output and "--label-convention" in refused.output
    assert not list((tmp_path / "out").rglob("volume_*_slice_*.h5"))
    done = CliRunner().invoke(
        cli, ["convert", str(tmp_path / "in"), str(tmp_path / "out2"), "--label-convention", "brats2012", "--quiet"]
    )
    assert done.exit_code == 0, done.output
    data = next((tmp_path / "out2").rglob(CONVERSION_JSON)).parent
    assert json.loads((data / CONVERSION_JSON).read_text())["label_convention"] == "brats2012"
    packed = CliRunner().invoke(
        cli, ["pack", str(tmp_path / "in"), str(tmp_path / "packed"), "--label-convention", "brats2023", "--quiet"]
    )
    assert packed.exit_code == 0, packed.output
    manifest = next((tmp_path / "packed").glob("*.json"))
    assert json.loads(manifest.read_text())["label_convention"] == "brats2023"
