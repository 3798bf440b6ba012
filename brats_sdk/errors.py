"""The one exception family of brats_sdk.

Every error the library raises on purpose is a :class:`BratsError`. The CLI turns
each into a one-line message and exit code 1, so messages must name the file or
value at fault and the problem, on one line.
"""

from __future__ import annotations

__all__ = [
    "BratsError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "TrainingDivergedError",
    "WeightsUnavailableError",
    "first_line",
]


class BratsError(Exception):
    """Base class of every error brats_sdk raises for bad input or state."""


class DataError(BratsError):
    """A data file, folder or table is missing, malformed or inconsistent."""


class ConfigError(BratsError, ValueError):
    """An option or argument has an invalid value."""


class CheckpointError(BratsError):
    """A checkpoint is missing, of the wrong kind or of an unsupported format version."""


class TrainingDivergedError(BratsError):
    """Training produced a NaN or infinite loss (too high a learning rate, bad data)."""


class DeviceError(BratsError):
    """A requested compute device is not available."""


class WeightsUnavailableError(BratsError):
    """Pretrained weights were requested but cannot be obtained (no network, no cache)."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), for one-line
    errors that wrap another library's exception."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
