"""Audit building blocks: intervals, baselines fitted on training patients only, overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brats_sdk.audit import (
    BaselineName,
    PatientFeatures,
    bootstrap_over_patients,
    fit_baseline,
    wilson_interval,
)
from brats_sdk.audit.scoring import PatientCounts, baseline_rows, network_row, training_volumes
from brats_sdk.data.splits import Split, SplitMode, split_by_patient, split_slices
from brats_sdk.errors import ConfigError, DataError

# --------------------------------------------------------------------------- intervals


def test_wilson_matches_a_hand_computation() -> None:
    # 7 of 10 at z = 1.96: p = 0.7, denominator 1 + z^2/n = 1.384146,
    # centre (0.7 + 0.192073) / 1.384146 = 0.644493,
    # half 1.96 * sqrt(0.021 + 0.009604) / 1.384146 = 0.247727.
    z = 1.959963984540054
    p, n = 0.7, 10
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = wilson_interval(7, 10) or (math.nan, math.nan)
    assert low == pytest.approx(centre - half, abs=1e-12)
    assert high == pytest.approx(centre + half, abs=1e-12)
    # The textbook values (e.g. statsmodels' proportion_confint(7, 10, method="wilson")).
    assert (round(low, 4), round(high, 4)) == (0.3968, 0.8922)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(0, 5) or (1.0, 0.0)
    assert low == 0.0 and 0.0 < high < 0.5
    low, high = wilson_interval(5, 5) or (1.0, 0.0)
    assert 0.5 < low < 1.0 and high == 1.0
    # Every interval holds its proportion, also where rounding would put an end inside it.
    for n in range(1, 60):
        for k in (0, n):
            lo, hi = wilson_interval(k, n) or (1.0, 0.0)
            assert lo <= k / n <= hi
    with pytest.raises(ConfigError):
        wilson_interval(6, 5)


def test_bootstrap_resamples_patients_not_slices() -> None:
    # Two patients of 100 slices, one all right and one all wrong: 200 slices would give a
    # narrow Wilson interval around 0.5; two patients know almost nothing.
    low, high = bootstrap_over_patients([(100, 100), (0, 100)], seed=1) or (0.5, 0.5)
    assert low == 0.0 and high == 1.0
    wl, wh = wilson_interval(100, 200) or (0.0, 1.0)
    assert wh - wl < 0.15
    assert bootstrap_over_patients([(3, 3), (5, 5)]) == (1.0, 1.0)
    assert bootstrap_over_patients([]) is None
    assert bootstrap_over_patients([(1, 4), (2, 4)], seed=3) == bootstrap_over_patients([(1, 4), (2, 4)], seed=3)


# --------------------------------------------------------------------------- baselines


def _patients(ages: np.ndarray, bins: np.ndarray, start: int) -> list[PatientFeatures]:
    return [PatientFeatures(start + i, float(a), int(b), (1.0, 2.0, 3.0)) for i, (a, b) in enumerate(zip(ages, bins, strict=True))]


def test_baselines_learn_nothing_the_training_patients_do_not_show() -> None:
    rng = np.random.default_rng(0)
    # Training patients: age says nothing about the bin.
    train = _patients(rng.uniform(20, 85, 150), rng.integers(0, 3, 150), 1)
    # Test patients: a test-only signal, the bin fixed by age.
    test_ages = rng.uniform(20, 85, 90)
    test_bins = np.digitize(test_ages, [42.0, 63.0])
    test = _patients(test_ages, test_bins, 1000)
    for name in (BaselineName.AGE_ONLY, BaselineName.AGE_VOLUMES):
        acc = float(np.mean(fit_baseline(name, train).predict(test) == test_bins))
        assert acc < 0.6, f"{name}: {acc} on a signal only the test patients carry"
        # The signal is learnable: fitted on the test patients it is found.
        own = float(np.mean(fit_baseline(name, test).predict(test) == test_bins))
        assert own > 0.85
    rows = baseline_rows(train, test, bins="quantile", n_bins=3, cutoffs=None)
    assert [r.name for r in rows] == ["majority", "age only", "age + volumes"]
    assert all(r.n_train_patients == 150 and r.test_patients_in_training == 0 and r.patient.n == 90 for r in rows)


def test_majority_is_the_training_patients_majority() -> None:
    train = _patients(np.arange(6.0), np.array([2, 2, 2, 0, 1, 0]), 1)
    test = _patients(np.arange(4.0), np.array([0, 0, 0, 0]), 10)
    assert fit_baseline("majority", train).predict(test).tolist() == [2, 2, 2, 2]
    # One training bin only: the logistic regression predicts it.
    one = _patients(np.arange(5.0), np.full(5, 1), 1)
    assert fit_baseline("age only", one).predict(test).tolist() == [1, 1, 1, 1]
    with pytest.raises(DataError, match="no training patient"):
        fit_baseline("age only", [])
    with pytest.raises(DataError, match="tumour volumes"):
        fit_baseline("age + volumes", [PatientFeatures(1, 50.0, 0), PatientFeatures(2, 60.0, 1)])
    with pytest.raises(ConfigError, match="supported"):
        fit_baseline("age and more", train)


# --------------------------------------------------------------------------- overlap


def _patient(volume: int, true_bin: int = 0, vote: int | None = 0) -> PatientCounts:
    return PatientCounts(volume, true_bin, slices=4, nonempty=2, correct_slices=3, correct_nonempty=2, vote=vote)


def test_patient_split_has_no_overlap() -> None:
    split = split_by_patient(list(range(1, 31)), strata={v: v % 3 for v in range(1, 31)}, seed=4)
    row = network_row(
        "patient split", "quantile", [_patient(v) for v in split.test], train_volumes=training_volumes(split),
        n_bins=3, cutoffs=(300.0, 450.0),
    )
    assert row.test_patients_in_training == 0
    assert row.patient.n == len(split.test) and row.n_train_patients == len(split.train)


def test_slice_split_overlap_is_counted() -> None:
    # Hand-made: training slices of volumes 1-3, test slices of 2-5; volume 5 has only
    # empty test slices (no vote), so the voted test patients are 2, 3, 4: two in training.
    split = Split(
        SplitMode.SLICE, 0,
        train_slices=((1, 0), (2, 0), (3, 0)), val_slices=((1, 1),), test_slices=((2, 1), (3, 1), (4, 0), (5, 0)),
    )
    patients = [_patient(2), _patient(3), _patient(4), _patient(5, vote=None)]
    row = network_row("slice split", "quantile", patients, train_volumes=training_volumes(split), n_bins=3, cutoffs=(1.0, 2.0))
    assert row.test_patients_in_training == 2
    assert row.patient.n == 3
    assert row.per_slice is not None and row.per_slice.n == 16 and row.per_slice.value == pytest.approx(12 / 16)
    # A real slice split of 12 patients x 20 slices: nearly every test patient is a training patient.
    keys = [(v, s) for v in range(1, 13) for s in range(20)]
    real = split_slices(keys, seed=2)
    test_vols = sorted({v for v, _ in real.test_slices})
    counted = network_row("slice split", "quantile", [_patient(v) for v in test_vols],
                          train_volumes=training_volumes(real), n_bins=3, cutoffs=(1.0, 2.0))
    expected = len(set(test_vols) & {v for v, _ in real.train_slices})
    assert counted.test_patients_in_training == expected and expected >= len(test_vols) - 1 > 0
