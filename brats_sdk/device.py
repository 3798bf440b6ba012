"""Choosing the compute device (one function, used by every command that runs a model) and
telling whether this CPU computes bf16 natively."""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import torch

from brats_sdk.constants import DEVICE_CHOICES
from brats_sdk.errors import ConfigError, DeviceError

__all__ = ["DEVICE_CHOICES", "bf16_is_emulated", "cpu_has_native_bf16", "resolve_device", "warn_if_slow_bf16"]

logger = logging.getLogger(__name__)

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


# CPU flags that give oneDNN native bf16 arithmetic (AVX-512 BF16, or AMX tiles).
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether bf16 convolutions run natively on this CPU (AVX-512 BF16 or AMX) and
    torch's kernels may use them.

    Without native support bf16 is emulated and slower than fp32; with
    ``ATEN_CPU_CAPABILITY`` set below AVX-512 the answer is False too.
    """
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if not (capability.startswith("AVX512") or "AMX" in capability):
        return False
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if callable(probe) and bool(probe()):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return False
    return any(f in flags for f in _BF16_FLAGS)


def bf16_is_emulated(device: str | torch.device) -> bool:
    """Whether bf16 on ``device`` is emulated and slower than fp32 (a CPU without native bf16)."""
    return torch.device(device).type == "cpu" and not cpu_has_native_bf16()


_warned_bf16 = False


def warn_if_slow_bf16(device: torch.device, what: str) -> bool:
    """Log once per process that bf16 on this CPU is emulated and slow.

    Args:
        device: Where the work runs (only a CPU is checked).
        what: What asked for bf16, for the message (e.g. ``"--precision bf16"``).

    Returns:
        True when the warning applies (a CPU without native bf16).
    """
    global _warned_bf16
    if not bf16_is_emulated(device):
        return False
    if not _warned_bf16:
        _warned_bf16 = True
        logger.warning(
            "%s: this CPU has no native bf16 (no AVX-512 BF16 or AMX; capability %s), so bf16 "
            "is emulated and slower than fp32", what, torch.backends.cpu.get_cpu_capability(),
        )
    return True
