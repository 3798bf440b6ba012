"""Reading the JSON records the package writes (run options, prediction and export
manifests, finished audit trainings): one reader, one pair of error lines."""

from __future__ import annotations

import json
from pathlib import Path

from brats_sdk.errors import BratsError, DataError

__all__ = ["read_json_object"]


def read_json_object(path: Path, *, error: type[BratsError] = DataError, hint: str = "") -> dict[str, object]:
    """The JSON object in ``path``.

    Args:
        path: The file.
        error: The exception raised when it cannot be read or holds no object.
        hint: Appended to the error line (e.g. ``"; delete it to train again"``).

    Raises:
        BratsError: ``error``, naming ``path``: unreadable, not JSON, or not an object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: unreadable JSON ({exc}){hint}") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object{hint}")
    return data
