"""What a ``brats convert`` data folder says about itself: finished cases, an unfinished run.

:func:`~brats_sdk.data.convert.convert_folder` is atomic per case. It lists the slices of
the cases it finished in ``meta_data.csv`` and their names in ``volume_map.csv``, and
keeps :data:`PENDING_MARKER` in the folder while it runs, so that

* a rerun knows which cases are done (listed, same case name, every slice file present)
  and converts only the others; while it runs, the marker is also its journal: one line
  ``volume,name,targets`` (a 0/1 tumour flag per slice) appended per finished case, so
  that a killed run's finished cases count as done too;
* ``brats inspect`` calls a folder that a killed conversion left, or one whose slice
  files and ``meta_data.csv`` disagree, unsound.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from brats_sdk.constants import META_CSV

__all__ = [
    "PENDING_MARKER",
    "VOLUME_MAP_CSV",
    "finished_cases",
    "folder_problems",
    "journal_case",
    "meta_rows",
    "start_journal",
]

#: Volume number -> case name table written beside ``meta_data.csv``.
VOLUME_MAP_CSV: Final[str] = "volume_map.csv"
#: Present in a data folder while ``brats convert`` writes into it.
PENDING_MARKER: Final[str] = ".brats_convert_pending"
_SHOWN: Final[int] = 5


def meta_rows(data_dir: Path) -> dict[int, list[tuple[str, int, int, int]]] | None:
    """``meta_data.csv``'s rows by volume (``slice_path, target, volume, slice``), or None
    when the folder has no readable one."""
    path = data_dir / META_CSV
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows: dict[int, list[tuple[str, int, int, int]]] = {}
            for r in csv.DictReader(fh):
                v = int(r["volume"])
                rows.setdefault(v, []).append((r["slice_path"], int(r["target"]), v, int(r["slice"])))
    except (OSError, KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError):
        return None
    return rows


def _volume_map(data_dir: Path) -> dict[int, str]:
    try:
        with (data_dir / VOLUME_MAP_CSV).open(newline="", encoding="utf-8") as fh:
            return {int(r["volume"]): r["patient_id"] for r in csv.DictReader(fh)}
    except (OSError, KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError):
        return {}


def start_journal(data_dir: Path, source: Path, *, fresh: bool) -> None:
    """Create :data:`PENDING_MARKER`; a killed run's journal is kept unless ``fresh``."""
    marker = data_dir / PENDING_MARKER
    if fresh or not marker.exists():
        marker.write_text(f"# brats convert of {source}\n", encoding="utf-8")


def journal_case(data_dir: Path, volume: int, name: str, targets: Iterable[int]) -> None:
    """Append a finished case to the journal (after all its slice files are in place)."""
    with (data_dir / PENDING_MARKER).open("a", encoding="utf-8") as fh:
        fh.write(f"{volume},{name},{''.join(str(int(t)) for t in targets)}\n")
        fh.flush()


def _journal(data_dir: Path) -> tuple[dict[int, str], dict[int, list[tuple[str, int, int, int]]]]:
    names: dict[int, str] = {}
    rows: dict[int, list[tuple[str, int, int, int]]] = {}
    try:
        lines = (data_dir / PENDING_MARKER).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return names, rows
    for line in lines:
        volume, _, rest = line.partition(",")
        name, _, targets = rest.rpartition(",")
        if not volume.isdigit() or not name or not targets or set(targets) - {"0", "1"}:
            continue  # the header, or a line a kill cut short
        v = int(volume)
        names[v] = name
        rows[v] = [(f"/content/data/volume_{v}_slice_{k}.h5", int(t), v, k) for k, t in enumerate(targets)]
    return names, rows


def finished_cases(data_dir: Path, names: dict[int, str], n_slices: dict[int, int]) -> dict[int, list[tuple[str, int, int, int]]]:
    """The cases an earlier conversion into ``data_dir`` finished: listed in
    ``volume_map.csv`` (or the journal of a killed run) under the same case name, with
    every slice ``0..n-1`` in ``meta_data.csv`` (or the journal) and on disk.

    Args:
        data_dir: The h5 data folder.
        names: Volume -> case name of the source now converted.
        n_slices: Volume -> number of slices of the source now converted.

    Returns:
        Volume -> its ``meta_data.csv`` rows, for each finished case.
    """
    mapped = _volume_map(data_dir)
    rows = meta_rows(data_dir) or {}
    journal_names, journal_rows = _journal(data_dir)
    mapped.update(journal_names)
    rows.update(journal_rows)
    done: dict[int, list[tuple[str, int, int, int]]] = {}
    for v, name in names.items():
        listed = sorted(rows.get(v, []), key=lambda r: r[3])
        if mapped.get(v) != name or [r[3] for r in listed] != list(range(n_slices.get(v, -1))):
            continue
        if all((data_dir / Path(r[0]).name).is_file() for r in listed):
            done[v] = listed
    return done


def folder_problems(slice_files: Iterable[Path]) -> list[str]:
    """Problems of the data folders holding ``slice_files``: an unfinished ``brats convert``,
    slice files that ``meta_data.csv`` does not list and rows whose file is missing."""
    by_dir: dict[Path, set[str]] = {}
    for p in slice_files:
        by_dir.setdefault(p.parent, set()).add(p.name)
    problems: list[str] = []
    for data_dir, present in sorted(by_dir.items()):
        if (data_dir / PENDING_MARKER).exists():
            problems.append(f"{data_dir}: a `brats convert` into this folder did not finish; run it again")
        rows = meta_rows(data_dir)
        if rows is None:
            continue
        listed = {Path(r[0]).name for vrows in rows.values() for r in vrows}
        for what, names in (("not listed in", present - listed), ("listed in", listed - present)):
            if names:
                shown = ", ".join(sorted(names)[:_SHOWN]) + (" ..." if len(names) > _SHOWN else "")
                tail = "" if what == "not listed in" else " but missing"
                problems.append(f"{data_dir}: {len(names)} slice files {what} {META_CSV}{tail} ({shown})")
    return problems
