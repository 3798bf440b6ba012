"""The exit codes of every ``brats`` command, in one place.

====  ==========================================================================
code  meaning
====  ==========================================================================
0     everything asked for was done
1     an error in the input, the files or the environment (one line naming the
      file or option: a malformed file, an unwritable ``--out``, a locked folder)
2     a usage error: an unknown option or a value Click refuses (Click's own)
3     a batch finished but skipped some volumes (each listed, and written to
      ``errors.csv`` by ``brats predict``); the others are done
====  ==========================================================================
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """Exit status of a ``brats`` command (see the module docstring)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    VOLUMES_SKIPPED = 3
