"""Bad input an audit refuses up front, each with a one-line message: no survival rows,
every patient censored, a bin without patients, too few patients to split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from brats_sdk.bins import BinMethod, SurvivalBins
from brats_sdk.data.clinical import SurvivalRecord
from brats_sdk.data.cohort import SurvivalCohort
from brats_sdk.errors import DataError

__all__ = ["MIN_PATIENTS", "check_bins", "check_cohort", "check_records"]

#: Fewest usable patients an audit accepts (a split needs 3; a 5-fold CV 5).
MIN_PATIENTS = 5


def check_bins(days: Sequence[float], method: BinMethod, where: Path | str) -> SurvivalBins:
    """The bins of ``days`` by ``method``; a bin without patients is an error.

    Raises:
        DataError: A bin would hold no patient (one line, naming ``where``).
    """
    try:
        if method is BinMethod.QUANTILE:
            return SurvivalBins.quantile(days)
        return SurvivalBins.brats().with_observed(days)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None


def check_records(records: Sequence[SurvivalRecord], where: Path | str) -> None:
    """A survival table an audit can use: rows, some not censored, with days and age.

    Raises:
        DataError: No rows, every patient censored, or no row with both days and age.
    """
    if not records:
        raise DataError(f"{where}: no survival rows")
    if all(r.censored for r in records):
        raise DataError(f"{where}: all {len(records)} patients are censored (ALIVE); survival bins need known survival")
    usable = [r for r in records if not r.censored and r.survival_days is not None and r.age is not None]
    if len(usable) < MIN_PATIENTS:
        raise DataError(f"{where}: {len(usable)} patients with survival days and age; an audit needs at least {MIN_PATIENTS}")


def check_cohort(cohort: SurvivalCohort, where: Path | str, method: BinMethod) -> SurvivalBins:
    """The data's patients with survival data, checked as :func:`check_records` and
    :func:`check_bins` do; returns the bins of all usable patients (for the check only).

    Raises:
        DataError: As :func:`check_records` and :func:`check_bins`.
    """
    n_rows = len(cohort.entries) + cohort.n_censored + cohort.n_missing_days + cohort.n_missing_age
    if n_rows == 0:
        raise DataError(f"{where}: no survival rows for the data's {cohort.n_no_survival} volumes")
    if not cohort.entries and cohort.n_censored == n_rows:
        raise DataError(f"{where}: all {n_rows} patients of the data are censored (ALIVE); survival bins need known survival")
    if len(cohort.entries) < MIN_PATIENTS:
        raise DataError(
            f"{where}: {len(cohort.entries)} patients of the data have usable survival data "
            f"({cohort.summary()}); an audit needs at least {MIN_PATIENTS}"
        )
    return check_bins([e.days for e in cohort.entries], method, where)
