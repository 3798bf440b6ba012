"""Tests of brats_sdk.metrics against independent brute-force computations.

The brute-force HD95 below uses only numpy: surface voxels are listed explicitly
(a voxel with a face neighbour outside the mask, the array border counting as
outside) and every pairwise distance is computed. It implements the SDK's
definition: max of the two directed 95th percentiles (numpy linear interpolation).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
import torch

from brats_sdk.constants import HD95_EMPTY_PENALTY
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.metrics import (
    RegionScores,
    SegmentationAccumulator,
    brats_challenge_accuracy,
    channel_dice,
    dice,
    hd95,
    majority_vote,
    pixel_confusion,
    region_mask,
    score_volume,
    sensitivity,
    specificity,
    surface_distances,
    survival_scores,
)

BoolArray = npt.NDArray[np.bool_]


# ----------------------------------------------------------------- brute force
def brute_surface_points(mask: BoolArray, spacing: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Physical coordinates of voxels with at least one face neighbour outside the mask."""
    padded = np.pad(mask, 1, constant_values=False)
    points: list[tuple[int, ...]] = []
    for idx in zip(*np.nonzero(mask), strict=True):
        centre = tuple(int(i) + 1 for i in idx)
        for axis in range(mask.ndim):
            for step in (-1, 1):
                nb = list(centre)
                nb[axis] += step
                if not padded[tuple(nb)]:
                    points.append(tuple(int(i) for i in idx))
                    break
            else:
                continue
            break
    return np.asarray(np.array(points, dtype=np.float64) * np.array(spacing), dtype=np.float64)


def brute_directed(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    diff = a[:, None, :] - b[None, :, :]
    return np.asarray(np.sqrt((diff**2).sum(axis=-1)).min(axis=1), dtype=np.float64)


def brute_hd95(
    pred: BoolArray, truth: BoolArray, spacing: tuple[float, ...], *, pooled: bool = True
) -> float:
    """Independent HD95: pooled (MedPy/nnU-Net, the default) or max of the directed P95s."""
    a = brute_surface_points(pred, spacing)
    b = brute_surface_points(truth, spacing)
    d_ab, d_ba = brute_directed(a, b), brute_directed(b, a)
    if pooled:
        return float(np.percentile(np.concatenate([d_ab, d_ba]), 95))
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def brute_dice(pred: BoolArray, truth: BoolArray) -> float:
    inter = sum(1 for x, y in zip(pred.ravel(), truth.ravel(), strict=True) if x and y)
    return 2 * inter / (int(pred.sum()) + int(truth.sum()))


def cube(shape: tuple[int, int, int], corner: tuple[int, int, int], size: int) -> BoolArray:
    m = np.zeros(shape, dtype=bool)
    x, y, z = corner
    m[x : x + size, y : y + size, z : z + size] = True
    return m


def ball(
    shape: tuple[int, int, int], centre: tuple[float, float, float], radius: float
) -> BoolArray:
    grid = np.indices(shape, dtype=np.float64)
    d2 = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
    return np.asarray(d2 <= radius**2, dtype=bool)


# ----------------------------------------------------------------- Dice / HD95
def test_cubes_ten_apart_analytic_and_brute() -> None:
    a = cube((20, 8, 8), (0, 2, 2), 4)
    b = cube((20, 8, 8), (10, 2, 2), 4)
    # Surface distances A->B are 7 (16 voxels), 8 (12), 9 (12), 10 (16); P95 of 56 sorted
    # values sits at index 52.25, inside the run of 10s. Same for B->A.
    assert hd95(a, b) == pytest.approx(10.0)
    assert hd95(a, b) == pytest.approx(brute_hd95(a, b, (1.0, 1.0, 1.0)))
    assert hd95(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(20.0)
    assert hd95(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(brute_hd95(a, b, (2.0, 1.0, 1.0)))
    assert hd95(a, b, spacing=(1.0, 3.0, 1.0)) == pytest.approx(10.0)
    d_ab, d_ba = surface_distances(a, b)
    assert sorted(d_ab.tolist()) == [7.0] * 16 + [8.0] * 12 + [9.0] * 12 + [10.0] * 16
    assert sorted(d_ba.tolist()) == sorted(d_ab.tolist())
    assert dice(a, b) == 0.0


def test_single_voxels_hand_derived() -> None:
    a = np.zeros((6, 7, 3), dtype=bool)
    b = np.zeros_like(a)
    a[1, 1, 1] = True
    b[4, 5, 1] = True
    assert hd95(a, b) == pytest.approx(5.0)
    assert hd95(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(math.sqrt(52.0))


def test_identical_masks() -> None:
    m = ball((24, 24, 24), (12, 11, 12.5), 7)
    assert hd95(m, m) == 0.0
    assert dice(m, m) == 1.0
    assert sensitivity(m, m) == 1.0
    assert specificity(m, m) == 1.0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.5, 0.7, 3.0)])
def test_sphere_vs_shifted_sphere_matches_brute_force(spacing: tuple[float, float, float]) -> None:
    a = ball((32, 30, 28), (14, 15, 13), 7.5)
    b = ball((32, 30, 28), (17.5, 13, 14), 6.2)
    assert hd95(a, b, spacing) == pytest.approx(brute_hd95(a, b, spacing))
    assert hd95(b, a, spacing) == pytest.approx(hd95(a, b, spacing))
    assert dice(a, b) == pytest.approx(brute_dice(a, b))


def test_anisotropic_spacing_doubles_axis0_distances() -> None:
    a = ball((40, 20, 20), (12, 10, 10), 4)
    b = ball((40, 20, 20), (25, 10, 10), 4)  # displaced along axis 0 only
    iso, aniso = hd95(a, b), hd95(a, b, (2.0, 1.0, 1.0))
    assert aniso == pytest.approx(brute_hd95(a, b, (2.0, 1.0, 1.0)))
    assert iso < aniso <= 2 * iso + 1e-9


def test_irregular_masks_touching_border_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.random((12, 14, 10)) < 0.3
        b = rng.random((12, 14, 10)) < 0.2
        a[0, :, :] = True  # touches the border: border voxels are surface
        for spacing in ((1.0, 1.0, 1.0), (1.0, 2.0, 0.5)):
            assert hd95(a, b, spacing) == pytest.approx(brute_hd95(a, b, spacing))
        assert dice(a, b) == pytest.approx(brute_dice(a, b))


def test_hd95_pooled_by_default_and_max_directed_on_request() -> None:
    # Truth has a far outlier island; pred is only the big cube.
    truth = cube((40, 12, 12), (0, 2, 2), 8)
    truth[35:38, 5:8, 5:8] = True  # 26 surface voxels: >5% of truth, <5% pooled
    pred = cube((40, 12, 12), (0, 2, 2), 8)
    d_pt, d_tp = surface_distances(pred, truth)
    pooled = float(np.percentile(np.concatenate([d_pt, d_tp]), 95))
    directed_max = float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))
    assert pooled < directed_max
    assert hd95(pred, truth) == pytest.approx(pooled)
    assert hd95(pred, truth) == pytest.approx(brute_hd95(pred, truth, (1.0, 1.0, 1.0)))
    assert hd95(pred, truth, method="max_directed") == pytest.approx(directed_max)
    assert hd95(pred, truth, method="max_directed") == pytest.approx(
        brute_hd95(pred, truth, (1.0, 1.0, 1.0), pooled=False)
    )


