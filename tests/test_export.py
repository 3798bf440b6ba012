"""`brats export` and prediction from an export through ONNX Runtime, without torch."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from brats_sdk import (
    AgeScaler,
    CheckpointError,
    CombinedPredictor,
    ConfigError,
    Segmenter,
    SurvivalBins,
    SurvivalClassifier,
    SurvivalConfig,
    VolumePrediction,
)
from brats_sdk._version import __version__
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.normalise import brain_mask
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.export.write import export_run
from brats_sdk.labels import classes_to_one_hot
from brats_sdk.models.survival import prepare_masks
from brats_sdk.predict.accel import AccelOptions, accelerate
from brats_sdk.predict.export_manifest import (
    EXPORT_FILE,
    SEGMENTER_ONNX,
    SURVIVAL_ONNX,
    read_manifest,
    sha256_of,
)
from brats_sdk.predict.onnx_networks import OnnxNetworks
from cli.main import cli
from tests.helpers import randomise_norms

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]
AGES = {1: 45.0, 2: 70.0}


@pytest.fixture(scope="module")
def cohort(module_tmp: Path) -> Path:
    return make_cohort(module_tmp / "cohort", SynthConfig(volumes=2, slices=12, size=64, seed=3))


@pytest.fixture(scope="module")
def run_dir(module_tmp: Path) -> Path:
    torch.manual_seed(0)
    run = module_tmp / "run"
    segmenter = Segmenter()
    randomise_norms(segmenter, seed=4)  # background features that are not zero: crops pad with them
    segmenter.save(run / "segmenter.pt", metadata={"epoch": 1})
    bins = SurvivalBins.brats().with_observed([100.0, 350.0, 600.0])
    SurvivalClassifier(SurvivalConfig(input_size=32), bins=bins, age_scaler=AgeScaler(30.0, 80.0)).save(run / "survival.pt")
    return run


@pytest.fixture(scope="module")
def export_dir(run_dir: Path, module_tmp: Path) -> Path:
    out = module_tmp / "export"
    export_run(run_dir, out)
    return out


def test_the_export_records_what_prediction_needs_and_its_parity(export_dir: Path) -> None:
    manifest = read_manifest(export_dir)
    assert manifest.sdk_version == __version__ and manifest.opset == 17 and manifest.precision == "fp32"
    assert manifest.image_channels == ("flair", "t1", "t1ce", "t2") and manifest.class_labels == (0, 1, 2, 4)
    assert manifest.bins is not None and manifest.bins.n_bins == 3
    assert manifest.age_scaler == AgeScaler(30.0, 80.0)
    assert manifest.survival is not None and manifest.segmenter.metadata == {"epoch": 1}
    for entry, name in ((manifest.segmenter, SEGMENTER_ONNX), (manifest.survival, SURVIVAL_ONNX)):
        assert entry.file == name and entry.sha256 == sha256_of(export_dir / name)
    parity = manifest.parity
    assert parity is not None and parity["volume_bins_identical"] is True
    assert isinstance(parity["label_agreement"], float) and parity["label_agreement"] >= 0.9999
    assert isinstance(parity["segmenter_max_logit_diff"], float) and parity["segmenter_max_logit_diff"] < 1e-3
    assert sorted(p.name for p in export_dir.iterdir()) == sorted([EXPORT_FILE, SEGMENTER_ONNX, SURVIVAL_ONNX])


def test_one_session_runs_two_brain_box_sizes_as_pytorch_does(export_dir: Path, run_dir: Path) -> None:
    nets = OnnxNetworks.load(export_dir, providers=["CPUExecutionProvider"])
    seg = Segmenter.from_checkpoint(run_dir / "segmenter.pt")
    plain = AccelOptions(device=torch.device("cpu"), memory_format=torch.contiguous_format, fold_batchnorm=False,
                         fuse_upsampling=False, fast_convolutions=False)
    crops = accelerate(seg, None, plain).crops
    rng = np.random.default_rng(0)
    for shape in ((2, 4, 64, 96), (3, 4, 128, 64)):
        x = rng.standard_normal(shape, dtype=np.float32)
        with torch.inference_mode():
            want = seg.unet(torch.from_numpy(x)).numpy()
        got = nets.segmenter_logits(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-3)
        with torch.inference_mode():
            want = crops(torch.from_numpy(x)).numpy()
        got = nets.segmenter_logits(x, background=True)
        np.testing.assert_allclose(got, want, atol=1e-3)
        assert np.abs(got - nets.segmenter_logits(x)).max() > 1e-2
    surv = SurvivalClassifier.from_checkpoint(run_dir / "survival.pt")
    for shape in ((2, 3, 40, 40), (1, 3, 64, 80)):
        masks = (rng.random(shape) > 0.7).astype(np.uint8)
        with torch.inference_mode():
            want = surv(prepare_masks(torch.from_numpy(masks), size=32), torch.full((shape[0], 1), 0.4)).numpy()
        np.testing.assert_allclose(nets.survival_logits(masks, 0.4), want, atol=1e-3)


def test_the_exports_survival_probabilities_are_predict_probas(export_dir: Path, run_dir: Path) -> None:
    # PyTorch's probabilities come from the one path (bin_probabilities, as predict_proba);
    # the export's from its graph's logits, its age scaled by the same AgeScaler formula.
    onnx_pred = CombinedPredictor.from_export(export_dir, providers=["CPUExecutionProvider"])
    survival = SurvivalClassifier.from_checkpoint(run_dir / "survival.pt")
    rng = np.random.default_rng(1)
    classes = np.zeros((5, 48, 48), dtype=np.uint8)
    for s in range(5):
        r, c = rng.integers(4, 28, size=2)
        classes[s, r : r + 16, c : c + 12] = rng.integers(1, 4, size=(16, 12))
    want = survival.predict_proba(classes_to_one_hot(classes), [61.5] * 5)
    got = onnx_pred.survival_probs(classes, 61.5)
    assert got.shape == want.shape == (5, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert not np.allclose(got, onnx_pred.survival_probs(classes, 31.0), atol=1e-7)  # the age is used


def test_the_export_predicts_a_folder_as_pytorch_does(export_dir: Path, run_dir: Path, cohort: Path, tmp_path: Path) -> None:
    onnx_pred = CombinedPredictor.from_export(export_dir)
    torch_pred = CombinedPredictor.from_run_dir(run_dir, device="cpu")
    assert onnx_pred.segmenter is None and onnx_pred.device.type == "cpu"
    assert onnx_pred.bins == torch_pred.bins
    got = list(onnx_pred.predict_source(H5SliceFolder(cohort), AGES))
    want = list(torch_pred.predict_source(H5SliceFolder(cohort), AGES))
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, VolumePrediction) and isinstance(w, VolumePrediction)
        assert g.status == w.status == "ok"
        brain = brain_mask(H5SliceFolder(cohort).load_volume(g.volume).image)
        assert (g.labels[brain] == w.labels[brain]).mean() >= 0.9999
        assert g.predicted_bin == w.predicted_bin and g.slice_indices == w.slice_indices
    ages = tmp_path / "ages.csv"
    ages.write_text("volume,age\n1,45\n2,70\n")
    res = CliRunner().invoke(cli, ["predict", str(cohort), "--model-dir", str(export_dir), "--age-csv", str(ages),
                                   "--out", str(tmp_path / "pred"), "--quiet"])
    assert res.exit_code == 0, res.output
    written = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert written["predictor"]["device"].startswith("onnxruntime:")
    assert [v["predicted_bin"] for v in written["volumes"]] == [w.predicted_bin for w in want if isinstance(w, VolumePrediction)]


def test_prediction_from_an_export_never_imports_torch(export_dir: Path, cohort: Path, tmp_path: Path) -> None:
    script = f"""
