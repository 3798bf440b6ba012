"""``history.csv``: one row per epoch of every stage, rewritten atomically each epoch."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from brats_sdk.atomic import atomic_write_text
from brats_sdk.training.observer import EpochRecord

__all__ = ["HistoryFile"]

Row = dict[str, float | int | str]


class HistoryFile:
    """Rows of a run's history, kept on disk after every change.

    Args:
        path: The CSV file; rows already in it are kept (a resumed run appends).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[Row] = []
        if path.exists():
            with path.open(newline="") as f:
                self.rows = [dict(r) for r in csv.DictReader(f)]

    def truncate(self, stage: str, after_epoch: int) -> None:
        """Drop rows of ``stage`` beyond ``after_epoch`` (work a resume will redo)."""
        self.rows = [r for r in self.rows if not (r["stage"] == stage and int(r["epoch"]) > after_epoch)]
        self._write()

    def append(self, record: EpochRecord) -> None:
        self.rows.append(record.as_row())
        self._write()

    def _write(self) -> None:
        columns: list[str] = []
        for r in self.rows:
            columns.extend(k for k in r if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())
