"""Option sets: a StrEnum base whose parsing error lists the valid values; configs as plain dicts."""

from __future__ import annotations

import dataclasses
import re
from enum import Enum, StrEnum
from pathlib import PurePath
from typing import Self

from brats_sdk.errors import ConfigError

__all__ = ["TTA", "OptionEnum", "UncertaintyMethod", "config_to_dict"]


class OptionEnum(StrEnum):
    """A StrEnum that accepts its members or their string values.

    ``HeadKind.parse("papr")`` raises ``ConfigError("unknown head kind 'papr';
    supported: default, paper")``: the noun comes from the class name.
    """

    @classmethod
    def parse(cls, value: Self | str) -> Self:
        """The member for ``value``.

        Raises:
            ConfigError: ``value`` is not a valid value; the message lists the valid ones.
        """
        try:
            return cls(value)
        except ValueError:
            noun = re.sub(r"(?<!^)(?=[A-Z][a-z])", " ", cls.__name__).lower()
            supported = ", ".join(m.value for m in cls)
            raise ConfigError(f"unknown {noun} {value!r}; supported: {supported}") from None


class TTA(OptionEnum):
    """Test-time augmentation of the segmenter: ``none``, or ``flips`` (the softmax averaged
    over the four in-plane mirrorings of each slice, each mapped back before averaging)."""

    NONE = "none"
    FLIPS = "flips"


class UncertaintyMethod(OptionEnum):
    """How a region's uncertainty map (uint8 in [0, 100], 100 = most uncertain) comes from
    its probability ``p``: ``missed`` the binary entropy of ``p`` in bits times 100 on the
    voxels predicted outside the region and 0 inside it (where the model may have missed
    tumour); ``margin`` 100 (1 - |2p - 1|), ``entropy`` the binary entropy everywhere,
    ``spread`` 100 times the range of ``p`` over the TTA members (needs ``tta=flips``)."""

    MISSED = "missed"
    MARGIN = "margin"
    ENTROPY = "entropy"
    SPREAD = "spread"


def config_to_dict(config: object, *, lists: bool = False) -> dict[str, object]:
    """A config as plain data: ``dataclasses.asdict`` with enum members as their values
    and paths as strings (the one conversion the package uses).

    Args:
        config: A dataclass instance.
        lists: Tuples as lists too (JSON's arrays, as run metadata stores them).

    Returns:
        A plain dict fit for a checkpoint or JSON.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return {k: _plain(v, lists) for k, v in dataclasses.asdict(config).items()}


def _plain(value: object, lists: bool) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if lists and isinstance(value, tuple):
        return list(value)
    return value