def test_empty_rules() -> None:
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = cube((5, 5, 5), (1, 1, 1), 2)
    assert dice(empty, empty) == 1.0
    assert hd95(empty, empty) == 0.0
    assert sensitivity(empty, empty) == 1.0
    assert specificity(empty, empty) == 1.0
    # Present in truth, not predicted.
    assert dice(empty, full) == 0.0
    assert hd95(empty, full) == HD95_EMPTY_PENALTY
    assert sensitivity(empty, full) == 0.0
    assert specificity(empty, full) == 1.0
    # Empty in truth, predicted.
    assert dice(full, empty) == 0.0
    assert hd95(full, empty) == HD95_EMPTY_PENALTY
    assert sensitivity(full, empty) == 0.0
    assert specificity(full, empty) == pytest.approx(1 - 8 / 125)
    # No negatives at all in the truth.
    everything = np.ones((3, 3, 3), dtype=bool)
    assert specificity(everything, everything) == 1.0
    assert specificity(np.zeros_like(everything), everything) == 0.0


def test_sensitivity_specificity_counts() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    pred = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0], dtype=bool)
    assert sensitivity(pred, truth) == pytest.approx(3 / 4)
    assert specificity(pred, truth) == pytest.approx(4 / 6)


def test_bad_inputs() -> None:
    a = np.zeros((4, 4, 4), dtype=bool)
    with pytest.raises(DataError, match="shape"):
        dice(a, np.zeros((4, 4, 5), dtype=bool))
    with pytest.raises(DataError, match="shape"):
        hd95(a, np.zeros((4, 4), dtype=bool))
    with pytest.raises(ConfigError, match="spacing"):
        hd95(a, a, spacing=(1.0, 1.0))
    with pytest.raises(ConfigError, match="spacing"):
        hd95(a, a, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ConfigError, match="WT, TC, ET"):
        region_mask(a, "XX")


# ----------------------------------------------------------------- score_volume
def test_region_masks() -> None:
    labels = np.array([0, 1, 2, 4])
    assert region_mask(labels, "WT").tolist() == [False, True, True, True]
    assert region_mask(labels, "TC").tolist() == [False, True, False, True]
    assert region_mask(labels, "ET").tolist() == [False, False, False, True]


