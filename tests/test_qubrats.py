"""The QU-BraTS metric against a hand computation and the challenge script's loop, and in `brats report`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner

from brats_sdk.errors import DataError
from brats_sdk.metrics.qubrats import (
    QUBRATS_EPS,
    qubrats_region,
    qubrats_thresholds,
    qubrats_volume,
)
from cli.main import cli

EPS = QUBRATS_EPS


def test_hand_computed_case() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    pred = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0], bool)
    unc = np.array([0, 50, 100, 100, 100, 0, 0, 0, 50, 0], np.uint8)
    brain = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    c = qubrats_region(truth, pred, unc, brain, num_points=2)
    assert c.thresholds == (100.0, 50.0, 0.0)
    # tau 100 keeps all: Dice 2*2/(3+4); tau 50 drops voxels 2-4: 2*2/(2+2); tau 0 keeps 0,5,6,7,9: 2*1/(1+1).
    assert c.dice == pytest.approx((4 / 7, 1.0, 1.0))
    # TP in the brain: voxels 0, 1 (1 is filtered at tau 0); TN in the brain: 5-8 (8 filtered at tau 0).
    assert c.ftp_ratio == pytest.approx((0.0, 0.0, 1 / (2 + EPS)))
    assert c.ftn_ratio == pytest.approx((0.0, 0.0, 1 / (4 + EPS)))
    assert c.dice_auc == pytest.approx((50 * (1 + 4 / 7) / 2 + 50 * 1.0) / 100)
    assert c.ftp_ratio_auc == pytest.approx(0.125, rel=1e-6)
    assert c.ftn_ratio_auc == pytest.approx(0.0625, rel=1e-6)
    assert c.score == pytest.approx((c.dice_auc + 0.875 + 0.9375) / 3, rel=1e-6)


def test_empty_regions() -> None:
    truth = np.zeros((2, 3, 3), np.uint8)
    truth[0, 1, 1] = 2  # edema only: TC and ET are empty in the truth
    pred = truth.copy()
    pred[1, 0, 0] = 4  # a false ET voxel, marked 60 uncertain
    unc = np.zeros((2, 3, 3), np.uint8)
    unc[1, 0, 0] = 60
    brain = np.ones((2, 3, 3), bool)
    curves = qubrats_volume(truth, pred, {"WT": np.zeros_like(unc), "TC": unc, "ET": unc}, brain, num_points=4)
    wt, tc, et = curves["WT"], curves["TC"], curves["ET"]
    assert wt.dice[0] == pytest.approx(2 / 3) and wt.score == pytest.approx((2 / 3 + 1 + 1) / 3)
    # ET: truth empty; the false voxel is kept at tau 100 and 75 (Dice 0), filtered below 60 (both empty: Dice 1).
    assert et.dice == (0.0, 0.0, 1.0, 1.0, 1.0)
    assert et.ftp_ratio == (0.0,) * 5  # no TP at all: 0 / eps
    assert et.dice_auc == pytest.approx((25 * 0 + 25 * 0.5 + 50 * 1.0) / 100)
    assert tc.dice == et.dice
    nothing = qubrats_volume(np.zeros_like(truth), np.zeros_like(truth), {"ET": unc}, brain)["ET"]
    # Dice 1 throughout; the one TN voxel of 18 marked 60 is filtered below 60: FTN ratio 1/18
    # on thresholds 0..57.5, rising from 0 between 60 and 57.5.
    assert set(nothing.dice) == {1.0}
    assert nothing.ftn_ratio_auc == pytest.approx((57.5 + 2.5 / 2) / 18 / 100, rel=1e-6)
    assert nothing.score == pytest.approx((3 - nothing.ftn_ratio_auc) / 3)
    with pytest.raises(DataError, match="shape"):
        qubrats_volume(truth, pred, {"ET": unc[:1]}, brain)


def _script_loop(gt: npt.NDArray[np.float64], pr: npt.NDArray[np.float64], unc: npt.NDArray[np.float64],
                 bm: npt.NDArray[np.float64], thresholds: npt.NDArray[np.float64]) -> tuple[list[float], list[float], list[float]]:
    """The challenge script's per-threshold masking, in float32 as it computes."""
    dice, ftp, ftn = [], [], []
    gt, pr, bm = gt.astype("float32"), pr.astype("float32"), bm.astype("float32")
    for th in thresholds:
        keep = np.ones_like(unc, dtype="float32")
        keep[unc > th] = 0.0
        g, p = gt * keep, pr * keep
        inter, union = np.sum(p * g), np.sum(p) + np.sum(g)
        dice.append(1.0 if inter == 0 and union == 0 else float(2 * inter / union))
        tp = pr * gt * bm
        tn = (1 - pr) * (1 - gt) * bm
        ftp.append(float((tp.sum() - (tp * keep).sum()) / (tp.sum() + EPS)))
        ftn.append(float((tn.sum() - (tn * keep).sum()) / (tn.sum() + EPS)))
    return dice, ftp, ftn


