"""Clinical tables of BraTS 2020: survival, age and the volume -> patient id mapping.

Every reader here uses the standard :mod:`csv` module and keeps every cell as text
until it parses it on purpose. That is what ``pandas.read_csv(dtype=str,
keep_default_na=False)`` would give, with two gains: the text ``NA`` of
``Extent_of_Resection`` can never become NaN, and every error names the exact CSV
line (``reader.line_num``), blank lines and quoted newlines included.

Line numbers in messages count the header as line 1.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, NamedTuple

from brats_sdk.constants import DEFAULT_PATIENT_ID_FORMAT
from brats_sdk.data.records import VolumeInfo
from brats_sdk.errors import ConfigError, DataError

__all__ = [
    "AGE_RANGE_YEARS",
    "RESECTION_VALUES",
    "AgeTable",
    "PatientIdMap",
    "SurvivalRecord",
    "patient_id_of",
    "read_age_table",
    "read_survival_csv",
]

logger = logging.getLogger(__name__)

#: Extent_of_Resection values: gross total, subtotal, not available (kept as text).
RESECTION_VALUES: tuple[str, ...] = ("GTR", "STR", "NA")

#: Ages (years) a table may hold: above 0 and up to 120. The BraTS 2020 table spans
#: about 19-87; a value outside this range is a typo or a unit mistake (days, months).
AGE_RANGE_YEARS: Final[tuple[float, float]] = (0.0, 120.0)

_ALIVE_RE = re.compile(r"^alive\s*\(\s*(\d+(?:\.\d+)?)\s*days?\s+later\s*\)$", re.IGNORECASE)
_MISSING_TEXT = frozenset({"", "na", "n/a", "nan"})

_SURVIVAL_COLUMNS = ("Brats20ID", "Age", "Survival_days", "Extent_of_Resection")


# --------------------------------------------------------------------------- CSV helpers


class _Row(NamedTuple):
    line: int
    cells: dict[str, str]


def _read_rows(path: Path) -> tuple[tuple[str, ...], Iterator[_Row]]:
    """Open ``path`` and return its lower-cased header and an iterator over its rows.

    Cells are stripped text; blank rows (every cell empty) are skipped.

    Raises:
        DataError: The file is missing, unreadable, empty, or a row has the wrong
            number of fields.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        raw_header = next(reader, None)
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num}: {exc}") from exc
    if raw_header is None or not any(h.strip() for h in raw_header):
        raise DataError(f"{path}: empty file, expected a header row")
    header = tuple(h.strip().lower() for h in raw_header)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path} line 1: duplicate column(s) {', '.join(dupes)}")

    def rows() -> Iterator[_Row]:
        while True:
            try:
                raw = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(f"{path} line {reader.line_num}: {exc}") from exc
            cells = [c.strip() for c in raw]
            if not any(cells):
                continue
            if len(cells) != len(header):
                raise DataError(
                    f"{path} line {reader.line_num}: expected {len(header)} fields "
                    f"({','.join(header)}), got {len(cells)}"
                )
            yield _Row(reader.line_num, dict(zip(header, cells, strict=True)))

    return header, rows()


def _require_columns(path: Path, header: Sequence[str], required: Sequence[str]) -> None:
    """DataError unless every name of ``required`` (any case) is in the lower-cased ``header``."""
    missing = [c for c in required if c.lower() not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"expected {','.join(required)}, found {','.join(header)}"
        )


def _is_missing(text: str) -> bool:
    return text.strip().lower() in _MISSING_TEXT


