"""What a data folder holds, by file name only: for format detection and ``brats inspect``.

Detection looks at what most of a folder holds rather than at the first NIfTI file it
meets, so one stray ``.nii.gz`` in a Kaggle h5 folder does not turn it into a NIfTI
folder (and the command then fail on it); what is left out is named. Slice file names
that the reader reads differently from how they look (zero-padded numbers) or does not
read at all (other letter case, non-numeric parts) are listed for ``brats inspect``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from brats_sdk.constants import H5_FILE_PATTERN
from brats_sdk.summarise import summarise

__all__ = ["FolderCensus", "folder_census", "odd_slice_name_problems"]

_SLICE_RE: Final[re.Pattern[str]] = re.compile(H5_FILE_PATTERN)
# Names that look meant as slice files: any case, any separator, any parts.
_LOOSE_RE: Final[re.Pattern[str]] = re.compile(r"^volume[_-]?(.*?)[_-]?slice[_-]?(.*?)\.h5$", re.IGNORECASE)
_NIFTI_SUFFIXES: Final[tuple[str, ...]] = (".nii", ".nii.gz")
_MAX_DEPTH: Final[int] = 4


@dataclass(frozen=True, slots=True)
class FolderCensus:
    """File names under a folder, by kind.

    Attributes:
        slice_files: ``volume_<V>_slice_<S>.h5`` files (the Kaggle layout).
        nifti_files: ``.nii`` / ``.nii.gz`` files.
        padded: Slice files whose numbers are zero-padded (read as their numbers).
        unread: ``.h5`` files that look meant as slice files but are not read (another
            letter case, separator or non-numeric part).
    """

    slice_files: tuple[Path, ...]
    nifti_files: tuple[Path, ...]
    padded: tuple[Path, ...]
    unread: tuple[Path, ...]


def folder_census(root: Path, *, max_depth: int = _MAX_DEPTH) -> FolderCensus:
    """List ``root`` (and sub-folders up to ``max_depth`` levels, hidden ones skipped) by kind.

    Only folder listings are read; unreadable folders are skipped.
    """
    slices: list[Path] = []
    niftis: list[Path] = []
    padded: list[Path] = []
    unread: list[Path] = []
    base = len(Path(root).parts)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if len(Path(dirpath).parts) - base < max_depth else []
        for name in sorted(filenames):
            path = Path(dirpath) / name
            m = _SLICE_RE.match(name)
            if m is not None:
                slices.append(path)
                if any(g != str(int(g)) for g in m.groups()):
                    padded.append(path)
            elif name.lower().endswith(_NIFTI_SUFFIXES):
                niftis.append(path)
            elif _LOOSE_RE.match(name) is not None:
                unread.append(path)
    return FolderCensus(tuple(slices), tuple(niftis), tuple(padded), tuple(unread))


def odd_slice_name_problems(root: Path, census: FolderCensus | None = None) -> list[str]:
    """One problem line per kind of odd slice file name under ``root`` (none when all are regular).

    Args:
        root: The folder (named in the lines).
        census: Its census, when already taken.

    Returns:
        Lines such as ``"ROOT: 2 slice file(s) with zero-padded numbers, read as their
        numbers: ['volume_1_slice_007.h5', ...]"``.
    """
    c = census or folder_census(root)
    lines = []
    if c.padded:
        lines.append(
            f"{root}: {len(c.padded)} slice file(s) with zero-padded numbers, read as their numbers "
            f"(rename them to volume_<V>_slice_<S>.h5): {summarise(p.name for p in c.padded)}"
        )
    if c.unread:
        lines.append(
            f"{root}: {len(c.unread)} file(s) named like slice files but not read (names must be "
            f"volume_<V>_slice_<S>.h5, lower case, numbers only): {summarise(p.name for p in c.unread)}"
        )
    return lines
