"""The names and listing of a packed folder (format in :mod:`brats_sdk.data.packed`): file
and dataset names, the image storage types, and which volumes a folder holds."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Final, Literal, get_args

from brats_sdk.constants import META_CSV, NAME_MAPPING_CSV, SURVIVAL_CSV
from brats_sdk.errors import DataError

__all__ = [
    "CLASSES_KEY",
    "IMAGE_DTYPES",
    "MINIMUM_KEY",
    "MOMENT_KEYS",
    "PACKED_FILE_PATTERN",
    "PACKED_FORMAT",
    "PACKED_FORMAT_VERSION",
    "PACKED_MANIFEST",
    "TABLES",
    "ImageDtype",
    "is_packed_folder",
    "listed_volumes",
    "packed_path",
]

PACKED_FORMAT: Final[str] = "brats_sdk.packed"
PACKED_FORMAT_VERSION: Final[int] = 2
PACKED_MANIFEST: Final[str] = "packed_manifest.json"
PACKED_FILE_PATTERN: Final[str] = r"^volume_(\d+)\.h5$"

ImageDtype = Literal["float32", "float16"]
IMAGE_DTYPES: Final[tuple[str, ...]] = get_args(ImageDtype)
TABLES: Final[tuple[str, ...]] = (META_CSV, SURVIVAL_CSV, NAME_MAPPING_CSV)

# Dataset names (the image's is the release's ``image``).
CLASSES_KEY: Final[str] = "classes"
MINIMUM_KEY: Final[str] = "minimum"
MOMENT_KEYS: Final[tuple[str, str, str]] = ("moments_count", "moments_sum", "moments_sum_sq")

PACKED_RE = re.compile(PACKED_FILE_PATTERN)


def packed_path(out_dir: Path, volume: int) -> Path:
    """The packed file of ``volume`` in ``out_dir``: ``out_dir/volume_<V>.h5``."""
    return Path(out_dir) / f"volume_{volume}.h5"


def is_packed_folder(path: Path) -> bool:
    """Whether ``path`` is a packed folder: it holds ``packed_manifest.json`` or a ``volume_<V>.h5``.

    This is the detection rule for :func:`~brats_sdk.data.sources.open_source`; the Kaggle
    slice files (``volume_<V>_slice_<S>.h5``) never match it.
    """
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / PACKED_MANIFEST).is_file():
        return True
    with os.scandir(path) as entries:
        return any(PACKED_RE.match(e.name) is not None for e in entries)




def listed_volumes(root: Path, *, use_manifest: bool = True) -> dict[int, Path]:
    """Volume -> file: the manifest's volumes if there is one, else every ``volume_<V>.h5``."""
    manifest = root / PACKED_MANIFEST
    if use_manifest and manifest.is_file():
        try:
            payload = json.loads(manifest.read_text(encoding="utf-8"))
            volumes = [int(v) for v in payload["volumes"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{manifest}: not a valid packed manifest ({exc})") from exc
        return {v: packed_path(root, v) for v in volumes}
    found: dict[int, Path] = {}
    with os.scandir(root) as entries:
        for e in entries:
            m = PACKED_RE.match(e.name)
            if m is not None:
                found[int(m.group(1))] = Path(e.path)
    return found
