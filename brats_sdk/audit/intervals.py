"""95 % intervals for accuracies: Wilson for independent patients, a bootstrap over
patients for slices (slices of one patient are not independent)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from brats_sdk.errors import ConfigError

__all__ = ["Z_95", "bootstrap_over_patients", "wilson_interval"]

#: The normal quantile of a two-sided 95 % interval.
Z_95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``correct / n``.

    ``centre = (p + z^2 / 2n) / (1 + z^2 / n)``,
    ``half = z * sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)``, clipped to ``[0, 1]``.

    Args:
        correct: Successes, ``0 <= correct <= n``.
        n: Trials (independent ones: patients, not slices).
        z: Normal quantile (1.96 for 95 %).

    Returns:
        ``(low, high)``, or None when ``n == 0``.

    Raises:
        ConfigError: Counts out of range.
    """
    if n < 0 or correct < 0 or correct > n:
        raise ConfigError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    if n == 0:
        return None
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    # Rounding can put an end a hair inside p when p is 0 or 1; the interval holds p.
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def bootstrap_over_patients(
    per_patient: Sequence[tuple[int, int]],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap of a pooled accuracy, resampling whole patients.

    Args:
        per_patient: Per patient, ``(correct, total)`` slice counts.
        n_boot: Bootstrap resamples.
        seed: Seed of the resampling.
        level: Coverage of the interval.

    Returns:
        ``(low, high)`` of ``sum(correct) / sum(total)`` over resamples, or None when no
        patient has a slice.
    """
    counts = np.asarray([c for c in per_patient if c[1] > 0], dtype=np.float64).reshape(-1, 2)
    if counts.shape[0] == 0:
        return None
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise ConfigError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, counts.shape[0], size=(n_boot, counts.shape[0]))
    sums = counts[picks].sum(axis=1)
    acc = sums[:, 0] / sums[:, 1]
    tail = (1.0 - level) / 2.0
    return float(np.quantile(acc, tail)), float(np.quantile(acc, 1.0 - tail))
