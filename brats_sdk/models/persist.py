"""What both model classes do to save and load themselves.

A model checkpoint is ``{"config": plain dict, "state_dict": tensors, "metadata": plain
dict, ...extras}`` under a :class:`~brats_sdk.checkpoint.CheckpointKind`, written
atomically and read with ``weights_only=True`` (see :mod:`brats_sdk.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Self, TypeVar

import torch
from torch import nn

from brats_sdk.checkpoint import CheckpointKind, check_finite, load_checkpoint, save_checkpoint
from brats_sdk.errors import CheckpointError, ConfigError
from brats_sdk.options import config_to_dict
from brats_sdk.summarise import summarise

__all__ = [
    "Checkpointed", "ModelRecord", "config_from_dict", "load_weights", "read_model_record", "save_model",
    "state_dict_mismatch",
]

logger = logging.getLogger(__name__)

C = TypeVar("C")


def config_from_dict(config_type: type[C], data: Mapping[str, object], *, what: str) -> C:
    """Rebuild a config dataclass from its field dict; missing fields take their defaults.

    Raises:
        ConfigError: Unknown fields or invalid values.
    """
    names = {f.name for f in dataclasses.fields(config_type)}  # type: ignore[arg-type]  # a dataclass type
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {what} config fields {unknown}; known: {sorted(names)}")
    try:
        return config_type(**data)
    except TypeError as exc:
        raise ConfigError(f"invalid {what} config {dict(data)!r}: {exc}") from exc


def save_model(
    path: Path,
    *,
    kind: CheckpointKind,
    model: nn.Module,
    config: dict[str, object],
    metadata: Mapping[str, object],
    extras: Mapping[str, object] | None = None,
) -> None:
    """Write ``model``'s weights (on the CPU), config, metadata and extras atomically.

    Raises:
        CheckpointError: Non-plain metadata, or the file cannot be written.
    """
    payload: dict[str, Any] = {
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata),
    }
    payload.update(extras or {})
    save_checkpoint(Path(path), kind=kind, payload=payload)


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """The parts of a model checkpoint, checked for type."""

    config: dict[str, object]
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, object]
    data: dict[str, object]


def read_model_record(
    path: Path, *, kind: CheckpointKind, what: str, map_location: str | torch.device = "cpu"
) -> ModelRecord:
    """Read a model checkpoint of ``kind``.

    Raises:
        CheckpointError: Missing, unreadable, of another kind or version, or without a
            config, state_dict or metadata dict.
    """
    data = load_checkpoint(Path(path), kind=kind, map_location=map_location)
    config, state, metadata = data.get("config"), data.get("state_dict"), data.get("metadata", {})
    if not isinstance(config, dict) or not isinstance(state, dict) or not isinstance(metadata, dict):
        raise CheckpointError(f"{path} lacks a {what} config, state_dict or metadata dict")
    return ModelRecord(config, state, metadata, dict(data))


def load_weights(model: nn.Module, record: ModelRecord, path: Path) -> None:
    """Load the record's weights and metadata into ``model``.

    Raises:
        CheckpointError: The weights do not fit the model built from the stored config
            (the message names the first mismatching tensors and their shapes), or hold
            NaN or infinite values.
    """
    mismatch = state_dict_mismatch(model.state_dict(), record.state_dict)
    if mismatch:
        raise CheckpointError(f"{path}: weights do not fit the stored config: {mismatch}")
    check_finite(path, record.state_dict)
    try:
        model.load_state_dict(record.state_dict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the stored config: {first}") from exc
    model.metadata = dict(record.metadata)  # type: ignore[assignment]  # both models declare it


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, object]) -> str | None:
    """How ``found`` differs from a model's ``expected`` state dict, on one line, or None.

    Names the first tensors of each kind of difference (shape, missing, unexpected) with
    their shapes, e.g. ``"shape of 'head.0.weight': stored (8, 16, 3, 3), model (8, 32, 3, 3)"``.
    """
    def shape(value: object) -> str:
        return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__

    wrong = [
        f"{k!r}: stored {shape(found[k])}, model {shape(v)}"
        for k, v in expected.items()
        if k in found and shape(found[k]) != shape(v)
    ]
    missing = [f"{k!r} {shape(v)}" for k, v in expected.items() if k not in found]
    unexpected = [f"{k!r} {shape(v)}" for k, v in found.items() if k not in expected]
    parts = [
        f"{label} {summarise(items, limit=3, brackets=False)}"
        for label, items in (("shapes differ for", wrong), ("missing", missing), ("unexpected", unexpected))
        if items
    ]
    return "; ".join(parts) or None


class Checkpointed(Generic[C]):
    """What both model classes share to save and load themselves (mixed into an
    ``nn.Module`` whose constructor takes its config first).

    A model class sets :attr:`checkpoint_kind`, :attr:`config_type` (its config dataclass,
    ``C``) and :attr:`model_name`; :meth:`save` writes the config, weights, ``metadata``
    and :meth:`checkpoint_extras`; :meth:`from_checkpoint` reads them back through
    :meth:`from_record`.

    Attributes:
        legacy_config: Values of config fields that older checkpoints do not record (they
            predate the field) when these differ from the field's default.
    """

    checkpoint_kind: ClassVar[CheckpointKind]
    config_type: ClassVar[type[Any]]
    model_name: ClassVar[str]
    legacy_config: ClassVar[Mapping[str, object]] = MappingProxyType({})
    config: C
    metadata: dict[str, object]

    def checkpoint_extras(self) -> dict[str, object]:
        """Entries saved beside config, weights and metadata (none by default)."""
        return {}

    def save(self, path: Path, *, metadata: Mapping[str, object] | None = None) -> None:
        """Write the model's checkpoint (atomically): ``config`` (:func:`config_to_dict`),
        ``state_dict``, ``metadata`` and :meth:`checkpoint_extras`.

        Args:
            path: Destination file.
            metadata: Plain data stored with the weights (epoch, metrics, ...). None:
                :attr:`metadata` (empty unless loaded or set).

        Raises:
            CheckpointError: ``metadata`` holds non-plain values, or the file cannot be written.
        """
        if not isinstance(self, nn.Module):
            raise TypeError(f"{type(self).__name__} mixes Checkpointed into something other than an nn.Module")
        save_model(
            Path(path), kind=self.checkpoint_kind, model=self, config=config_to_dict(self.config),
            metadata=metadata if metadata is not None else self.metadata, extras=self.checkpoint_extras(),
        )

    @classmethod
    def config_from_dict(cls, data: Mapping[str, object]) -> C:
        """Rebuild the model's config from :func:`config_to_dict` output.

        Args:
            data: Field name -> value; missing fields take their defaults.

        Returns:
            The config.

        Raises:
            ConfigError: Unknown fields or invalid values.
        """
        config: C = config_from_dict(cls.config_type, data, what=cls.model_name)
        return config

    @classmethod
    def from_record(cls, config: C, record: ModelRecord) -> Self:
        """The model a checkpoint's weights are loaded into, built from its stored config
        (a model with more to restore, such as the survival classifier's bins, overrides this).

        Raises:
            ConfigError: The stored record is invalid.
        """
        return cls(config)  # type: ignore[call-arg]  # every model class takes its config first

    @classmethod
    def from_checkpoint(cls, path: Path, *, map_location: str | torch.device = "cpu") -> Self:
        """Load a model saved with :meth:`save`.

        The encoder is built with ``encoder_weights=None`` (the weights come from the file,
        nothing is downloaded), so the loaded ``config.encoder_weights`` is None. Config
        fields the file does not record take :attr:`legacy_config`'s values, else their
        defaults.

        Args:
            path: Checkpoint file.
            map_location: Device the model is placed on.

        Returns:
            The model in eval mode, with :attr:`metadata` set from the file.

        Raises:
            CheckpointError: Missing, unreadable, of another kind or version, or the
                stored config, extras and weights are invalid or do not fit together.
        """
        path = Path(path)
        record = read_model_record(path, kind=cls.checkpoint_kind, what=cls.model_name, map_location=map_location)
        stored = dict(record.config)
        for name, value in cls.legacy_config.items():
            if name not in stored:
                logger.info("%s records no %s: loaded with %r, the rule before it was recorded", path, name, value)
                stored[name] = value
        stored["encoder_weights"] = None  # the weights come from the file: nothing to download
        try:
            model = cls.from_record(cls.config_from_dict(stored), record)
        except ConfigError as exc:
            raise CheckpointError(f"{path} holds an invalid {cls.model_name} model record: {exc}") from exc
        if not isinstance(model, nn.Module):
            raise TypeError(f"{cls.__name__} mixes Checkpointed into something other than an nn.Module")
        load_weights(model, record, path)
        model.to(map_location).eval()
        return model
