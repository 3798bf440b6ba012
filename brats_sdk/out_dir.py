"""Output folders: created with a one-line error when they cannot be, and owned by one run.

:func:`prepare_out_dir` turns every way an ``--out`` cannot be created or written (no
permission, a path under a file, a name too long for the filesystem, a read-only
filesystem) into a :class:`~brats_sdk.errors.DataError` naming the folder, which the CLI
prints as one line with exit 1.

:class:`RunLock` makes a folder one run's at a time: a second run into it stops with a
line naming the holder (pid, host, start time, command). The lock is an advisory
``flock`` on ``.brats.lock`` in the folder, which the kernel releases when the holder
exits however it exits, so the lock file of a run that was killed holds nothing and the
next run takes it over. The file's content only names the holder.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Final

from brats_sdk.errors import DataError

__all__ = ["LOCK_FILE", "RunLock", "claim_out_dir", "prepare_out_dir"]

logger = logging.getLogger(__name__)

LOCK_FILE: Final[str] = ".brats.lock"

_REASONS: Final[dict[int, str]] = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only filesystem",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file of that name exists",
    errno.ENAMETOOLONG: "a name in the path is too long for the filesystem",
    errno.ENOSPC: "no space left on the device",
}


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def prepare_out_dir(path: Path, *, option: str = "--out") -> Path:
    """Create ``path`` (and its parents) and check that files can be created in it.

    Args:
        path: The output folder.
        option: How the user named it, for the message.

    Returns:
        ``path``.

    Raises:
        DataError: The folder cannot be created or written (the message names it and why).
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(errno.EEXIST, "exists", str(path))
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".brats_write_probe.{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise DataError(f"{path}: cannot write the {option} folder: {_reason(exc)}") from exc
    return path


class RunLock:
    """An exclusive claim on an output folder for the length of a ``with`` block.

    Args:
        folder: The folder (must exist: see :func:`prepare_out_dir`).
        command: What the holder runs, written into the lock for the message of others.

    Raises:
        DataError: On entering, when another live run holds the folder.
    """

    def __init__(self, folder: Path, *, command: str = "") -> None:
        self.path = Path(folder) / LOCK_FILE
        self.command = command or " ".join(Path(a).name if k == 0 else a for k, a in enumerate(sys.argv))
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise naming its holder."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks; the folder is not guarded
            logger.debug("%s: no flock on this platform; not locked", self.path)
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise DataError(f"{self.path.parent}: cannot create the lock file {LOCK_FILE}: {_reason(exc)}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder_text(fd)
                os.close(fd)
                raise DataError(
                    f"{self.path.parent}: in use by another brats run ({holder}); wait for it to finish or use another folder"
                ) from None
            # The holder before us may have removed the file between our open and our lock.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _holder_text(fd)
        if previous != "holder not recorded":
            logger.info("%s: taking over the lock of a run that is gone (%s)", self.path.parent, previous)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and give up the lock (a no-op when not held)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


@contextmanager
def claim_out_dir(path: Path, *, main: bool = True) -> Iterator[Path]:
    """Create ``path`` (:func:`prepare_out_dir`) and hold its :class:`RunLock` for the block,
    released however the block ends.

    Args:
        path: The output folder.
        main: This process is its run's main one; the other ranks of a torchrun share the
            folder of their rank 0 and neither create nor lock it.

    Yields:
        ``path``.

    Raises:
        DataError: The folder cannot be created or written, or another run holds it.
    """
    lock = RunLock(path)
    if main:
        prepare_out_dir(path)
        lock.acquire()
    try:
        yield path
    finally:
        lock.release()


def _holder_text(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode()) if raw else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        info = None
    if not isinstance(info, dict):
        return "holder not recorded"
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: {info.get('command')}"
