"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, an interrupted write leaves the previous
version in place, and the data is on disk before the rename (so a crash right after it
cannot leave an empty file under the final name). Every writer of the package, the
checkpoints among them, goes through :func:`atomic_path`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


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
