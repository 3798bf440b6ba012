"""Input conversion and validation shared by the metric modules (private)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from brats_sdk.errors import ConfigError, DataError

__all__ = ["as_array", "as_bool", "as_int_vector", "check_same_shape", "check_spacing"]


def as_array(x: npt.ArrayLike) -> npt.NDArray[Any]:
    """Return ``x`` as a numpy array; a torch tensor is detached and moved to the CPU first."""
    detach = getattr(x, "detach", None)
    if callable(detach):
        return np.asarray(detach().cpu().numpy())
    return np.asarray(x)


def as_bool(x: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Return ``x`` as a bool array (non-zero is True)."""
    a = as_array(x)
    return a if a.dtype == np.bool_ else a != 0


def check_same_shape(a: npt.NDArray[Any], b: npt.NDArray[Any], what: str) -> None:
    """Raise DataError when two arrays differ in shape.

    Raises:
        DataError: The shapes differ.
    """
    if a.shape != b.shape:
        raise DataError(f"{what}: prediction shape {a.shape} differs from truth shape {b.shape}")


def check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """Validate a voxel spacing against an array's number of dimensions.

    Raises:
        ConfigError: Wrong length, or a value that is not a finite positive number.
    """
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim:
        raise ConfigError(f"spacing {sp} has {len(sp)} values, the masks have {ndim} dimensions")
    if not all(math.isfinite(s) and s > 0 for s in sp):
        raise ConfigError(f"spacing {sp} must hold finite positive numbers")
    return sp


def as_int_vector(x: npt.ArrayLike, name: str) -> npt.NDArray[np.int64]:
    """Return ``x`` as a 1-D int64 array.

    Raises:
        DataError: ``x`` is not 1-D or holds non-integer values.
    """
    a = as_array(x)
    if a.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {a.shape}")
    integral = np.issubdtype(a.dtype, np.integer) or (
        np.issubdtype(a.dtype, np.floating) and bool(np.all(np.mod(a, 1) == 0))
    )
    if a.size and not integral:
        raise DataError(f"{name} must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64)
