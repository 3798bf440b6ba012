"""Survival bins: day ranges that turn survival days into classes, saved with a model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brats_sdk.constants import BIN_LABELS_3, BRATS_SURVIVAL_CUTOFFS_DAYS
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.options import OptionEnum

__all__ = ["BinMethod", "SurvivalBins"]


class BinMethod(OptionEnum):
    """How bins are formed.

    QUANTILE: tertiles of the training patients' survival days (the paper's method).
    BRATS: the BraTS challenge's fixed cut-offs, 304.2 and 456.25 days.
    """

    QUANTILE = "quantile"
    BRATS = "brats"


@dataclass(frozen=True, slots=True)
class SurvivalBins:
    """Half-open day intervals ``[edges[i], edges[i+1])`` with a label each.

    ``cutoffs`` are the inner edges; bin ``i`` holds days ``d`` with
    ``cutoffs[i-1] <= d < cutoffs[i]`` (first and last bins open-ended).
    ``observed`` holds the (min, max) training days seen in each bin, used to print
    ranges such as ``268-476`` as the paper does.

    Attributes:
        method: How the cut-offs were chosen.
        cutoffs: Increasing inner edges in days, ``n_bins - 1`` of them.
        labels: One label per bin (``short``, ``mid``, ``long`` for three bins).
        observed: Per bin, the (min, max) survival days of the training patients, or None.
    """

    method: BinMethod
    cutoffs: tuple[float, ...]
    labels: tuple[str, ...]
    observed: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.cutoffs) + 1:
            raise ConfigError(f"{len(self.cutoffs)} cut-offs need {len(self.cutoffs) + 1} labels")
        if any(b <= a for a, b in zip(self.cutoffs, self.cutoffs[1:], strict=False)):
            raise ConfigError(f"bin cut-offs must increase strictly, got {self.cutoffs}")

    @property
    def n_bins(self) -> int:
        return len(self.labels)

    @classmethod
    def brats(cls) -> SurvivalBins:
        """The BraTS challenge bins: short < 304.2 d <= mid < 456.25 d <= long."""
        return cls(BinMethod.BRATS, tuple(BRATS_SURVIVAL_CUTOFFS_DAYS), BIN_LABELS_3)

    @classmethod
    def quantile(cls, days: Sequence[float], n_bins: int = 3) -> SurvivalBins:
        """Equal-count bins from the training patients' survival days (the paper's tertiles).

        Raises:
            DataError: Too few distinct values to form ``n_bins`` non-empty bins.
        """
        arr = np.asarray(days, dtype=np.float64)
        if arr.size < n_bins or np.unique(arr).size < n_bins:
            raise DataError(
                f"cannot form {n_bins} quantile survival bins from {arr.size} patients "
                f"({np.unique(arr).size} distinct survival times); need at least {n_bins}"
            )
        qs = np.quantile(arr, np.linspace(0, 1, n_bins + 1)[1:-1])
        # A cut-off sits between the two neighbouring observed values, as pandas.qcut's
        # bins do in practice, so that a value equal to a quantile lands in one bin only.
        sorted_days = np.sort(arr)
        cutoffs: list[float] = []
        for q in qs:
            above = sorted_days[sorted_days > q]
            cut = float(q) if above.size == 0 else float((q + above[0]) / 2.0)
            cutoffs.append(cut)
        labels = BIN_LABELS_3 if n_bins == 3 else tuple(f"bin{i}" for i in range(n_bins))
        bins = cls(BinMethod.QUANTILE, tuple(cutoffs), tuple(labels))
        return bins.with_observed(arr)

    def with_observed(self, days: Sequence[float] | np.ndarray) -> SurvivalBins:
        """A copy whose ``observed`` ranges come from ``days``.

        Raises:
            DataError: A bin would be empty.
        """
        arr = np.asarray(days, dtype=np.float64)
        idx = self.assign_many(arr)
        observed: list[tuple[float, float]] = []
        for b in range(self.n_bins):
            members = arr[idx == b]
            if members.size == 0:
                raise DataError(
                    f"survival bin {b} ({self.labels[b]}, {self.range_text(b)}) holds no patient; "
                    "use more volumes or other bins"
                )
            observed.append((float(members.min()), float(members.max())))
        return SurvivalBins(self.method, self.cutoffs, self.labels, tuple(observed))

    def assign(self, days: float) -> int:
        """The bin of ``days`` survival days."""
        if not math.isfinite(days):
            raise DataError(f"survival days must be finite, got {days}")
        return int(np.searchsorted(np.asarray(self.cutoffs), days, side="right"))

    def assign_many(self, days: Sequence[float] | np.ndarray) -> np.ndarray:
        """Vectorised :meth:`assign`: int64 array of bins."""
        return np.searchsorted(np.asarray(self.cutoffs), np.asarray(days, dtype=np.float64), side="right")

    def range_text(self, b: int) -> str:
        """Day range of bin ``b``: the observed training range (``268-476``) when known,
        else the cut-off interval (``<304``, ``304-456``, ``>=456``)."""
        if self.observed is not None:
            lo, hi = self.observed[b]
            return f"{lo:g}-{hi:g}"
        if b == 0:
            return f"<{self.cutoffs[0]:g}"
        if b == self.n_bins - 1:
            return f">={self.cutoffs[-1]:g}"
        return f"{self.cutoffs[b - 1]:g}-{self.cutoffs[b]:g}"

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form for checkpoints."""
        return {
            "method": self.method.value,
            "cutoffs": list(self.cutoffs),
            "labels": list(self.labels),
            "observed": None if self.observed is None else [list(o) for o in self.observed],
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> SurvivalBins:
        """Inverse of :meth:`to_dict`."""
        try:
            obs = d.get("observed")
            observed = None if obs is None else tuple((float(a), float(b)) for a, b in obs)  # type: ignore[attr-defined]  # a list of pairs in a checkpoint
            return cls(
                BinMethod.parse(str(d["method"])),
                tuple(float(c) for c in d["cutoffs"]),  # type: ignore[attr-defined]  # a list of numbers in a checkpoint
                tuple(str(s) for s in d["labels"]),  # type: ignore[attr-defined]  # a list of strings in a checkpoint
                observed,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid survival bins record {d!r}: {exc}") from exc
