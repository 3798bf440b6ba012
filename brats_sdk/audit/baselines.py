"""The baselines every survival accuracy needs: majority class, age alone, age and volumes.

Each baseline is fitted on training patients only and predicts one bin per patient.
``age only`` and ``age + volumes`` are scikit-learn logistic regressions (multinomial,
L2, features standardised on the training patients); ``age + volumes`` takes age and the
NCR, ED and ET volumes in mL of the ground-truth masks: six numbers' worth of
information, against which a ResNet-50 on the masks has to show what it adds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brats_sdk.errors import DataError
from brats_sdk.options import OptionEnum

__all__ = ["BaselineName", "FittedBaseline", "PatientFeatures", "fit_baseline", "predict_baseline"]

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]


class Classifier(Protocol):
    """A fitted scikit-learn classifier."""

    def predict(self, x: npt.NDArray[np.float64]) -> npt.ArrayLike: ...


class BaselineName(OptionEnum):
    """The three baselines, named as in ``audit.json``."""

    MAJORITY = "majority"
    AGE_ONLY = "age only"
    AGE_VOLUMES = "age + volumes"


@dataclass(frozen=True, slots=True)
class PatientFeatures:
    """What a baseline may know of one patient.

    Attributes:
        volume: Volume number.
        age: Age in years.
        bin: True survival bin.
        volumes_ml: NCR, ED and ET volumes in mL of the ground-truth mask, or None.
    """

    volume: int
    age: float
    bin: int
    volumes_ml: tuple[float, float, float] | None = None


@dataclass(frozen=True, slots=True)
class FittedBaseline:
    """A baseline fitted on training patients.

    Attributes:
        name: Which baseline.
        n_train: Training patients it was fitted on.
        constant: The bin predicted for everyone (majority, or a logistic regression whose
            training patients all share one bin), else None.
        model: The fitted scikit-learn pipeline, or None.
    """

    name: BaselineName
    n_train: int
    constant: int | None
    model: Classifier | None

    def predict(self, patients: Sequence[PatientFeatures]) -> IntArray:
        """Predicted bin per patient, ``(N,)`` int64."""
        if not patients:
            return np.zeros(0, dtype=np.int64)
        if self.constant is not None or self.model is None:
            return np.full(len(patients), self.constant or 0, dtype=np.int64)
        return np.asarray(self.model.predict(_features(self.name, patients)), dtype=np.int64)


def _features(name: BaselineName, patients: Sequence[PatientFeatures]) -> npt.NDArray[np.float64]:
    if name is BaselineName.AGE_ONLY:
        return np.asarray([[p.age] for p in patients], dtype=np.float64)
    missing = [p.volume for p in patients if p.volumes_ml is None]
    if missing:
        raise DataError(f"the age + volumes baseline needs tumour volumes; volumes {missing[:5]} have none")
    return np.asarray([[p.age, *(p.volumes_ml or ())] for p in patients], dtype=np.float64)


def fit_baseline(name: BaselineName | str, train: Sequence[PatientFeatures]) -> FittedBaseline:
    """Fit one baseline on the training patients (and on nothing else).

    The majority baseline predicts the most frequent training bin (the lower bin on a
    tie). A logistic regression whose training patients all share one bin predicts it.

    Args:
        name: Which baseline.
        train: The training patients.

    Returns:
        The fitted baseline.

    Raises:
        DataError: No training patient, or volumes missing for ``age + volumes``.
        ConfigError: Unknown ``name``.
    """
    kind = BaselineName.parse(name)
    if not train:
        raise DataError(f"the {kind.value} baseline has no training patient with a survival bin")
    bins = np.asarray([p.bin for p in train], dtype=np.int64)
    present = np.unique(bins)
    if kind is BaselineName.MAJORITY or present.size == 1:
        counts = np.bincount(bins)
        return FittedBaseline(kind, len(train), int(np.argmax(counts)), None)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(_features(kind, train), bins)
    return FittedBaseline(kind, len(train), None, model)


def predict_baseline(
    name: BaselineName | str, train: Sequence[PatientFeatures], test: Sequence[PatientFeatures]
) -> IntArray:
    """Fit ``name`` on ``train`` and predict the bins of ``test``, ``(len(test),)`` int64."""
    return fit_baseline(name, train).predict(test)
