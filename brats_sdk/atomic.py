"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, an interrupted write leaves the previous
version in place, and the data is on disk before the rename (so a crash right after it
cannot leave an empty file under the final name). Every writer of the package, the
checkpoints among them, goes through :func:`atomic_path`. A process killed mid-write
leaves its temporary file; the next run into the folder removes it
(:func:`remove_orphan_temps`).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "is_orphan_temp", "remove_orphan_temps"]


@contextmanager
def atomic_path(path: Path, *, suffix: str = ".tmp", fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it onto ``path``.

    The temporary file gets the permissions a plain ``open()`` would give (mkstemp's
    0600 is undone) and, with ``fsync``, is flushed to disk before the rename. On an
    exception the temporary file is removed and ``path`` is left untouched.

    Args:
        path: Destination file; missing parent folders are created.
        suffix: Ending of the temporary name (writers that pick a format by suffix,
            such as nibabel's ``.nii.gz``, need the destination's).
        fsync: Flush the file to disk before the rename; off only for data that is
            cheap to make again (synthetic cohorts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if fsync:
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# mkstemp's random part: 8 characters of this alphabet between the prefix and the suffix.
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\..+)$")


def is_orphan_temp(path: Path) -> bool:
    """Whether ``path``'s name is one :func:`atomic_path` gives its temporary files:
    ``.NAME.<8 random>.tmp``, or ``.NAME.<8 random>SUFFIX`` where NAME ends in SUFFIX."""
    m = _TEMP_RE.match(Path(path).name)
    return m is not None and (m["suffix"] == ".tmp" or m["name"].endswith(m["suffix"]))


def remove_orphan_temps(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_path` writes left in ``folder``.

    Only the writer that owns the folder may call this (the run holding its lock, or the
    training run writing it): a temporary file of a write in progress looks the same.

    Args:
        folder: The folder (a missing one holds nothing).
        recursive: Also its subfolders.

    Returns:
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*") if recursive else folder.glob(".*")
    removed: list[Path] = []
    for path in found:
        if is_orphan_temp(path) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
