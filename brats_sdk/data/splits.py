"""Train / validation / test splits: by patient (the default) or by slice (the paper's).

The paper splits *slices* at random, so one patient's slices land in train and test
and the survival classifier can recognise the patient instead of predicting
survival. :func:`split_by_patient` is the sound default; :func:`split_slices`
reproduces the paper on request and warns that it leaks.

Both are stratified by survival bin where one is known, seeded and deterministic:
the result depends only on the set of inputs, the strata, the fractions and the
seed, not on the order of the inputs. A split is saved to and read back from a CSV
(``volume,slice,part,mode,seed``) so that it can be audited and reused.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brats_sdk.atomic import atomic_write_text
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.options import OptionEnum
from brats_sdk.summarise import summarise

__all__ = [
    "DEFAULT_FRACTIONS",
    "PARTS",
    "Split",
    "SplitMode",
    "read_split_csv",
    "split_by_patient",
    "split_slices",
    "write_split_csv",
]

logger = logging.getLogger(__name__)

#: Names of the three parts, in order, as written in the ``part`` column.
PARTS: tuple[str, str, str] = ("train", "val", "test")
_CSV_COLUMNS: tuple[str, ...] = ("volume", "slice", "part", "mode", "seed")
_MIN_ITEMS = 3

Fractions = tuple[float, float, float]

#: (train, val, test) shares of a split unless a caller gives others.
DEFAULT_FRACTIONS: Fractions = (0.8, 0.1, 0.1)


class SplitMode(OptionEnum):
    """What a split partitions.

    PATIENT: whole volumes (patients); no patient appears in two parts.
    SLICE: individual (volume, slice) keys at random, as the paper does. This leaks:
        slices of one patient land in train and test, so test scores are inflated.
    """

    PATIENT = "patient"
    SLICE = "slice"


@dataclass(frozen=True, slots=True)
class Split:
    """A three-way split of volumes (PATIENT mode) or of (volume, slice) keys (SLICE mode).

    Attributes:
        mode: What is split.
        seed: The seed that produced the split.
        train: Training volumes (PATIENT mode; empty in SLICE mode).
        val: Validation volumes (PATIENT mode; empty in SLICE mode).
        test: Test volumes (PATIENT mode; empty in SLICE mode).
        train_slices: Training (volume, slice) keys (SLICE mode; empty in PATIENT mode).
        val_slices: Validation (volume, slice) keys (SLICE mode; empty in PATIENT mode).
        test_slices: Test (volume, slice) keys (SLICE mode; empty in PATIENT mode).

    Raises:
        ConfigError: Unknown mode, fields of the other mode filled, or an item
            repeated within or across parts.
    """

    mode: SplitMode
    seed: int
    train: tuple[int, ...] = ()
    val: tuple[int, ...] = ()
    test: tuple[int, ...] = ()
    train_slices: tuple[tuple[int, int], ...] = ()
    val_slices: tuple[tuple[int, int], ...] = ()
    test_slices: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", SplitMode.parse(self.mode))
        if self.mode is SplitMode.PATIENT:
            own: tuple[tuple[object, ...], ...] = (self.train, self.val, self.test)
            other: tuple[tuple[object, ...], ...] = (
                self.train_slices,
                self.val_slices,
                self.test_slices,
            )
        else:
            own = (self.train_slices, self.val_slices, self.test_slices)
            other = (self.train, self.val, self.test)
        if any(other):
            raise ConfigError(f"a {self.mode.value} split must leave the other mode's parts empty")
        seen: dict[object, str] = {}
        for name, items in zip(PARTS, own, strict=True):
            for item in items:
                if item in seen:
                    raise ConfigError(f"{item} is in {seen[item]} and in {name}")
                seen[item] = name

    @property
    def leaks_patients(self) -> bool:
        """True for a SLICE split: a patient's slices may sit in train and test."""
        return self.mode is SplitMode.SLICE

    def sizes(self) -> tuple[int, int, int]:
        """Number of items (volumes or slices) in train, val and test."""
        if self.mode is SplitMode.PATIENT:
            return len(self.train), len(self.val), len(self.test)
        return len(self.train_slices), len(self.val_slices), len(self.test_slices)


# --------------------------------------------------------------------------- allocation


