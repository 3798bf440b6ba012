"""Shared, session-scoped fixtures: small synthetic cohorts written once per test run.

Each cohort fixture returns the data folder that :func:`make_cohort` writes
(``ROOT/BraTS2020_training_data/content/data``): it holds the h5 slices and, beside
them, ``survival_info.csv``, ``meta_data.csv`` and ``name_mapping.csv``. Treat the
folders as read-only; tests that write put their output under ``tmp_path``.

Module fixtures that train write their runs under :func:`module_tmp`, which is removed
when the module's tests pass, as ``tmp_path`` is (``tmp_path_retention_policy``): a
training run holds hundreds of MB of checkpoints.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from brats_sdk.data.synth import SynthConfig, make_cohort

SHARED = Path(__file__).resolve().parents[2] / "shared"
"""``../shared`` beside the repository: real data for development and CI, never shipped."""

REAL_LABELLED = SHARED / "data" / "real-labelled"
"""14 real labelled BraTS 2018 cases (NIfTI), one folder each."""

REAL_CLINICAL = SHARED / "data" / "real-clinical" / "survival_info.csv"
"""The real BraTS 2020 survival table."""

TINY = SynthConfig(volumes=10, slices=16, size=48, seed=0)
"""10 patients x 16 slices of 48 x 48: enough for a patient split with survival bins."""

SMALL = SynthConfig(volumes=4, slices=24, size=64, seed=0)
"""4 patients x 24 slices of 64 x 64: big enough for the segmenter to learn something."""


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data folder of the :data:`TINY` synthetic cohort (160 slices)."""
    return make_cohort(tmp_path_factory.mktemp("tiny_cohort"), TINY)


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data folder of the :data:`SMALL` synthetic cohort (96 slices)."""
    return make_cohort(tmp_path_factory.mktemp("small_cohort"), SMALL)


@pytest.fixture(scope="module")
def module_tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for one test module, removed at its end unless one of its tests failed."""
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def real_labelled() -> Path:
    """The folder of real labelled cases; the test skips when ``../shared`` is absent."""
    if not REAL_LABELLED.is_dir() or not any(REAL_LABELLED.iterdir()):
        pytest.skip("../shared/data/real-labelled is absent")
    return REAL_LABELLED