def test_score_volume_hand_example_and_torch_input() -> None:
    truth = np.zeros((10, 10, 10), dtype=np.uint8)
    truth[2:6, 2:6, 2:6] = 2
    truth[3:5, 3:5, 3:5] = 1
    pred = truth.copy()
    pred[pred == 1] = 2  # core missed entirely, no ET anywhere
    scores = score_volume(torch.from_numpy(pred), torch.from_numpy(truth))
    assert set(scores) == {"WT", "TC", "ET"}
    assert scores["WT"] == RegionScores(1.0, 0.0, 1.0, 1.0, truth_empty=False, pred_empty=False)
    assert scores["TC"].dice == 0.0 and scores["TC"].hd95 == HD95_EMPTY_PENALTY
    assert scores["TC"].pred_empty and not scores["TC"].truth_empty
    assert scores["ET"] == RegionScores(1.0, 0.0, 1.0, 1.0, truth_empty=True, pred_empty=True)


def test_score_volume_matches_primitives() -> None:
    rng = np.random.default_rng(1)
    values = np.array([0, 1, 2, 4], dtype=np.uint8)
    truth = values[rng.integers(0, 4, (12, 10, 8))]
    pred = values[rng.integers(0, 4, (12, 10, 8))]
    scores = score_volume(pred, truth, spacing=(1.0, 1.0, 2.0))
    for region, s in scores.items():
        p, t = region_mask(pred, region), region_mask(truth, region)
        assert s.dice == pytest.approx(brute_dice(p, t))
        assert s.hd95 == pytest.approx(brute_hd95(p, t, (1.0, 1.0, 2.0)))


def test_score_volume_validation() -> None:
    good = np.zeros((4, 4, 4), dtype=np.uint8)
    bad = good.copy()
    bad[0, 0, 0] = 3
    with pytest.raises(DataError, match=r"pred_labels holds values \[3\]"):
        score_volume(bad, good)
    with pytest.raises(DataError, match="truth_labels"):
        score_volume(good, bad)
    with pytest.raises(DataError, match="shape"):
        score_volume(good, np.zeros((4, 4, 5), dtype=np.uint8))


# ----------------------------------------------------------------- channel Dice, confusion
def test_pixel_confusion_hand_example() -> None:
    truth = np.array([[0, 0, 1], [2, 2, 3]])
    pred = np.array([[0, 1, 1], [2, 3, 3]])
    expected = np.array(
        [
            [1, 1, 0, 0],
            [0, 1, 0, 0],
            [0, 0, 1, 1],
            [0, 0, 0, 1],
        ]
    )
    cm = pixel_confusion(pred, truth)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)


def test_channel_dice_hand_example_pooled_over_slices() -> None:
    truth = np.array([[[1, 1, 0], [2, 0, 0]], [[1, 0, 0], [2, 2, 0]]])
    pred = np.array([[[1, 0, 0], [2, 2, 0]], [[1, 1, 1], [0, 2, 0]]])
    d = channel_dice(pred, truth)
    # NCR: |T|=3, |P|=4, |T&P|=2 -> 4/7. ED: |T|=3, |P|=3, |T&P|=2 -> 4/6. ET: empty in both -> 1.
    assert d["NCR"] == pytest.approx(4 / 7)
    assert d["ED"] == pytest.approx(4 / 6)
    assert d["ET"] == 1.0
    only_pred_et = pred.copy()
    only_pred_et[0, 0, 2] = 3
    assert channel_dice(only_pred_et, truth)["ET"] == 0.0


def test_channel_inputs_validated() -> None:
    a = np.zeros((2, 2), dtype=np.int64)
    with pytest.raises(DataError, match=r"0\.\.3"):
        channel_dice(a + 4, a)
    with pytest.raises(DataError, match="integer"):
        pixel_confusion(a.astype(np.float32), a)
    with pytest.raises(DataError, match="shape"):
        pixel_confusion(a, np.zeros((2, 3), dtype=np.int64))


def test_accumulator_equals_one_shot() -> None:
    rng = np.random.default_rng(2)
    preds = [rng.integers(0, 4, (n, 8, 8)) for n in (1, 3, 5)]
    truths = [rng.integers(0, 3, (n, 8, 8)) for n in (1, 3, 5)]  # no ET in truth
    acc = SegmentationAccumulator()
    assert acc.result().channel_dice == {"NCR": 1.0, "ED": 1.0, "ET": 1.0}
    for p, t in zip(preds, truths, strict=True):
        acc.update(torch.from_numpy(p), t)
    res = acc.result()
    all_p, all_t = np.concatenate(preds), np.concatenate(truths)
    np.testing.assert_array_equal(res.confusion, pixel_confusion(all_p, all_t))
    assert res.channel_dice == channel_dice(all_p, all_t)
    assert res.channel_dice["ET"] == 0.0
    assert res.n_pixels == all_p.size
    assert res.mean_dice == pytest.approx(np.mean(list(res.channel_dice.values())))
    with pytest.raises(DataError):
        acc.update(np.full((2, 2), 9), np.zeros((2, 2), dtype=np.int64))
    np.testing.assert_array_equal(acc.result().confusion, res.confusion)
    acc.reset()
    assert acc.result().n_pixels == 0


