"""Checks that work on any config dataclass, by field: finite numbers, and what changed.

Configs differ per command, but two rules hold for all of them: a float option is a
finite number (``--lr inf`` trains to NaN weights), and a resumed run keeps the options
it started with (a run that mixes two learning rates, or records options it did not
use, is silently wrong). Both compare fields by name, so they need no shared base class.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping

from brats_sdk.errors import ConfigError
from brats_sdk.options import config_to_dict

__all__ = ["config_differences", "refuse_changed_options", "require_finite"]


def require_finite(config: object) -> None:
    """Raise unless every float of ``config`` (fields and floats inside tuples) is finite.

    Args:
        config: A dataclass instance (call it from ``__post_init__``).

    Raises:
        ConfigError: Names the first field holding NaN or an infinity and its value.
    """
    for f in dataclasses.fields(config):  # type: ignore[arg-type]  # a dataclass instance
        value = getattr(config, f.name)
        items = value if isinstance(value, tuple) else (value,)
        if any(isinstance(x, float) and not math.isfinite(x) for x in items):
            raise ConfigError(f"invalid {f.name}={value!r}: must be a finite number")


def config_differences(
    stored: Mapping[str, object], given: object, *, may_differ: Collection[str] = ()
) -> list[str]:
    """The fields of ``given`` whose value differs from ``stored``'s, as ``name: old → new``.

    Args:
        stored: A config as a plain dict (what a run recorded, :func:`config_to_dict`).
        given: The config dataclass of this invocation (or it as a plain dict).
        may_differ: Field names that may change between the two (e.g. epochs of a run
            that is continued, worker counts).

    Returns:
        One ``"name: stored value → given value"`` per differing field, in field order.
        Fields missing from ``stored`` (written by an older SDK) are not compared.
    """
    now = dict(given) if isinstance(given, Mapping) else config_to_dict(given, lists=True)
    out = []
    for name, value in now.items():
        if name in may_differ or name not in stored:
            continue
        before = stored[name]
        if _normal(before) != _normal(value):
            out.append(f"{name}: {_text(before)} → {_text(value)}")
    return out


def refuse_changed_options(
    what: str, stored: Mapping[str, object], given: object, *, may_differ: Collection[str] = ()
) -> None:
    """Raise when ``given`` changes an option of the run recorded in ``stored``.

    Args:
        what: The run, for the message (e.g. the run folder).
        stored: The run's config as a plain dict.
        given: This invocation's config dataclass (or it as a plain dict).
        may_differ: Fields that a resume may change.

    Raises:
        ConfigError: One line listing every difference (run value → given value).
    """
    diffs = config_differences(stored, given, may_differ=may_differ)
    if diffs:
        raise ConfigError(
            f"{what}: --resume with options that differ from the run's ({'; '.join(diffs)}); "
            "give the run's options or start a new run"
        )


def _normal(value: object) -> object:
    """Tuples and lists compare alike (JSON stores tuples as lists); ints equal floats."""
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_text(v) for v in value) + ")"
    return "none" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