def _parse_float(path: Path, line: int, column: str, text: str) -> float:
    """A finite, non-negative float, or DataError naming the file, line and column."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path} line {line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{path} line {line}: {column} {text!r} must be a finite number >= 0")
    return value


def _parse_age(path: Path, line: int, column: str, text: str) -> float:
    """An age in years within :data:`AGE_RANGE_YEARS`, or DataError naming the file, line and column."""
    age = _parse_float(path, line, column, text)
    low, high = AGE_RANGE_YEARS
    if not low < age <= high:
        raise DataError(
            f"{path} line {line}: {column} {text!r} is not a plausible age in years (must be > {low:g} and <= {high:g})"
        )
    return age


def _parse_volume(path: Path, line: int, text: str) -> int:
    try:
        volume = int(text)
    except ValueError:
        raise DataError(f"{path} line {line}: volume {text!r} is not an integer") from None
    if volume < 0:
        raise DataError(f"{path} line {line}: volume {volume} must be >= 0")
    return volume


# --------------------------------------------------------------------------- survival_info.csv


@dataclass(frozen=True, slots=True)
class SurvivalRecord:
    """One row of ``survival_info.csv``.

    Attributes:
        patient_id: ``Brats20ID``, e.g. ``BraTS20_Training_001``.
        age: Age in years, or None when blank / ``NA``.
        survival_days: Overall survival in days; for a censored patient the days known
            alive (a lower bound, not a death). None when blank / ``NA``.
        censored: True for ``ALIVE (N days later)``: the patient was alive at N days.
        resection: Extent of resection, one of :data:`RESECTION_VALUES`; the text
            ``"NA"`` (never NaN) when unknown or blank.
    """

    patient_id: str
    age: float | None
    survival_days: float | None
    censored: bool
    resection: str


def _parse_days(path: Path, line: int, text: str) -> tuple[float | None, bool]:
    """Survival_days cell -> (days, censored)."""
    if _is_missing(text):
        return None, False
    alive = _ALIVE_RE.match(text)
    if alive is not None:
        return float(alive.group(1)), True
    try:
        days = float(text)
    except ValueError:
        raise DataError(
            f"{path} line {line}: Survival_days {text!r} is not a number or 'ALIVE (N days later)'"
        ) from None
    if not math.isfinite(days) or days < 0:
        raise DataError(f"{path} line {line}: Survival_days {text!r} must be a finite number >= 0")
    return days, False


def read_survival_csv(path: Path) -> tuple[SurvivalRecord, ...]:
    """Read ``survival_info.csv`` (``Brats20ID,Age,Survival_days,Extent_of_Resection``).

    Headers match case-insensitively; extra columns are ignored. Cells are stripped.
    ``ALIVE (361 days later)`` (any case, any spacing) becomes ``censored=True,
    survival_days=361.0``. Blank or ``NA`` age / days become None. A blank
    ``Extent_of_Resection`` becomes the text ``"NA"``; ``gtr`` is upper-cased.

    Args:
        path: The CSV file.

    Returns:
        One record per data row, in file order.

    Raises:
        DataError: The file is missing or unreadable, a column is missing, or a row is
            malformed (non-numeric age, unparseable days, unknown resection, empty or
            duplicate id); the message names the file and the CSV line.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    _require_columns(path, header, _SURVIVAL_COLUMNS)
    records: list[SurvivalRecord] = []
    seen: dict[str, int] = {}
    for line, cells in rows:
        pid = cells["brats20id"]
        if not pid:
            raise DataError(f"{path} line {line}: empty Brats20ID")
        if pid in seen:
            raise DataError(
                f"{path} line {line}: duplicate Brats20ID {pid!r} (first on line {seen[pid]})"
            )
        seen[pid] = line
        age_text = cells["age"]
        age = None if _is_missing(age_text) else _parse_age(path, line, "Age", age_text)
        days, censored = _parse_days(path, line, cells["survival_days"])
        resection = cells["extent_of_resection"].upper() or "NA"
        if resection == "N/A":
            resection = "NA"
        if resection not in RESECTION_VALUES:
            raise DataError(
                f"{path} line {line}: Extent_of_Resection {cells['extent_of_resection']!r} "
                f"is not one of {', '.join(RESECTION_VALUES)} (or blank)"
            )
        records.append(SurvivalRecord(pid, age, days, censored, resection))
    logger.info(
        "%s: %d survival records (%d censored, %d without days, %d without age)",
        path,
        len(records),
        sum(r.censored for r in records),
        sum(r.survival_days is None for r in records),
        sum(r.age is None for r in records),
    )
    return tuple(records)


# --------------------------------------------------------------------------- age table