# ----------------------------------------------------------------- survival
def test_majority_vote_and_tie_rule() -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    assert majority_vote(probs) == (0, (2, 1, 0))
    # Bins 0 and 2 tie on two votes each; bin 2 has the larger summed probability.
    tie = np.array([[0.5, 0.1, 0.4], [0.6, 0.0, 0.4], [0.3, 0.1, 0.6], [0.05, 0.0, 0.95]])
    assert majority_vote(tie) == (2, (2, 0, 2))
    # Exact tie on votes and sums: the lower bin index wins.
    assert majority_vote(np.array([[0.9, 0.1], [0.1, 0.9]])) == (0, (1, 1))
    assert majority_vote(torch.tensor([[0.1, 0.9]])) == (1, (0, 1))
    with pytest.raises(DataError, match="no slices"):
        majority_vote(np.zeros((0, 3)))
    with pytest.raises(DataError, match="shape"):
        majority_vote(np.zeros(3))


def test_survival_scores_per_bin_with_missing_bin() -> None:
    true = [0, 0, 0, 2, 2]
    pred = [0, 1, 0, 2, 0]
    s = survival_scores(true, pred, None, n_bins=3)
    assert s.accuracy == pytest.approx(3 / 5)
    assert s.n == 5
    assert s.per_bin_n == (3, 0, 2)
    acc0, acc1, acc2 = s.per_bin_accuracy
    assert acc0 == pytest.approx(2 / 3) and acc1 is None and acc2 == pytest.approx(1 / 2)
    assert s.confusion == [[2, 1, 0], [0, 0, 0], [1, 0, 1]]
    assert s.auc == (None, None, None) and s.roc == (None, None, None)
    assert s.macro_auc is None


def test_survival_auc_separable_and_random() -> None:
    true = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[true] * 0.8 + 0.1
    s = survival_scores(true, probs.argmax(axis=1), probs, n_bins=3)
    assert s.auc == (1.0, 1.0, 1.0)
    roc = s.roc[0]
    assert roc is not None and roc[0][0] == 0.0 and roc[1][-1] == 1.0
    # Random scores: AUC equals the brute-force Mann-Whitney statistic and sits near 0.5.
    rng = np.random.default_rng(3)
    true_r = rng.integers(0, 3, 400)
    probs_r = rng.dirichlet(np.ones(3), 400)
    s_r = survival_scores(true_r, probs_r.argmax(axis=1), probs_r, n_bins=3)
    for b in range(3):
        pos, neg = probs_r[true_r == b, b], probs_r[true_r != b, b]
        mw = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
            pos.size * neg.size
        )
        auc = s_r.auc[b]
        assert auc is not None and auc == pytest.approx(mw) and 0.35 < auc < 0.65
    # A bin present in every sample (or none) has no AUC.
    s_one = survival_scores([1, 1], [1, 0], [[0.2, 0.8], [0.6, 0.4]], n_bins=2)
    assert s_one.auc == (None, None)


def test_survival_scores_validation() -> None:
    with pytest.raises(DataError, match="no samples"):
        survival_scores([], [], None, n_bins=3)
    with pytest.raises(DataError, match="samples"):
        survival_scores([0, 1], [0], None, n_bins=3)
    with pytest.raises(DataError, match=r"0\.\.2"):
        survival_scores([0, 3], [0, 1], None, n_bins=3)
    with pytest.raises(DataError, match="probs"):
        survival_scores([0, 1], [0, 1], np.zeros((2, 2)), n_bins=3)
    with pytest.raises(ConfigError):
        survival_scores([0], [0], None, n_bins=1)


def test_brats_challenge_accuracy_gtr_only() -> None:
    true = [0, 1, 2, 0, 1]
    pred = [0, 0, 2, 1, 1]
    resection = ["GTR", "STR", " gtr ", "NA", "GTR"]
    assert brats_challenge_accuracy(true, pred, resection) == (1.0, 3)
    mixed: list[str] = ["GTR", "GTR", "STR", float("nan"), "NA"]  # type: ignore[list-item]  # pandas NaN
    assert brats_challenge_accuracy(true, pred, mixed) == (0.5, 2)
    assert brats_challenge_accuracy(true, pred, ["STR"] * 5) == (None, 0)
    with pytest.raises(DataError, match="lengths"):
        brats_challenge_accuracy(true, pred, ["GTR"])
