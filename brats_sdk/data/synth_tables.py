"""The synthetic cohort's clinical tables: ``survival_info.csv`` and ``name_mapping.csv``.

Part of :mod:`brats_sdk.data.synth`, whose docstring gives the survival model. Per-patient
values come from ``numpy.random.default_rng([seed, V, stream])`` (streams 3 and 4 here),
so they do not depend on the cohort's size; which volumes get a survival row, which one is
censored and which resections are NA is decided per cohort.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from brats_sdk.constants import DEFAULT_PATIENT_ID_FORMAT

__all__ = ["NAME_MAPPING_HEADER", "SURVIVAL_HEADER", "name_mapping_rows", "survival_rows", "volume_rng"]

_STREAM_CLINICAL = 3
_STREAM_IDS = 4
_COHORT_STREAM = 0x5EED

_SURVIVAL_MIN_DAYS = 5
# log(days) = log(BASE) - AGE_COEF * (age - 55) - SIZE_COEF * (r - 0.09) + N(0, NOISE_SD^2)
_SURVIVAL_BASE_DAYS = 400.0
_SURVIVAL_AGE_COEF = 0.04
_SURVIVAL_SIZE_COEF = 12.0
_SURVIVAL_NOISE_SD = 0.4
_SURVIVAL_MAX_DAYS = 1800
_AGE_RANGE = (20.0, 85.0)
# Cohorts up to this size get survival rows for all volumes but one, so that small
# test cohorts still form three quantile bins with non-empty patient splits.
_SMALL_COHORT = 12

SURVIVAL_HEADER = ("Brats20ID", "Age", "Survival_days", "Extent_of_Resection")
NAME_MAPPING_HEADER = (
    "Grade",
    "BraTS_2017_subject_ID",
    "BraTS_2018_subject_ID",
    "TCGA_TCIA_subject_ID",
    "BraTS_2019_subject_ID",
    "BraTS_2020_subject_ID",
)


def volume_rng(seed: int, volume: int, stream: int) -> np.random.Generator:
    """The random stream ``stream`` of one volume of the cohort with seed ``seed``."""
    return np.random.default_rng([seed, volume, stream])


@dataclass(frozen=True)
class _Clinical:
    """One patient's clinical row before the per-cohort choices."""

    volume: int
    age: float
    days: int
    resection: str


def _clinical(seed: int, volume: int, radius: float) -> _Clinical:
    rng = volume_rng(seed, volume, _STREAM_CLINICAL)
    age = float(np.clip(rng.normal(60.0, 13.0), *_AGE_RANGE))
    log_days = (
        math.log(_SURVIVAL_BASE_DAYS)
        - _SURVIVAL_AGE_COEF * (age - 55.0)
        - _SURVIVAL_SIZE_COEF * (radius - 0.09)
        + rng.normal(0.0, _SURVIVAL_NOISE_SD)
    )
    days = int(np.clip(round(math.exp(log_days)), _SURVIVAL_MIN_DAYS, _SURVIVAL_MAX_DAYS))
    u = float(rng.random())
    resection = "NA" if u < 0.30 else ("STR" if u < 0.40 else "GTR")
    return _Clinical(volume=volume, age=round(age, 3), days=days, resection=resection)


def survival_rows(
    seed: int, volumes: int, radius_of: Callable[[int], float]
) -> tuple[list[tuple[str, str, str, str]], set[int]]:
    """``survival_info.csv`` rows and the set of volumes that have one.

    Args:
        seed: The cohort's seed.
        volumes: Number of volumes, numbered 1..volumes.
        radius_of: A volume's tumour radius (fraction of the slice size), which
            shortens survival.
    """
    n = volumes
    rng = np.random.default_rng([seed, _COHORT_STREAM, n])
    order = [int(v) + 1 for v in rng.permutation(n)]
    small_rows = n - 1 if n >= 4 else n
    n_rows = small_rows if n <= _SMALL_COHORT else round(2 * n / 3)
    included = sorted(order[:n_rows])
    censored = included[int(rng.integers(len(included)))]
    clinical = {v: _clinical(seed, v, radius_of(v)) for v in included}
    # Distinct days so that quantile bins never collapse on ties.
    used: set[int] = set()
    days: dict[int, int] = {}
    for v in included:
        d = clinical[v].days
        step = 1 if d < _SURVIVAL_MAX_DAYS else -1
        while d in used:
            d += step
        used.add(d)
        days[v] = d
    resection = {v: clinical[v].resection for v in included}
    # At least one NA resection and, given two rows or more, at least one GTR.
    picks = [included[int(i)] for i in rng.permutation(len(included))]
    if "NA" not in resection.values():
        resection[picks[0]] = "NA"
    if "GTR" not in resection.values() and len(picks) > 1:
        resection[picks[1]] = "GTR"
    rows = []
    for v in included:
        text = f"ALIVE ({days[v]} days later)" if v == censored else str(days[v])
        rows.append(
            (
                DEFAULT_PATIENT_ID_FORMAT.format(volume=v),
                f"{clinical[v].age:.3f}",
                text,
                resection[v],
            )
        )
    return rows, set(included)


def _letters(k: int) -> str:
    out = ""
    for _ in range(3):
        out = chr(ord("A") + k % 26) + out
        k //= 26
    return out


def name_mapping_rows(seed: int, volumes: int, with_survival: set[int]) -> list[tuple[str, ...]]:
    """``name_mapping.csv`` rows for volumes 1..volumes (LGG only among those without survival)."""
    crng = np.random.default_rng([seed, _COHORT_STREAM, volumes, 1])
    rows: list[tuple[str, ...]] = []
    for v in range(1, volumes + 1):
        lgg = v not in with_survival and crng.random() < 0.57
        rng = volume_rng(seed, v, _STREAM_IDS)
        inst = str(rng.choice(["CBICA", "TCIA02", "TCIA08", "TMC", "2013"]))
        code = _letters(v + 17 * seed) if inst == "CBICA" else f"{v % 1000:03d}"
        has18 = rng.random() < 0.75
        has17 = has18 and rng.random() < 0.8
        tcga = inst.startswith("TCIA") or inst == "2013"
        tcga_id = f"TCGA-{rng.choice(['02', '06', '08', '12', '14', '19', '76'])}-{int(rng.integers(10000)):04d}"
        rows.append(
            (
                "LGG" if lgg else "HGG",
                f"Brats17_{inst}_{code}_1" if has17 else "NA",
                f"Brats18_{inst}_{code}_1" if has18 else "NA",
                tcga_id if tcga else "NA",
                f"BraTS19_{inst}_{code}_1",
                DEFAULT_PATIENT_ID_FORMAT.format(volume=v),
            )
        )
    return rows
