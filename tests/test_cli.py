"""The CLI end to end: CliRunner and real subprocesses, on real files."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from brats_sdk.data.inspection import inspect_h5_folder
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.models.survival import SurvivalClassifier
from brats_sdk.predict.outputs import read_prediction_masks
from cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    make_cohort(root, SynthConfig(volumes=10, slices=16, size=48, seed=1))
    return root


@pytest.fixture(scope="module")
def run_dir(cohort: Path, module_tmp: Path) -> Path:
    out = module_tmp / "run"
    result = CliRunner().invoke(
        cli,
        ["train", "all", str(cohort), "--out", str(out), "--epochs", "1", "--stage-epochs", "1,1,0",
         "--batch-size", "8", "--max-steps", "2", "--device", "cpu", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    return out


def test_version_and_help_as_subprocess() -> None:
    version = _run("--version")
    assert version.returncode == 0 and "brats, version" in version.stdout
    helped = _run("--help")
    assert helped.returncode == 0
    for name in ("synth", "inspect", "train", "predict", "report", "convert", "pack", "audit", "view", "export"):
        assert name in helped.stdout


def test_help_quick_start_predicts_with_the_ages_synth_writes(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The quick start in `brats --help` names the ages file `brats synth` writes: a user who
    # copies its commands gets ages for every volume, not a missing file.
    helped = CliRunner().invoke(cli, ["--help"], terminal_width=400)
    text = " ".join(helped.output.split())
    synth_cmd = re.search(r"`brats (synth \S+ --volumes \d+)`", text)
    predict_cmd = re.search(r"`brats (predict .*?)`", text)
    assert synth_cmd is not None and predict_cmd is not None, text
    synth_args = [*synth_cmd.group(1).split(), "--slices", "16", "--size", "48", "--quiet"]
    predict_args = predict_cmd.group(1).split()
    ages_at = predict_args.index("--age-csv") + 1
    predict_args[predict_args.index("--model-dir") + 1] = str(run_dir)
    monkeypatch.chdir(tmp_path)  # the quick start's paths are relative
    assert CliRunner().invoke(cli, synth_args).exit_code == 0
    assert Path(predict_args[ages_at]).is_file(), predict_args[ages_at]
    res = CliRunner().invoke(cli, [*predict_args, "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    out = tmp_path / predict_args[predict_args.index("--out") + 1]
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == int(synth_args[synth_args.index("--volumes") + 1])
    with (tmp_path / predict_args[ages_at]).open() as f:
        ages = {r["Brats20ID"]: float(r["Age"]) for r in csv.DictReader(f)}
    assert len(ages) >= len(rows) - 2  # the synthetic table, like the real one, lacks a few patients
    assert {r["patient_id"]: float(r["age"]) for r in rows if r["patient_id"] in ages} == ages


def test_every_model_command_takes_device() -> None:
    runner = CliRunner()
    for args in (["train", "segmenter"], ["train", "survival"], ["train", "all"], ["predict"], ["audit"]):
        out = runner.invoke(cli, [*args, "--help"])
        assert out.exit_code == 0, out.output
        assert "--device" in out.output and "auto|cpu|cuda|cuda:N|mps" in out.output


def test_synth_then_inspect_good_and_broken(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["synth", str(tmp_path), "--volumes", "2", "--slices", "8", "--size", "32", "--quiet"])
    assert res.exit_code == 0, res.output
    good = runner.invoke(cli, ["inspect", str(tmp_path), "--quiet"])
    assert good.exit_code == 0, good.output
    assert "volumes" in good.output and "slices with tumour" in good.output
    bad = next(tmp_path.rglob("volume_2_slice_3.h5"))
    bad.write_bytes(b"not an h5 file")
    (next(tmp_path.rglob("volume_1_slice_5.h5"))).unlink()
    broken = runner.invoke(cli, ["inspect", str(tmp_path), "--quiet"])
    assert broken.exit_code == 1
    assert "volume_2_slice_3.h5" in broken.output and "not a readable HDF5 file" in broken.output
    assert "volume 1 is missing slices [5]" in broken.output


def _drop_masks(paths: list[Path]) -> None:
    for path in paths:
        with h5py.File(path, "r+") as f:
            del f["mask"]


def test_inspect_unlabelled_and_partly_labelled_folders(tmp_path: Path) -> None:
    runner = CliRunner()
    data = make_cohort(tmp_path, SynthConfig(volumes=2, slices=8, size=32, seed=0))
    files = sorted(data.glob("*.h5"))
    _drop_masks(files[:1])
    partly = runner.invoke(cli, ["inspect", str(tmp_path), "--quiet"])
    assert partly.exit_code == 1
    assert f"{files[0]}: no 'mask' dataset, unlike other slices" in partly.output.replace("\n", "")
    assert inspect_h5_folder(tmp_path).slices_with_mask == len(files) - 1

    _drop_masks(files[1:])
    unlabelled = runner.invoke(cli, ["inspect", str(tmp_path), "--quiet"])
    assert unlabelled.exit_code == 0, unlabelled.output
    assert "none: unlabelled" in unlabelled.output and "problem" not in unlabelled.output.replace("problems", "")
    result = inspect_h5_folder(tmp_path)
    assert result.ok and not result.labelled and result.n_slices == 16
    required = runner.invoke(cli, ["inspect", str(tmp_path), "--quiet", "--require-masks"])
    assert required.exit_code == 1
    assert f"{tmp_path}: unlabelled, no slice file has a 'mask' dataset" in required.output.replace("\n", "")


def test_library_errors_are_one_line_exit_1(tmp_path: Path, run_dir: Path, cohort: Path) -> None:
    runner = CliRunner()
    # a survival checkpoint given as the segmenter
    res = runner.invoke(cli, ["predict", str(cohort), "--segmenter", str(run_dir / "survival.pt"), "--out", str(tmp_path / "p")])
    assert res.exit_code == 1
    assert "is a survival checkpoint, expected a segmenter checkpoint" in res.output
    assert "Traceback" not in res.output
    # a missing checkpoint
    res = runner.invoke(cli, ["predict", str(cohort), "--segmenter", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "p")])
    assert res.exit_code == 1 and "nope.pt" in res.output
    # an unreadable age CSV
    ages = tmp_path / "ages.csv"
    ages.write_text("who,when\nx,y\n")
    res = runner.invoke(cli, ["predict", str(cohort), "--model-dir", str(run_dir), "--age-csv", str(ages), "--out", str(tmp_path / "p")])
    assert res.exit_code == 1 and "ages.csv" in res.output


def test_explicit_missing_device_is_a_clear_error(cohort: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = CliRunner().invoke(cli, ["train", "segmenter", str(cohort), "--out", str(tmp_path), "--device", "cuda:0"])
    assert res.exit_code == 1
    assert "CUDA is not available" in res.output


@pytest.mark.slow
def test_train_all_writes_run_folder(run_dir: Path) -> None:
    for name in ("segmenter.pt", "survival.pt", "split.csv", "history.csv", "scan.json", "survival_eval.json"):
        assert (run_dir / name).exists(), name
    model = SurvivalClassifier.from_checkpoint(run_dir / "survival.pt")
    assert model.bins is not None and model.bins.n_bins == 3
    with (run_dir / "split.csv").open() as f:
        parts = {r["part"] for r in csv.DictReader(f)}
    assert parts == {"train", "val", "test"}
    evaluation = json.loads((run_dir / "survival_eval.json").read_text())
    assert evaluation["split_mode"] == "patient" and evaluation["leaks_patients"] is False
    assert evaluation["per_patient"]["n"] >= 1


@pytest.mark.slow
def test_predict_skips_a_corrupt_volume_and_exits_3(cohort: Path, run_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for f in next(cohort.rglob("meta_data.csv")).parent.glob("volume_[123]_slice_*.h5"):
        (data / f.name).write_bytes(f.read_bytes())
    (data / "volume_2_slice_4.h5").write_bytes(b"corrupt")
    ages = tmp_path / "ages.csv"
    ages.write_text("volume,age\n1,50\n2,60\n3,70\n")
    out = tmp_path / "pred"
    res = _run("predict", str(data), "--model-dir", str(run_dir), "--age-csv", str(ages), "--out", str(out),
               "--device", "cpu", "--save-masks", "--quiet")
    assert res.returncode == 3, res.stderr
    # The table fits rich's 80 columns (stdout is not a terminal) and cuts nothing.
    assert all(len(line) <= 80 for line in res.stdout.splitlines()), res.stdout
    assert "BraTS20_Training_003" in res.stdout and "…" not in res.stdout, res.stdout
    with (out / "predictions.csv").open() as f:
        rows = {int(r["volume"]): r for r in csv.DictReader(f)}
    assert set(rows) == {1, 2, 3}
    assert rows[2]["status"].startswith("failed:") and "volume_2_slice_4.h5" in rows[2]["status"]
    # The status follows the saved mask: a survival class wherever tumour was predicted.
    labels, probs = read_prediction_masks(out / "masks" / "volume_1_pred.h5")
    assert rows[1]["status"] == ("ok" if labels.any() else "no tumour predicted")
    assert (rows[1]["predicted_bin"] != "") == labels.any() and probs.shape[0] == labels.shape[0]
    with (out / "errors.csv").open() as f:
        errors = list(csv.DictReader(f))
    assert [int(e["volume"]) for e in errors] == [2]
    assert (out / "masks" / "volume_1_pred.h5").exists() and not (out / "masks" / "volume_2_pred.h5").exists()
    payload = json.loads((out / "predictions.json").read_text())
    assert len(payload["volumes"]) == 3 and payload["bins"]["method"] == "quantile"
    # a second run into the same folder replaces the files whole
    (data / "volume_2_slice_4.h5").unlink()
    (data / "volume_2_slice_4.h5").write_bytes((next(cohort.rglob("volume_2_slice_4.h5"))).read_bytes())
    res2 = CliRunner().invoke(cli, ["predict", str(data), "--model-dir", str(run_dir), "--age-csv", str(ages),
                                    "--out", str(out), "--device", "cpu", "--quiet"])
    assert res2.exit_code == 0, res2.output
    with (out / "errors.csv").open() as f:
        assert list(csv.DictReader(f)) == []
    assert not list(out.rglob("*.tmp"))
    settings = json.loads((out / "predictions.json").read_text())["predictor"]
    assert settings["crop_margin"] == 8 and settings["slice_step"] == 3 and settings["min_component_voxels"] == 0
    assert settings["crop_padding"] == "background"


def test_predict_crop_margin_option(cohort: Path, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    res = CliRunner().invoke(cli, ["predict", str(cohort), "--model-dir", str(run_dir), "--out", str(out), "--volumes", "1",
                                   "--crop-margin", "0", "--slice-step", "1", "--min-component-voxels", "5", "--device", "cpu",
                                   "--crop-padding", "zeros", "--quiet"])
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "predictions.json").read_text())["predictor"]
    assert settings["crop_margin"] == 0 and settings["slice_step"] == 1 and settings["fold_batchnorm"] is True
    assert settings["min_component_voxels"] == 5 and settings["crop_padding"] == "zeros"
    assert settings["fuse_upsampling"] is True and settings["tumour_windows"] is True and settings["fast_convolutions"] is True
    labels = json.loads((out / "predictions.json").read_text())["volumes"]
    plain_out = tmp_path / "plain"
    res = CliRunner().invoke(cli, ["predict", str(cohort), "--model-dir", str(run_dir), "--out", str(plain_out), "--volumes", "1",
                                   "--crop-margin", "0", "--slice-step", "1", "--min-component-voxels", "5", "--plain-networks",
                                   "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    plain = json.loads((plain_out / "predictions.json").read_text())
    assert plain["predictor"]["fold_batchnorm"] is False and plain["predictor"]["tumour_windows"] is False
    assert plain["predictor"]["fast_convolutions"] is False
    # The rewrites change float rounding only: the same regions, to the voxel, on this volume.
    regions = [f"{r}_ml" for r in ("NCR", "ED", "ET", "WT", "TC")]
    assert [[v[r] for r in regions] for v in plain["volumes"]] == [[v[r] for r in regions] for v in labels]
    bad = CliRunner().invoke(cli, ["predict", str(cohort), "--model-dir", str(run_dir), "--out", str(out), "--crop-margin", "-1"])
    assert bad.exit_code == 2 and "--crop-margin" in bad.output


REAL = ROOT.parent / "shared" / "data" / "real"


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "BraTS-GLI-00001-000").exists(), reason="../shared/data/real is absent")
def test_predict_save_nifti_on_the_real_case(tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    from brats_sdk.models.segmenter import Segmenter

    seg = tmp_path / "segmenter.pt"
    Segmenter().save(seg)
    out = tmp_path / "pred"
    res = CliRunner().invoke(cli, ["predict", str(REAL), "--segmenter", str(seg), "--out", str(out),
                                   "--save-nifti", "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    written = nib.load(out / "nifti" / "BraTS-GLI-00001-000_pred.nii.gz")
    source = nib.load(REAL / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-t1c.nii.gz")
    assert written.shape == source.shape == (240, 240, 155)
    np.testing.assert_allclose(written.affine, source.affine)
    labels = np.asarray(written.dataobj)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 4}
    with (out / "predictions.csv").open() as f:
        row = next(csv.DictReader(f))
    assert row["name"] == "BraTS-GLI-00001-000" and row["status"] == "no survival model"
    # what was written is what the predictor produced: the WT volume in mL matches the file
    assert float(row["WT_ml"]) == pytest.approx(float((labels > 0).sum()) / 1000.0, abs=1e-3)
