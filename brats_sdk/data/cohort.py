"""Which volumes can train the survival network, and why the others cannot.

Joins the volumes of a data folder to the rows of ``survival_info.csv`` through the
volume -> patient id map and keeps the usable ones: numeric days, not censored, known age.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from brats_sdk.data.clinical import PatientIdMap, SurvivalRecord
from brats_sdk.errors import DataError

__all__ = ["CohortEntry", "SurvivalCohort", "survival_cohort"]

logger = logging.getLogger(__name__)


class CohortEntry(NamedTuple):
    """One volume with usable survival data."""

    volume: int
    patient_id: str
    age: float
    days: float
    resection: str


@dataclass(frozen=True, slots=True)
class SurvivalCohort:
    """The volumes usable for survival training and why the others were left out.

    A volume is counted under the first reason that applies, in this order:
    no survival row, censored, missing days, missing age.

    Attributes:
        entries: Usable volumes (numeric days, not censored, known age), in the order
            of the ``volumes`` argument.
        n_no_survival: Volumes whose patient has no row in ``survival_info.csv``.
        n_censored: Volumes whose patient was alive at last follow-up.
        n_missing_days: Volumes whose row has no Survival_days.
        n_missing_age: Volumes whose row has no Age.
    """

    entries: tuple[CohortEntry, ...]
    n_no_survival: int = 0
    n_censored: int = 0
    n_missing_days: int = 0
    n_missing_age: int = 0

    @property
    def n_excluded(self) -> int:
        """Volumes left out, all reasons together."""
        return self.n_no_survival + self.n_censored + self.n_missing_days + self.n_missing_age

    @property
    def volumes(self) -> tuple[int, ...]:
        """Volume numbers of the usable entries."""
        return tuple(e.volume for e in self.entries)

    def summary(self) -> str:
        """One line for logs, e.g. ``236 usable of 369 volumes; excluded: 133 no survival row``."""
        reasons = [
            (self.n_no_survival, "no survival row"),
            (self.n_censored, "censored"),
            (self.n_missing_days, "missing days"),
            (self.n_missing_age, "missing age"),
        ]
        excluded = ", ".join(f"{n} {why}" for n, why in reasons if n) or "none"
        return (
            f"{len(self.entries)} usable of {len(self.entries) + self.n_excluded} volumes; "
            f"excluded: {excluded}"
        )


def survival_cohort(
    records: Sequence[SurvivalRecord],
    volumes: Sequence[int],
    id_map: PatientIdMap | None = None,
) -> SurvivalCohort:
    """Match volumes to survival records and keep those usable for survival training.

    Args:
        records: Rows of ``survival_info.csv`` (see :func:`read_survival_csv`).
        volumes: Volume numbers to consider; each must appear once.
        id_map: Volume -> patient id; the default format when None.

    Returns:
        The :class:`SurvivalCohort`; its summary is logged at INFO level.

    Raises:
        DataError: ``volumes`` repeats a volume, or ``records`` repeats a patient id.
    """
    id_map = id_map if id_map is not None else PatientIdMap()
    by_id: dict[str, SurvivalRecord] = {}
    for rec in records:
        if rec.patient_id in by_id:
            raise DataError(f"duplicate survival record for patient {rec.patient_id!r}")
        by_id[rec.patient_id] = rec
    dupes = sorted(v for v, n in Counter(volumes).items() if n > 1)
    if dupes:
        raise DataError(f"volume(s) listed more than once: {', '.join(map(str, dupes))}")
    entries: list[CohortEntry] = []
    counts = {"no_survival": 0, "censored": 0, "missing_days": 0, "missing_age": 0}
    for volume in volumes:
        pid = id_map.patient_id(volume)
        row = by_id.get(pid)
        if row is None:
            counts["no_survival"] += 1
        elif row.censored:
            counts["censored"] += 1
        elif row.survival_days is None:
            counts["missing_days"] += 1
        elif row.age is None:
            counts["missing_age"] += 1
        else:
            entries.append(CohortEntry(volume, pid, row.age, row.survival_days, row.resection))
    cohort = SurvivalCohort(
        tuple(entries),
        n_no_survival=counts["no_survival"],
        n_censored=counts["censored"],
        n_missing_days=counts["missing_days"],
        n_missing_age=counts["missing_age"],
    )
    logger.info("survival cohort: %s", cohort.summary())
    return cohort
