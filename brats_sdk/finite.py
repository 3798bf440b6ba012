"""Saying what non-finite values are: NaN, infinities, or numbers float32 cannot hold.

The SDK computes in float32. A file that stores float64 values beyond float32's range
(about 3.4e38) holds no NaN or infinity, yet its values turn infinite on reading;
"NaN or infinite" would send its owner looking for values that are not there, so
messages describe the values as stored.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["FLOAT32_MAX", "describe_non_finite", "to_float32"]

#: The largest finite float32 (about 3.4e38).
FLOAT32_MAX: Final[float] = float(np.finfo(np.float32).max)


def describe_non_finite(values: npt.NDArray[np.generic]) -> str:
    """What makes ``values`` (as stored, any numeric dtype) unusable in float32, for a message.

    Args:
        values: The values as read from a file, before any cast to float32.

    Returns:
        E.g. ``"holds NaN (3 values)"``, ``"holds infinite values (1 value)"`` or ``"holds
        values beyond float32's range (max 3.4e+38), e.g. 1e+300 (2 values)"``; ``"holds
        only finite float32 values"`` when nothing is wrong.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "fc":
        arr = arr.astype(np.float64)
    parts: list[str] = []
    n_nan = int(np.isnan(arr).sum())
    if n_nan:
        parts.append(f"NaN ({_count(n_nan)})")
    n_inf = int(np.isinf(arr).sum())
    if n_inf:
        parts.append(f"infinite values ({_count(n_inf)})")
    finite = np.abs(arr[np.isfinite(arr)])
    big = finite[finite > FLOAT32_MAX]
    if big.size:
        parts.append(
            f"values beyond float32's range (max {FLOAT32_MAX:.1e}), e.g. {float(big.max()):g} ({_count(int(big.size))})"
        )
    return "holds " + " and ".join(parts) if parts else "holds only finite float32 values"


def to_float32(values: npt.NDArray[np.generic]) -> tuple[npt.NDArray[np.float32], str | None]:
    """``values`` as float32, and what is wrong with them (None when all are finite in float32).

    Args:
        values: Numeric values as stored.

    Returns:
        The float32 array (a view when already float32) and :func:`describe_non_finite`'s
        text when any value is NaN, infinite or beyond float32's range.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values, dtype=np.float32)
    return out, None if np.isfinite(out).all() else describe_non_finite(values)


def _count(n: int) -> str:
    return f"{n} value" if n == 1 else f"{n} values"