def _check_fractions(fractions: Sequence[float]) -> Fractions:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise ConfigError(
            f"fractions must be three numbers (train, val, test), got {fractions!r}"
        ) from None
    if len(values) != 3:
        raise ConfigError(f"fractions must be three numbers (train, val, test), got {fractions!r}")
    if any(not math.isfinite(f) or f < 0 for f in values):
        raise ConfigError(f"fractions must be finite and >= 0, got {fractions!r}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ConfigError(f"fractions must sum to 1, got {fractions!r} (sum {sum(values):g})")
    if values[0] == 0:
        raise ConfigError(f"the train fraction must be > 0, got {fractions!r}")
    return values[0], values[1], values[2]


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _part_sizes(n: int, fractions: Fractions) -> tuple[int, int, int]:
    """Sizes of train, val, test: largest remainder, then at least one item in every
    part whose fraction is > 0, taken from train (``n >= 3`` keeps train non-empty)."""
    quotas = [n * f for f in fractions]
    sizes = [math.floor(q) for q in quotas]
    order = sorted(range(3), key=lambda i: (-(quotas[i] - sizes[i]), i))
    for i in order[: n - sum(sizes)]:
        sizes[i] += 1
    for i in (1, 2):
        if fractions[i] > 0 and sizes[i] == 0:
            sizes[i] += 1
            sizes[0] -= 1
    return sizes[0], sizes[1], sizes[2]


def _apportion(
    total: int, quotas: Sequence[float], caps: Sequence[int], rng: np.random.Generator
) -> list[int]:
    """Integers ``<= caps`` summing to ``total``, close to ``quotas``.

    Floors first, then one at a time to the stratum furthest below its quota that
    has room; ties are broken at random (seeded). Requires ``total <= sum(caps)``.
    """
    counts = [min(math.floor(q), c) for q, c in zip(quotas, caps, strict=True)]
    tiebreak = rng.permutation(len(quotas))
    while sum(counts) < total:
        open_ = [k for k in range(len(quotas)) if counts[k] < caps[k]]
        best = max(open_, key=lambda k: (quotas[k] - counts[k], -int(tiebreak[k])))
        counts[best] += 1
    return counts


def _stratified_parts(
    strata: Sequence[int | None], fractions: Fractions, rng: np.random.Generator
) -> tuple[list[int], list[int], list[int]]:
    """Indices of train, val and test for items whose strata are ``strata``.

    Items without a stratum (None) form one stratum of their own. Held-out items
    (val + test) are first spread over the strata in proportion to their sizes,
    leaving at least one item of every stratum in train where possible; then the
    held-out items of each stratum are divided between val and test.
    """
    n = len(strata)
    _, n_val, n_test = _part_sizes(n, fractions)
    n_held = n_val + n_test
    keys = sorted(set(strata), key=lambda s: (s is None, s if s is not None else 0))
    members = [
        [int(i) for i in rng.permutation([i for i, s in enumerate(strata) if s == key])]
        for key in keys
    ]
    sizes = [len(m) for m in members]
    caps = [s - 1 for s in sizes]
    if sum(caps) < n_held:
        caps = sizes
    held = _apportion(n_held, [n_held * s / n for s in sizes], caps, rng)
    val_counts = (
        _apportion(n_val, [n_val * h / n_held for h in held], held, rng)
        if n_held
        else [0] * len(held)
    )
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for m, h, v in zip(members, held, val_counts, strict=True):
        val.extend(m[:v])
        test.extend(m[v:h])
        train.extend(m[h:])
    return sorted(train), sorted(val), sorted(test)


def _log_strata(kind: str, split: Split, strata_of: Sequence[int | None]) -> None:
    if logger.isEnabledFor(logging.INFO):
        known = sum(s is not None for s in strata_of)
        logger.info(
            "%s split (seed %d): train/val/test = %d/%d/%d; %d of %d items with a survival bin",
            kind,
            split.seed,
            *split.sizes(),
            known,
            len(strata_of),
        )


# --------------------------------------------------------------------------- public splitters


def split_by_patient(
    volumes: Sequence[int],
    *,
    strata: Mapping[int, int] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Split:
    """Split volumes (patients) into train, val and test, stratified by survival bin.

    Part sizes follow ``fractions`` by largest remainder (10 volumes -> 8/1/1);
    val and test get at least one volume when their fraction is > 0, taken from
    train. Every stratum keeps at least one volume in train where possible.

    Args:
        volumes: Volume numbers, each once, at least 3.
        strata: Volume -> survival bin; volumes absent from it form one extra stratum.
            Entries for volumes not in ``volumes`` are ignored.
        fractions: (train, val, test) fractions, each >= 0, summing to 1, train > 0.
        seed: Non-negative seed; the same inputs and seed give the same split.

    Returns:
        A PATIENT-mode :class:`Split` whose parts are disjoint, sorted, and together
        equal ``volumes``.

    Raises:
        DataError: Fewer than 3 volumes, or a volume repeated.
        ConfigError: Invalid ``fractions`` or ``seed``.
    """
    fr = _check_fractions(fractions)
    seed = _check_seed(seed)
    items = sorted(int(v) for v in volumes)
    _check_items(items, "volumes")
    strata_of = [None if strata is None else strata.get(v) for v in items]
    tr, va, te = _stratified_parts(strata_of, fr, np.random.default_rng(seed))
    split = Split(
        SplitMode.PATIENT,
        seed,
        train=tuple(items[i] for i in tr),
        val=tuple(items[i] for i in va),
        test=tuple(items[i] for i in te),
    )
    _log_strata("patient", split, strata_of)
    return split


def split_slices(
    keys: Sequence[tuple[int, int]],
    *,
    strata: Mapping[int, int] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Split:
    """The paper's split: (volume, slice) keys at random, stratified by the volume's bin.

    This leaks patients between parts (see :class:`SplitMode`) and logs a WARNING
    saying so. Sizes and stratification follow :func:`split_by_patient`.

    Args:
        keys: (volume, slice) keys, each once, at least 3.
        strata: Volume -> survival bin; slices of volumes absent from it form one
            extra stratum.
        fractions: (train, val, test) fractions, each >= 0, summing to 1, train > 0.
        seed: Non-negative seed.

    Returns:
        A SLICE-mode :class:`Split` (``leaks_patients`` is True).

    Raises:
        DataError: Fewer than 3 keys, or a key repeated.
        ConfigError: Invalid ``fractions`` or ``seed``.
    """
    fr = _check_fractions(fractions)
    seed = _check_seed(seed)
    items = sorted((int(v), int(s)) for v, s in keys)
    _check_items(items, "slice keys")
    strata_of = [None if strata is None else strata.get(v) for v, _ in items]
    tr, va, te = _stratified_parts(strata_of, fr, np.random.default_rng(seed))
    split = Split(
        SplitMode.SLICE,
        seed,
        train_slices=tuple(items[i] for i in tr),
        val_slices=tuple(items[i] for i in va),
        test_slices=tuple(items[i] for i in te),
    )
    logger.warning(
        "slice split (the paper's): slices of one patient are in train and test, so the "
        "patient leaks and test scores are inflated; use a patient split for real estimates"
    )
    _log_strata("slice", split, strata_of)
    return split


def _check_items(items: Sequence[object], what: str) -> None:
    if len(items) < _MIN_ITEMS:
        raise DataError(f"need at least {_MIN_ITEMS} {what} to split, got {len(items)}")
    repeated = sorted({str(a) for a, b in itertools.pairwise(items) if a == b})
    if repeated:
        raise DataError(f"{what} listed more than once: {summarise(repeated, brackets=False)}")


# --------------------------------------------------------------------------- CSV round trip


def write_split_csv(split: Split, path: Path) -> None:
    """Write ``split`` to ``path`` atomically (temporary file, then ``os.replace``).

    Columns ``volume,slice,part,mode,seed``, one row per volume (PATIENT mode, empty
    ``slice``) or per slice key (SLICE mode), parts in train, val, test order.
    Missing parent folders are created.

    Args:
        split: The split.
        path: Destination file.

    Raises:
        DataError: The file cannot be written.
    """
    path = Path(path)
    mode, seed = split.mode.value, str(split.seed)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    if split.mode is SplitMode.PATIENT:
        for part, vols in zip(PARTS, (split.train, split.val, split.test), strict=True):
            writer.writerows((v, "", part, mode, seed) for v in vols)
    else:
        parts = (split.train_slices, split.val_slices, split.test_slices)
        for part, slice_keys in zip(PARTS, parts, strict=True):
            writer.writerows((v, s, part, mode, seed) for v, s in slice_keys)
    try:
        atomic_write_text(path, buf.getvalue())
    except OSError as exc:
        raise DataError(f"{path}: cannot write split: {exc}") from exc
    logger.info("wrote %s split (%d/%d/%d) to %s", mode, *split.sizes(), path)


def read_split_csv(path: Path) -> Split:
    """Read a split written by :func:`write_split_csv`.

    Headers match case-insensitively and in any order; extra columns are ignored.
    The order of rows within each part is kept.

    Args:
        path: The CSV file.

    Returns:
        The :class:`Split`.

    Raises:
        DataError: The file is missing or unreadable, a column is missing, it has no
            rows, or a row is malformed (bad number, unknown part or mode, mode or
            seed differing from the first row, slice present in PATIENT mode or absent
            in SLICE mode, an item repeated); row errors name the CSV line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return _parse_split(path, fh)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read split: {exc}") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from exc


def _parse_split(path: Path, lines: Iterable[str]) -> Split:
    reader = csv.reader(lines)
    raw_header = next(reader, None)
    if raw_header is None:
        raise DataError(f"{path}: empty file, expected header {','.join(_CSV_COLUMNS)}")
    header = [h.strip().lower() for h in raw_header]
    missing = [c for c in _CSV_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(_CSV_COLUMNS)}"
        )
    col = {c: header.index(c) for c in _CSV_COLUMNS}
    mode: SplitMode | None = None
    seed: int | None = None
    vols: dict[str, list[int]] = {p: [] for p in PARTS}
    slices: dict[str, list[tuple[int, int]]] = {p: [] for p in PARTS}
    first_line: dict[object, int] = {}
    for raw in reader:
        line = reader.line_num
        cells = [c.strip() for c in raw]
        if not any(cells):
            continue
        if len(cells) != len(header):
            raise DataError(f"{path} line {line}: expected {len(header)} fields, got {len(cells)}")
        row = {c: cells[i] for c, i in col.items()}
        try:
            row_mode = SplitMode.parse(row["mode"])
        except ConfigError as exc:
            raise DataError(f"{path} line {line}: {exc}") from None
        row_seed = _parse_int(path, line, "seed", row["seed"])
        if mode is None or seed is None:
            mode, seed = row_mode, row_seed
        elif (row_mode, row_seed) != (mode, seed):
            raise DataError(
                f"{path} line {line}: mode/seed {row_mode.value}/{row_seed} differ from the "
                f"first row's {mode.value}/{seed}"
            )
        part = row["part"].lower()
        if part not in PARTS:
            raise DataError(
                f"{path} line {line}: part {row['part']!r} is not one of {', '.join(PARTS)}"
            )
        volume = _parse_int(path, line, "volume", row["volume"])
        key: object
        if mode is SplitMode.PATIENT:
            if row["slice"]:
                raise DataError(f"{path} line {line}: slice must be empty in a patient split")
            key = volume
            vols[part].append(volume)
        else:
            if not row["slice"]:
                raise DataError(f"{path} line {line}: slice is empty in a slice split")
            slice_key = (volume, _parse_int(path, line, "slice", row["slice"]))
            key = slice_key
            slices[part].append(slice_key)
        if key in first_line:
            raise DataError(f"{path} line {line}: {key} repeats line {first_line[key]}")
        first_line[key] = line
    if mode is None or seed is None:
        raise DataError(f"{path}: no rows after the header")
    try:
        return Split(
            mode,
            seed,
            train=tuple(vols["train"]),
            val=tuple(vols["val"]),
            test=tuple(vols["test"]),
            train_slices=tuple(slices["train"]),
            val_slices=tuple(slices["val"]),
            test_slices=tuple(slices["test"]),
        )
    except ConfigError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _parse_int(path: Path, line: int, column: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"{path} line {line}: {column} {text!r} is not an integer") from None
    if value < 0:
        raise DataError(f"{path} line {line}: {column} {value} must be >= 0")
    return value