@dataclass(frozen=True)
class AgeTable:
    """Ages looked up by volume number or by patient id.

    Attributes:
        by_patient: Patient id -> age in years (read-only).
        by_volume: Volume number -> age in years (read-only).
    """

    by_patient: Mapping[str, float] = field(default_factory=dict, hash=False)
    by_volume: Mapping[int, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_patient", MappingProxyType(dict(self.by_patient)))
        object.__setattr__(self, "by_volume", MappingProxyType(dict(self.by_volume)))

    def age_for(self, volume: int, patient_id: str) -> float | None:
        """The age of a volume: by volume number first, else by patient id.

        Args:
            volume: Volume number.
            patient_id: The volume's patient id (see :class:`PatientIdMap`).

        Returns:
            The age in years, or None when neither key is in the table.
        """
        age = self.by_volume.get(volume)
        return age if age is not None else self.by_patient.get(patient_id)


_AGE_ID_COLUMNS = ("brats20id", "patient_id")
_AGE_EXPECTED = "Brats20ID,Age or patient_id,Age (by patient) or volume,Age (by volume)"


def read_age_table(path: Path) -> AgeTable:
    """Read a table of ages keyed by patient id or by volume number.

    Accepted headers (case-insensitive): ``Brats20ID,Age`` or ``patient_id,Age``
    (filling :attr:`AgeTable.by_patient`) and/or ``volume,Age`` (filling
    :attr:`AgeTable.by_volume`). Other columns are ignored, so ``survival_info.csv``
    itself is a valid age table. Blank or ``NA`` ages are left out.

    Args:
        path: The CSV file.

    Returns:
        The :class:`AgeTable`.

    Raises:
        DataError: The file is missing or unreadable, it has no ``age`` column or no
            key column (the message lists the expected column sets), an age or volume
            is not a number, or a key repeats; row errors name the CSV line.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    id_col = next((c for c in _AGE_ID_COLUMNS if c in header), None)
    has_volume = "volume" in header
    if "age" not in header or (id_col is None and not has_volume):
        raise DataError(
            f"{path}: unrecognised columns {','.join(header)}; expected {_AGE_EXPECTED}"
        )
    by_patient: dict[str, float] = {}
    by_volume: dict[int, float] = {}
    first_line: dict[str | int, int] = {}
    for line, cells in rows:
        text = cells["age"]
        age = None if _is_missing(text) else _parse_age(path, line, "age", text)
        keys: list[str | int] = []
        if id_col is not None and cells[id_col]:
            keys.append(cells[id_col])
        if has_volume and cells["volume"]:
            keys.append(_parse_volume(path, line, cells["volume"]))
        if not keys:
            raise DataError(f"{path} line {line}: no patient id or volume")
        for key in keys:
            if key in first_line:
                raise DataError(
                    f"{path} line {line}: duplicate key {key!r} (first on line {first_line[key]})"
                )
            first_line[key] = line
            if age is None:
                continue
            if isinstance(key, int):
                by_volume[key] = age
            else:
                by_patient[key] = age
    logger.info("%s: ages of %d patients, %d volumes", path, len(by_patient), len(by_volume))
    return AgeTable(by_patient=by_patient, by_volume=by_volume)


# --------------------------------------------------------------------------- volume -> patient id


@dataclass(frozen=True)
class PatientIdMap:
    """Volume number -> patient id: a format string plus explicit overrides.

    The Kaggle h5 release numbers volumes 1..369; everyone assumes volume V is
    ``BraTS20_Training_{V:03d}``, which is not confirmed, hence the overrides.

    Attributes:
        fmt: ``str.format`` template with a ``{volume}`` field.
        overrides: Volume -> patient id, taking precedence over ``fmt`` (read-only).

    Raises:
        ConfigError: ``fmt`` does not format with a ``volume`` field, or two volumes
            of ``overrides`` share a patient id.
    """

    fmt: str = DEFAULT_PATIENT_ID_FORMAT
    overrides: Mapping[int, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        try:
            self.fmt.format(volume=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"patient id format {self.fmt!r} must be a str.format template with a "
                f"{{volume}} field, e.g. {DEFAULT_PATIENT_ID_FORMAT!r}: {exc!r}"
            ) from None
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def patient_id(self, volume: int) -> str:
        """The patient id of ``volume``.

        Args:
            volume: Volume number.

        Returns:
            The override when present, else ``fmt.format(volume=volume)``.
        """
        override = self.overrides.get(volume)
        return override if override is not None else self.fmt.format(volume=volume)

    @classmethod
    def from_csv(cls, path: Path, *, fmt: str = DEFAULT_PATIENT_ID_FORMAT) -> PatientIdMap:
        """Read overrides from a CSV with columns ``volume,patient_id`` (case-insensitive).

        Volumes absent from the file keep the ``fmt`` default.

        Args:
            path: The CSV file.
            fmt: Template for volumes the file does not list.

        Returns:
            The map.

        Raises:
            DataError: The file is missing or unreadable, a column is missing, a volume is
                not a non-negative integer, a patient id is empty, or a volume or patient
                id repeats; row errors name the CSV line.
        """
        path = Path(path)
        header, rows = _read_rows(path)
        _require_columns(path, header, ("volume", "patient_id"))
        overrides: dict[int, str] = {}
        vol_line: dict[int, int] = {}
        pid_line: dict[str, int] = {}
        for line, cells in rows:
            volume = _parse_volume(path, line, cells["volume"])
            pid = cells["patient_id"]
            if not pid:
                raise DataError(f"{path} line {line}: empty patient_id for volume {volume}")
            if volume in vol_line:
                raise DataError(
                    f"{path} line {line}: duplicate volume {volume} (first on line {vol_line[volume]})"
                )
            if pid in pid_line:
                raise DataError(
                    f"{path} line {line}: patient_id {pid!r} already given on line {pid_line[pid]}"
                )
            vol_line[volume], pid_line[pid] = line, line
            overrides[volume] = pid
        logger.info("%s: %d volume -> patient id overrides", path, len(overrides))
        return cls(fmt=fmt, overrides=overrides)


def patient_id_of(info: VolumeInfo, id_map: PatientIdMap | None) -> str:
    """The patient id of a volume: the id map for h5 volumes (named ``volume_<V>``),
    the case name for sources that know it (NIfTI)."""
    if info.name == f"volume_{info.volume}" or not info.name:
        return (id_map or PatientIdMap()).patient_id(info.volume)
    if id_map is not None and info.volume in id_map.overrides:
        return id_map.patient_id(info.volume)
    return info.name