import sys
from pathlib import Path
import brats_sdk
from brats_sdk.data.sources import open_source
from brats_sdk.predict.batch import run_batch
predictor = brats_sdk.CombinedPredictor.from_export({str(export_dir)!r})
summary = run_batch(predictor, open_source({str(cohort)!r}, require_mask=False), Path({str(tmp_path / "out")!r}))
assert summary.predictions == 2, summary
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
from cli.main import cli
cli.main(["predict", {str(cohort)!r}, "--model-dir", {str(export_dir)!r}, "--out", {str(tmp_path / "cli_out")!r},
          "--quiet"], standalone_mode=False)
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
print("no torch")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no torch" in done.stdout
    assert (tmp_path / "out" / "predictions.csv").is_file()
    assert (tmp_path / "cli_out" / "predictions.csv").is_file()


def test_the_onnx_example_script_predicts_with_ages_and_without_torch(export_dir: Path, cohort: Path, tmp_path: Path) -> None:
    ages = tmp_path / "ages.csv"
    ages.write_text("volume,age\n" + "".join(f"{v},{a}\n" for v, a in AGES.items()))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "predict_with_onnx.py"), str(export_dir), str(cohort), str(out),
         "--age-csv", str(ages)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 volume(s)" in done.stdout and "torch imported: False" in done.stdout, done.stdout
    with (out / "predictions.csv").open() as f:
        got = {int(r["volume"]): float(r["age"]) for r in csv.DictReader(f)}
    assert got == AGES


