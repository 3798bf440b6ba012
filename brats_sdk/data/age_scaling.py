"""Min-max scaling of age, the survival network's second input (numpy only: prediction
without torch scales ages with it too)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from brats_sdk.errors import ConfigError, DataError

__all__ = ["AgeScaler"]


@dataclass(frozen=True)
class AgeScaler:
    """Min-max scaling of age, fitted on the training patients.

    ``transform(age) = (age - min_age) / (max_age - min_age)``. Not clipped: an age outside
    the training range maps outside ``[0, 1]``, which the network handles (a linear layer)
    and which keeps the mapping invertible and honest about extrapolation.

    Attributes:
        min_age: Smallest training age (years).
        max_age: Largest training age; strictly greater than ``min_age``.

    Raises:
        ConfigError: Non-finite bounds or ``max_age <= min_age``.
    """

    min_age: float
    max_age: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_age) and math.isfinite(self.max_age)):
            raise ConfigError(
                f"age scaler bounds must be finite, got {self.min_age}, {self.max_age}"
            )
        if self.max_age <= self.min_age:
            raise ConfigError(
                f"age scaler needs max_age > min_age, got min {self.min_age}, max {self.max_age}"
            )

    @classmethod
    def fit(cls, ages: Sequence[float] | npt.NDArray[np.floating]) -> AgeScaler:
        """Fit on training ages.

        If every age is the same, the width is set to 1 year (``max = min + 1``) to avoid
        a division by zero.

        Args:
            ages: Ages in years, at least one, all finite.

        Returns:
            The scaler.

        Raises:
            DataError: No ages, or a NaN/inf age.
        """
        arr = np.asarray(ages, dtype=np.float64).ravel()
        if arr.size == 0:
            raise DataError("cannot fit an age scaler on no ages")
        if not np.isfinite(arr).all():
            raise DataError("cannot fit an age scaler: ages hold NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        return cls(lo, hi if hi > lo else lo + 1.0)

    def transform(self, age: float) -> float:
        """Scaled age ``(age - min_age) / (max_age - min_age)`` (not clipped).

        Args:
            age: Age in years.

        Returns:
            The scaled age.
        """
        return float(self.transform_array(np.asarray([age], dtype=np.float64))[0])

    def transform_array(self, ages: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Scaled ages, elementwise as :meth:`transform` (the one place the formula lives).

        Args:
            ages: Ages in years, any shape, float64.

        Returns:
            Float64 array of ``ages``' shape.
        """
        return (ages - self.min_age) / (self.max_age - self.min_age)

    def to_dict(self) -> dict[str, object]:
        """Plain form for checkpoints."""
        return {"min_age": self.min_age, "max_age": self.max_age}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AgeScaler:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: Missing keys or invalid values.
        """
        lo, hi = data.get("min_age"), data.get("max_age")
        if not isinstance(lo, int | float) or not isinstance(hi, int | float):
            raise ConfigError(f"invalid age scaler record {dict(data)!r}")
        return cls(float(lo), float(hi))