def test_matches_the_script_loop_on_random_maps() -> None:
    rng = np.random.default_rng(0)
    gt = rng.random((6, 20, 20)) < 0.3
    pr = np.where(rng.random(gt.shape) < 0.2, ~gt, gt)
    unc = rng.integers(0, 101, gt.shape).astype(np.float64)
    bm = rng.random(gt.shape) < 0.9
    c = qubrats_region(gt, pr, unc, bm)
    dice, ftp, ftn = _script_loop(gt, pr, unc, bm, qubrats_thresholds())
    np.testing.assert_allclose(c.dice, dice, rtol=1e-6)
    np.testing.assert_allclose(c.ftp_ratio, ftp, rtol=1e-6)
    np.testing.assert_allclose(c.ftn_ratio, ftn, rtol=1e-6)
    assert len(c.thresholds) == 41 and c.thresholds[0] == 100.0 and c.thresholds[-1] == 0.0


@pytest.fixture(scope="module")
def predicted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A synthetic cohort, a segmenter, and two prediction folders of it: flips with uncertainty, and plain."""
    import torch

    from brats_sdk import Segmenter
    from brats_sdk.data.synth import SynthConfig, make_cohort

    root = tmp_path_factory.mktemp("qubrats")
    data = make_cohort(root / "data", SynthConfig(volumes=2, slices=8, size=48, seed=5))
    torch.manual_seed(2)
    seg = root / "segmenter.pt"
    Segmenter().save(seg)
    base = ["predict", str(data), "--segmenter", str(seg), "--device", "cpu", "--quiet", "--save-masks"]
    flips, plain = root / "flips", root / "plain"
    res = CliRunner().invoke(cli, [*base, "--out", str(flips), "--tta", "flips", "--save-uncertainty"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, [*base, "--out", str(plain)])
    assert res.exit_code == 0, res.output
    return data, flips, plain


@pytest.mark.slow
def test_report_scores_uncertainty_and_compares_folders(predicted: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, flips, plain = predicted
    out = tmp_path / "report"
    res = CliRunner().invoke(cli, ["report", str(flips), "--out", str(out), "--ground-truth", str(data), "--compare",
                                   str(plain), "--viewer-volumes", "0", "--max-figure-volumes", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    unc = m["uncertainty"]
    assert set(unc["volumes"]) == {"1", "2"} and unc["problems"] == []
    for region in ("WT", "TC", "ET"):
        per = [unc["volumes"][v][region] for v in ("1", "2")]
        assert set(per[0]) == {"dice_auc", "ftp_ratio_auc", "ftn_ratio_auc", "score"}
        assert unc["regions"][region]["score"] == pytest.approx(np.mean([p["score"] for p in per]))
        assert 0.0 <= unc["regions"][region]["score"] <= 1.0
    assert (out / "figures" / "qubrats_curves.png").is_file()
    comp = m["comparison"]
    assert comp["volumes"] == [1, 2]
    mine = m["segmentation"]["regions"]["WT"]["dice"]["mean"]
    assert comp["dice_mean"]["WT"]["this"] == pytest.approx(mine)
    assert any(h["name"].startswith("QU-BraTS score WT") for h in m["headline"])


@pytest.mark.slow
def test_wrong_shape_maps_are_reported_per_volume(predicted: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import shutil

    data, flips, _ = predicted
    bad = tmp_path / "bad"
    shutil.copytree(flips, bad)
    with h5py.File(bad / "masks" / "volume_2_pred.h5", "a") as f:
        del f["unc_core"]
        f.create_dataset("unc_core", data=np.zeros((3, 4, 4), np.uint8))
    out = tmp_path / "report"
    # Once as a subprocess: the installed entry point's behaviour end to end.
    proc = subprocess.run([sys.executable, "-m", "cli", "report", str(bad), "--out", str(out), "--ground-truth", str(data),
                           "--viewer-volumes", "0", "--max-figure-volumes", "0", "--quiet"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "volume 2: uncertainty maps not scored" in proc.stdout
    unc = json.loads((out / "metrics.json").read_text())["uncertainty"]
    assert set(unc["volumes"]) == {"1"}
    assert unc["problems"][0]["volume"] == 2 and "shape" in unc["problems"][0]["reason"]
