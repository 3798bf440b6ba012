"""Versioned, atomically written checkpoint files that load with ``weights_only=True``.

A checkpoint is a ``torch.save``'d dict::

    {"format_version": FORMAT_VERSION, "kind": "<CheckpointKind value>", **payload}

The payload holds only tensors, plain Python scalars, strings, ``None`` and
lists / tuples / dicts of those. Configs go in as ``dataclasses.asdict`` dicts with
enums turned into their values, never as pickled objects, so every checkpoint
loads with ``torch.load(weights_only=True)`` and no code runs on load.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Final

import torch

from brats_sdk.atomic import atomic_path
from brats_sdk.errors import CheckpointError, first_line

__all__ = [
    "FORMAT_VERSION",
    "CheckpointKind",
    "check_finite",
    "load_checkpoint",
    "peek_kind",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION: Final[int] = 1
"""Version of the checkpoint layout this brats_sdk writes and reads."""

_RESERVED_KEYS: Final[frozenset[str]] = frozenset({"format_version", "kind"})
_SCALAR_TYPES: Final[tuple[type, ...]] = (bool, int, float, str, type(None))


class CheckpointKind(StrEnum):
    """What a checkpoint holds.

    SEGMENTER: a :class:`~brats_sdk.models.segmenter.Segmenter` (config and weights).
    SURVIVAL: a :class:`~brats_sdk.models.survival.SurvivalClassifier` (config, weights,
        survival bins and age scaler).
    TRAINING_STATE: everything needed to resume training (model, optimizer, scheduler, ...).
    """

    SEGMENTER = "segmenter"
    SURVIVAL = "survival"
    TRAINING_STATE = "training_state"


def _check_payload_value(value: object, where: str) -> None:
    """Raise CheckpointError if ``value`` is not a plain, weights_only-loadable value."""
    if isinstance(value, torch.Tensor) or type(value) in _SCALAR_TYPES:
        return
    if isinstance(value, list | tuple) and type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_payload_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict) and type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise CheckpointError(
                    f"checkpoint payload key {where}[{key!r}] is a {type(key).__name__}; "
                    "keys must be str or int"
                )
            _check_payload_value(item, f"{where}[{key!r}]")
        return
    raise CheckpointError(
        f"checkpoint payload value {where} is a {type(value).__name__}; only tensors, "
        "bool/int/float/str/None and lists, tuples and dicts of those can be saved "
        "(turn configs into dicts with dataclasses.asdict and enums into their values)"
    )


def save_checkpoint(path: Path, *, kind: CheckpointKind, payload: Mapping[str, object]) -> None:
    """Write a checkpoint atomically.

    The dict is written through :func:`~brats_sdk.atomic.atomic_path` (a temporary file
    in ``path``'s folder, flushed to disk, then renamed onto ``path``), so a reader never sees a half-written
    file and an interrupted save leaves the previous file in place. Missing parent
    folders are created.

    Args:
        path: Destination file (conventionally ``*.pt``).
        kind: What the checkpoint holds; checked again on load.
        payload: Entries to store beside ``format_version`` and ``kind``. Values must be
            tensors, bool/int/float/str/None, or lists, tuples and dicts of those.

    Raises:
        CheckpointError: The payload holds another type or a reserved key
            (``format_version``, ``kind``), or the file cannot be written.
    """
    path = Path(path)
    kind = CheckpointKind(kind)
    clash = _RESERVED_KEYS.intersection(payload)
    if clash:
        raise CheckpointError(f"checkpoint payload for {path} uses reserved keys {sorted(clash)}")
    for key, value in payload.items():
        _check_payload_value(value, f"[{key!r}]")
    data: dict[str, object] = {"format_version": FORMAT_VERSION, "kind": kind.value, **payload}

    try:
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            torch.save(data, fh)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from exc
    except RuntimeError as exc:
        # torch's zip writer turns a failed write (a full disk, a file-size limit) into
        # "unexpected pos ..."; the OSError behind it is what the user needs to read.
        cause = exc.__context__ if isinstance(exc.__context__, OSError) else exc
        raise CheckpointError(f"cannot write checkpoint {path}: {first_line(cause)}") from exc
    logger.info("saved %s checkpoint %s", kind.value, path)




def load_checkpoint(
    path: Path,
    *,
    kind: CheckpointKind | None,
    map_location: str | torch.device = "cpu",
    mmap: bool = False,
) -> dict[str, object]:
    """Read and check a checkpoint written by :func:`save_checkpoint`.

    Loads with ``torch.load(weights_only=True)``: no code in the file is run.

    Args:
        path: Checkpoint file.
        kind: The kind expected, or None to accept any kind.
        map_location: Where tensors are placed (as in :func:`torch.load`).
        mmap: Memory-map the file instead of reading every tensor (cheap peeks).

    Returns:
        The stored dict, including ``format_version`` (int) and ``kind`` (the
        :class:`CheckpointKind` value as a str).

    Raises:
        CheckpointError: The file is missing, is not a readable brats_sdk checkpoint,
            has another format version, or holds another kind than ``kind``.
    """
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, the step that runs the file's code.
        raise CheckpointError(f"{path}: {_unsafe_reason(exc)}") from exc
    except Exception as exc:  # torch.load raises many types (pickle, zip, runtime errors)
        raise CheckpointError(
            f"{path} is not a brats_sdk checkpoint or is unreadable: {first_line(exc)}"
        ) from exc
    if not isinstance(data, dict) or "format_version" not in data:
        raise CheckpointError(f"{path} is not a brats_sdk checkpoint: it has no format version")
    version = data["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version}; this brats_sdk reads version {FORMAT_VERSION}"
        )
    try:
        found = CheckpointKind(str(data.get("kind")))
    except ValueError:
        valid = ", ".join(k.value for k in CheckpointKind)
        raise CheckpointError(
            f"{path} has unknown checkpoint kind {data.get('kind')!r}; known kinds: {valid}"
        ) from None
    if kind is not None and found != CheckpointKind(kind):
        raise CheckpointError(
            f"{path} is a {found.value} checkpoint, expected a {CheckpointKind(kind).value} checkpoint"
        )
    return {str(k): v for k, v in data.items()}


def _unsafe_reason(exc: pickle.UnpicklingError) -> str:
    """Why a ``weights_only`` load refused a file, without torch's advice to load it unsafely."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    what = f" (such as {found.group(1)})" if found else ""
    return (
        f"holds Python objects beyond tensors and plain values{what}; refused for safety, since "
        "loading them could run code. brats_sdk checkpoints hold only tensors and plain values: "
        "re-save the model with brats_sdk"
    )


def check_finite(path: Path, tensors: Mapping[str, object], *, what: str = "weights") -> None:
    """Refuse tensors holding NaN or infinite values (a run that diverged saves such weights).

    Args:
        path: The file they come from (named in the message).
        tensors: Name -> value; non-tensor and non-float entries are skipped.
        what: What the tensors are, for the message.

    Raises:
        CheckpointError: Names the file, the first non-finite tensor and how many of its
            values are not finite.
    """
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise CheckpointError(
                    f"{path}: {what} tensor {name!r} holds {bad} NaN or infinite value(s) of {value.numel()}; "
                    "the training that wrote it diverged (try a lower learning rate)"
                )


def peek_kind(path: Path) -> CheckpointKind:
    """The kind of a checkpoint, reading as little of the file as possible.

    Args:
        path: Checkpoint file.

    Returns:
        The stored :class:`CheckpointKind`.

    Raises:
        CheckpointError: As :func:`load_checkpoint`.
    """
    data = load_checkpoint(path, kind=None, map_location="cpu", mmap=True)
    return CheckpointKind(str(data["kind"]))
