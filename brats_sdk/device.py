"""Choosing the compute device: one function, used by every command that runs a model."""

from __future__ import annotations

import logging
import re

import torch

from brats_sdk.errors import ConfigError, DeviceError

__all__ = ["DEVICE_CHOICES", "resolve_device"]

logger = logging.getLogger(__name__)

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N|mps"
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn a device request into a concrete, available :class:`torch.device`.

    ``auto`` picks CUDA when ``torch.cuda.is_available()``, then Apple MPS, then the CPU,
    and logs which it chose.

    Args:
        spec: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or a ``torch.device``.

    Returns:
        The device to run on.

    Raises:
        ConfigError: ``spec`` is not one of the forms above.
        DeviceError: An explicit device was requested that this machine does not have.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    match = _PATTERN.match(spec.strip().lower())
    if match is None:
        raise ConfigError(f"unknown device {spec!r}; expected one of {DEVICE_CHOICES}")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        if index is not None:
            raise ConfigError(f"unknown device {spec!r}; expected one of {DEVICE_CHOICES}")
        if torch.cuda.is_available():
            chosen = torch.device("cuda")
        elif _mps_available():
            chosen = torch.device("mps")
        else:
            chosen = torch.device("cpu")
        logger.info("device auto -> %s", _describe(chosen))
        return chosen
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' requested but Apple MPS is not available on this machine")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} requested but CUDA is not available on this machine")
    n = torch.cuda.device_count()
    if index is not None and int(index) >= n:
        raise DeviceError(f"device {spec!r} requested but this machine has {n} CUDA device(s)")
    return torch.device("cuda", int(index) if index is not None else torch.cuda.current_device())


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
