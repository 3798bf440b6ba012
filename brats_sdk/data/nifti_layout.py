"""Where the files of a BraTS NIfTI release are: case folders and modality file names.

Two namings are recognised (case-insensitive; ``.nii.gz`` or ``.nii``): BraTS 2020 and
older (``<case>_flair``, ``_t1``, ``_t1ce``, ``_t2``, ``_seg``) and BraTS 2021+
(``<case>-t2f``, ``-t1n``, ``-t1c``, ``-t2w``, ``-seg``). Only folder listings are read
here; :mod:`brats_sdk.data.nifti` opens the files.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Final

from brats_sdk.constants import IMAGE_CHANNELS
from brats_sdk.errors import DataError

__all__ = [
    "LABEL_KEY",
    "NIFTI_SUFFIXES",
    "case_files",
    "find_case_dirs",
    "looks_like_nifti_folder",
    "natural_key",
    "nifti_suffix",
]

logger = logging.getLogger(__name__)

#: Key of the segmentation in :meth:`NiftiFolder.case_files`.
LABEL_KEY: Final[str] = "seg"
#: File endings read as NIfTI (checked in this order, lower case).
NIFTI_SUFFIXES: Final[tuple[str, ...]] = (".nii.gz", ".nii")

# File-name endings (after the case name, before the suffix) -> channel name.
# "_segm" is the name one case of Kaggle's BraTS 2020 NIfTI copy uses (Training_355).
_MODALITY_ENDINGS: Final[dict[str, str]] = {
    "_flair": "flair",
    "_t1": "t1",
    "_t1ce": "t1ce",
    "_t2": "t2",
    "_seg": LABEL_KEY,
    "_segm": LABEL_KEY,
    "-t2f": "flair",
    "-t1n": "t1",
    "-t1c": "t1ce",
    "-t2w": "t2",
    "-seg": LABEL_KEY,
}
_ENDING_RE = re.compile(r"([_-][a-z0-9]+)$")
# How deep below ``root`` case folders are searched for (the Kaggle NIfTI copy nests
# them two levels down: BraTS2020_TrainingData/MICCAI_BraTS2020_TrainingData/<case>).
_MAX_DEPTH = 3


def nifti_suffix(name: str) -> str | None:
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def _has_nifti(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return any(
                e.is_file() and not e.name.startswith(".") and nifti_suffix(e.name) is not None
                for e in it
            )
    except OSError:
        return False


def find_case_dirs(root: Path) -> list[Path]:
    """Case folders under ``root``: folders that directly hold a ``.nii``/``.nii.gz`` file.

    ``root`` itself counts as one case when it holds NIfTI files. Otherwise its
    sub-folders are searched (hidden ones skipped) up to three levels down, not below a
    case folder. Only folder listings are read; no file is opened.

    Returns:
        The case folders, sorted by name (natural order: ``case2`` before ``case10``).

    Raises:
        DataError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if _has_nifti(root):
        return [root]
    found: list[Path] = []
    level = [root]
    for _ in range(_MAX_DEPTH):
        deeper: list[Path] = []
        for folder in level:
            try:
                with os.scandir(folder) as it:
                    subdirs = sorted(
                        Path(e.path) for e in it if e.is_dir() and not e.name.startswith(".")
                    )
            except OSError as exc:
                raise DataError(f"{folder}: cannot list folder ({exc.strerror})") from exc
            for sub in subdirs:
                (found if _has_nifti(sub) else deeper).append(sub)
        level = deeper
    return sorted(found, key=lambda p: natural_key(p.name))


def looks_like_nifti_folder(path: Path) -> bool:
    """Whether :class:`NiftiFolder` would find cases at ``path`` (folder listings only, never raises).

    True when ``path`` is a folder that holds a ``.nii``/``.nii.gz`` file itself or has a
    sub-folder (up to three levels down) that does. The Kaggle h5 layout and
    ``brats convert`` output hold no NIfTI file, so they give False.
    """
    try:
        return bool(find_case_dirs(Path(path)))
    except DataError:
        return False


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def case_files(case_dir: Path) -> dict[str, Path]:
    """Map channel name (and ``seg``) -> file for one case folder.

    Raises:
        DataError: A modality is missing, or one is present twice.
    """
    files: dict[str, Path] = {}
    with os.scandir(case_dir) as it:
        names = sorted(e.name for e in it if e.is_file() and not e.name.startswith("."))
    for name in names:
        suffix = nifti_suffix(name)
        if suffix is None:
            continue
        m = _ENDING_RE.search(name[: -len(suffix)].lower())
        key = _MODALITY_ENDINGS.get(m.group(1)) if m else None
        if key is None:
            logger.debug("%s: not a known modality name; ignored", case_dir / name)
            continue
        if key in files:
            raise DataError(
                f"{case_dir / name}: second {key} file in the case (also {files[key].name})"
            )
        files[key] = case_dir / name
    missing = [c for c in IMAGE_CHANNELS if c not in files]
    if missing:
        want = ", ".join(f"{case_dir.name}_{c} or {case_dir.name}-{_name_2021(c)}" for c in missing)
        raise DataError(
            f"{case_dir}: missing modality {', '.join(missing)} (no file {want} with .nii.gz/.nii)"
        )
    return files


def _name_2021(channel: str) -> str:
    return next(e[1:] for e, c in _MODALITY_ENDINGS.items() if c == channel and e.startswith("-"))