def _segmenter_only_copy(export_dir: Path, dest: Path) -> Path:
    """A segmentation-only export beside ``export_dir`` (the segmenter file copied)."""
    dest.mkdir()
    shutil.copy(export_dir / SEGMENTER_ONNX, dest / SEGMENTER_ONNX)
    data = json.loads((export_dir / EXPORT_FILE).read_text())
    data.update(survival=None, bins=None, bin_ranges=None, age_scaling=None)
    (dest / EXPORT_FILE).write_text(json.dumps(data))
    return dest


def _predict(model_dir: Path, cohort: Path, out: Path) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["predict", str(cohort), "--model-dir", str(model_dir), "--out", str(out), "--quiet"])
    return res.exit_code, res.output


def test_bad_exports_are_one_line_errors(export_dir: Path, cohort: Path, tmp_path: Path) -> None:
    plain = _segmenter_only_copy(export_dir, tmp_path / "seg_only")
    pred = CombinedPredictor.from_export(plain).predict_volume(H5SliceFolder(cohort).load_volume(1).image, 50.0)
    assert pred.status == "no survival model"

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"no export\.json"):
        CombinedPredictor.from_export(empty)

    with (plain / SEGMENTER_ONNX).open("ab") as fh:
        fh.write(b"\0")
    code, output = _predict(plain, cohort, tmp_path / "p1")
    assert code == 1 and "SHA-256 does not match" in output and len(output.strip().splitlines()) == 1

    newer = _segmenter_only_copy(export_dir, tmp_path / "newer")
    data = json.loads((newer / EXPORT_FILE).read_text())
    data["sdk_version"] = "999.0.0"
    (newer / EXPORT_FILE).write_text(json.dumps(data))
    code, output = _predict(newer, cohort, tmp_path / "p2")
    assert code == 1 and "newer than this one" in output and len(output.strip().splitlines()) == 1


def test_a_failed_export_leaves_nothing(run_dir: Path, tmp_path: Path) -> None:
    seg_only = tmp_path / "seg_run"
    seg_only.mkdir()
    shutil.copy(run_dir / "segmenter.pt", seg_only / "segmenter.pt")
    no_data = tmp_path / "no_data"
    no_data.mkdir()
    out = tmp_path / "exports" / "bad"
    res = CliRunner().invoke(cli, ["export", str(seg_only), "--out", str(out), "--check-data", str(no_data), "--quiet"])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1, res.output
    assert list((tmp_path / "exports").iterdir()) == []
    (out).mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        export_run(seg_only, out)


def test_without_onnx_the_command_says_what_to_install(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # an import of onnx now fails as if it were absent
    res = CliRunner().invoke(cli, ["export", str(run_dir), "--out", str(tmp_path / "e")])
    assert res.exit_code == 1 and 'pip install "brats-sdk[onnx]"' in res.output
    assert not (tmp_path / "e").exists()
