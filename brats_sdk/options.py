"""Option sets: a StrEnum base whose parsing error lists the valid values."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Self

from brats_sdk.errors import ConfigError

__all__ = ["OptionEnum"]


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
