"""``brats audit``: the survival classifier trained twice, split by slice and by patient,
with the baselines beside it on the patient split's test patients.

Both trainings use the same data, bin method, budget (epochs, batch size, learning rate,
early stopping), seed, input size and part fractions; only what is split differs. Each
runs in its own folder (``slice_split/``, ``patient_split/``) through the ordinary survival
pipeline, whose checkpoints make an interrupted audit resumable; a finished training
leaves ``run.json`` (the test patients' counts), so ``--resume`` skips it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from brats_sdk.atomic import atomic_write_text
from brats_sdk.audit.baselines import PatientFeatures
from brats_sdk.audit.checks import check_cohort
from brats_sdk.audit.result import NETWORK_ROWS, PATIENT_SPLIT, SLICE_SPLIT, AuditResult, AuditRow
from brats_sdk.audit.scoring import (
    PatientCounts,
    baseline_rows,
    network_row,
    patient_counts,
    training_volumes,
)
from brats_sdk.audit.write import AUDIT_JSON, plain_notes, write_audit
from brats_sdk.bins import BinMethod, SurvivalBins
from brats_sdk.constants import SURVIVAL_INPUT_SIZE, VOXEL_SPACING_MM
from brats_sdk.data.clinical import PatientIdMap, read_survival_csv
from brats_sdk.data.cohort import SurvivalCohort, survival_cohort
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.scan import SourceScan
from brats_sdk.data.sources import DataFormat, open_source
from brats_sdk.data.splits import DEFAULT_FRACTIONS, Split, SplitMode
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.json_files import read_json_object
from brats_sdk.run_files import SCAN_FILE, SPLIT_FILE
from brats_sdk.training.observer import TrainingObserver
from brats_sdk.training.run import load_or_plan_split, load_or_scan, require_survival_csv
from brats_sdk.training.survival_pipeline import SurvivalTrainConfig, train_survival

__all__ = ["RUN_JSON", "SUBDIRS", "AuditConfig", "run_audit"]

logger = logging.getLogger(__name__)

RUN_JSON = "run.json"
#: The folder of each training inside the audit folder.
SUBDIRS: dict[str, str] = {SLICE_SPLIT: "slice_split", PATIENT_SPLIT: "patient_split"}
_MODES = {SLICE_SPLIT: SplitMode.SLICE, PATIENT_SPLIT: SplitMode.PATIENT}


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Options of ``brats audit``; the budget is the same for both trainings.

    Attributes:
        data_dir: Data with ground-truth masks (any layout the SDK reads).
        out_dir: The audit folder.
        survival_csv: ``survival_info.csv``; default: the one beside the data.
        bins: ``quantile`` (tertiles of the training patients, the paper's) or ``brats``.
        epochs: Maximum epochs of each training.
        batch_size: Slices per step.
        lr: Adam learning rate.
        patience: Early-stopping patience (epochs without a better validation loss).
        step_size: StepLR period in epochs.
        seed: Seed of both splits, the weights and the sample order.
        device: Device request.
        input_size: Side of the mask images the network takes (paper: 224).
        fractions: (train, val, test) fractions of both splits (of patients, of slices).
        max_volumes: Use only the first N volumes.
        max_steps_per_epoch: Cap on steps per epoch.
        num_workers: DataLoader workers.
        resume: Continue an interrupted audit in ``out_dir``.
        data_format: Layout of ``data_dir``.
        id_map_csv: CSV ``volume,patient_id`` overriding ``BraTS20_Training_{V:03d}``.
    """

    data_dir: Path
    out_dir: Path
    survival_csv: Path | None = None
    bins: BinMethod = BinMethod.QUANTILE
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    patience: int = 3
    step_size: int = 10
    seed: int = 0
    device: str = "auto"
    input_size: int = SURVIVAL_INPUT_SIZE
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    max_volumes: int | None = None
    max_steps_per_epoch: int | None = None
    num_workers: int = 0
    resume: bool = False
    data_format: DataFormat = DataFormat.AUTO
    id_map_csv: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bins", BinMethod.parse(self.bins))
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs, patience and batch size must be >= 1, got {self.epochs}, {self.patience}, {self.batch_size}")


def run_audit(
    config: AuditConfig,
    *,
    observer: TrainingObserver | None = None,
    on_stage: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditResult:
    """Run the audit into ``config.out_dir`` and write ``audit.json``, ``audit.csv``, ``audit.html``.

    Args:
        config: The options.
        observer: Receives both trainings' progress.
        on_stage: Called with a line before each stage (``training: slice split``, ...).
        progress: Called as ``progress(done, total)`` in slices scanned (first run only).

    Returns:
        The audit: rows ``slice split``, ``patient split``, ``majority``, ``age only``,
        ``age + volumes`` and the inflation.

    Raises:
        DataError: The folder holds another audit (without ``resume``), no survival CSV, no
            usable survival row, every patient censored, a bin without patients.
    """
    t0 = time.perf_counter()
    out = Path(config.out_dir)
    started = (out / AUDIT_JSON).exists() or any((out / d / SPLIT_FILE).exists() for d in SUBDIRS.values())
    if started and not config.resume:
        raise DataError(f"{out}: already holds an audit; pass --resume to continue it, or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    source = open_source(config.data_dir, fmt=config.data_format, max_volumes=config.max_volumes)
    csv = require_survival_csv(config.data_dir, config.data_format, config.survival_csv, source=source)
    stage = on_stage or (lambda _line: None)
    stage("scanning the data")
    scan = load_or_scan(source, out, progress=progress)
    volumes = sorted({f.volume for f in scan.slices})
    id_map = PatientIdMap.from_csv(config.id_map_csv) if config.id_map_csv is not None else PatientIdMap()
    cohort = survival_cohort(read_survival_csv(csv), volumes, id_map)
    check_cohort(cohort, csv, config.bins)
    seconds: dict[str, float] = {}
    runs: dict[str, dict[str, object]] = {}
    for name in NETWORK_ROWS:
        sub = out / SUBDIRS[name]
        record = _finished(sub)
        if record is None:
            stage(f"training: {name}")
            t = time.perf_counter()
            record = _train(config, name, sub, source, scan, cohort, csv, observer)
            logger.info("%s trained in %.0f s", name, time.perf_counter() - t)
        runs[name] = record
        seconds[name] = float(record["seconds"])  # type: ignore[arg-type]  # written by _train
    rows = [_network_row(name, runs[name], config) for name in NETWORK_ROWS]
    rows += _baselines(runs[PATIENT_SPLIT], cohort, scan, config)
    slice_acc, patient_acc = rows[0].patient.value, rows[1].patient.value
    inflation = None if slice_acc is None or patient_acc is None else slice_acc - patient_acc
    seconds["total"] = time.perf_counter() - t0
    result = AuditResult(
        kind="networks",
        rows=tuple(rows),
        inflation=inflation,
        settings=_settings(config, csv, source),
        counts={"patients_with_survival": len(cohort.entries), "volumes": len(volumes), "excluded": cohort_excluded(cohort)},
        seconds=seconds,
    )
    result = dataclasses.replace(result, notes=plain_notes(result))
    write_audit(result, out)
    return result


def cohort_excluded(cohort: SurvivalCohort) -> dict[str, int]:
    """Volumes left out of survival, per reason."""
    return {
        "no_survival_row": cohort.n_no_survival, "censored": cohort.n_censored,
        "missing_days": cohort.n_missing_days, "missing_age": cohort.n_missing_age,
    }


def _settings(config: AuditConfig, csv: Path, source: DataSource) -> dict[str, object]:
    return {
        "data_dir": str(config.data_dir), "survival_csv": str(csv), "bins": config.bins.value,
        "epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr, "patience": config.patience,
        "step_size": config.step_size, "seed": config.seed, "input_size": config.input_size,
        "fractions": list(config.fractions), "device": config.device, "slices": len(source),
    }


def _finished(sub: Path) -> dict[str, object] | None:
    path = sub / RUN_JSON
    if not path.is_file():
        return None
    record = read_json_object(path, hint="; delete it to train again")
    logger.info("reusing the finished training in %s", sub)
    return record


def _plan(name: str, sub: Path, cohort: SurvivalCohort, scan: SourceScan, config: AuditConfig) -> Split:
    """The training's split of the patients with survival data (the audit scores only them),
    reused from ``sub/split.csv`` when an interrupted audit resumes."""
    usable = set(cohort.volumes)
    return load_or_plan_split(
        sub, volumes=sorted(usable), keys=[(f.volume, f.index) for f in scan.slices if f.volume in usable],
        mode=_MODES[name], seed=config.seed, survival_csv=None, bin_method=config.bins, cohort=cohort,
        fractions=config.fractions,
    )


def _train(
    config: AuditConfig,
    name: str,
    sub: Path,
    source: DataSource,
    scan: SourceScan,
    cohort: SurvivalCohort,
    csv: Path,
    observer: TrainingObserver | None,
) -> dict[str, object]:
    t0 = time.perf_counter()
    sub.mkdir(parents=True, exist_ok=True)
    if not (sub / SCAN_FILE).exists():
        shutil.copyfile(Path(config.out_dir) / SCAN_FILE, sub / SCAN_FILE)
    split = _plan(name, sub, cohort, scan, config)
    result = train_survival(
        SurvivalTrainConfig(
            data_dir=config.data_dir, survival_csv=csv, out_dir=sub, bins=config.bins, epochs=config.epochs,
            batch_size=config.batch_size, lr=config.lr, patience=config.patience, step_size=config.step_size,
            seed=config.seed, num_workers=config.num_workers, device=config.device, split_mode=_MODES[name],
            id_map_csv=config.id_map_csv, max_steps_per_epoch=config.max_steps_per_epoch,
            resume=(sub / "survival" / "last.pt").exists(), data_format=config.data_format,
            input_size=config.input_size,
        ),
        observer=observer,
        source=source,
    )
    usable = set(cohort.volumes)
    record: dict[str, object] = {
        "name": name,
        "split_mode": split.mode.value,
        "bins": result.bins.to_dict(),
        "train_volumes": sorted(training_volumes(split) & usable),
        "patients": [dataclasses.asdict(p) for p in patient_counts(result.test_slices)],
        "epochs_run": result.fit.epochs_run,
        "best_epoch": result.fit.best_epoch,
        "device": result.device,
        "seconds": time.perf_counter() - t0,
    }
    atomic_write_text(sub / RUN_JSON, json.dumps(record, indent=1))
    return record


def _patients(record: dict[str, object]) -> list[PatientCounts]:
    raw = record.get("patients")
    if not isinstance(raw, list):
        raise DataError(f"{record.get('name')}: run record without patients; delete its run.json to train again")
    return [PatientCounts(**p) for p in raw]


def _bins(record: dict[str, object]) -> SurvivalBins:
    raw = record.get("bins")
    if not isinstance(raw, dict):
        raise DataError(f"{record.get('name')}: run record without bins; delete its run.json to train again")
    return SurvivalBins.from_dict(raw)


def _train_set(record: dict[str, object]) -> set[int]:
    raw = record.get("train_volumes")
    return {int(v) for v in raw} if isinstance(raw, list) else set()


def _network_row(name: str, record: dict[str, object], config: AuditConfig) -> AuditRow:
    bins = _bins(record)
    note = (
        f"trained {record.get('epochs_run')} epochs (best {record.get('best_epoch')}) on {record.get('device')}"
        + ("; test slices come from training patients" if name == SLICE_SPLIT else "")
    )
    return network_row(
        name, bins.method.value, _patients(record), train_volumes=_train_set(record), n_bins=bins.n_bins,
        cutoffs=bins.cutoffs, seed=config.seed, note=note,
    )


def _baselines(record: dict[str, object], cohort: SurvivalCohort, scan: SourceScan, config: AuditConfig) -> list[AuditRow]:
    """Majority, age only and age + volumes on the patient split's test patients, fitted on
    its training patients, in its bins."""
    bins = _bins(record)
    ml = _tumour_ml(scan)
    entries = {e.volume: e for e in cohort.entries}

    def features(v: int) -> PatientFeatures:
        e = entries[v]
        return PatientFeatures(v, e.age, int(bins.assign(e.days)), ml.get(v, (0.0, 0.0, 0.0)))

    patients = [p for p in _patients(record) if p.vote is not None]
    train = [features(v) for v in sorted(_train_set(record)) if v in entries]
    test = [features(p.volume) for p in patients]
    counts = {p.volume: (p.slices, p.nonempty) for p in patients}
    return baseline_rows(
        train, test, bins=bins.method.value, n_bins=bins.n_bins, cutoffs=bins.cutoffs, slice_counts=counts,
        seed=config.seed,
    )


def _tumour_ml(scan: SourceScan) -> dict[int, tuple[float, float, float]]:
    """NCR, ED and ET volumes in mL per volume, from the scan's per-slice voxel counts."""
    voxel_ml = VOXEL_SPACING_MM[0] * VOXEL_SPACING_MM[1] * VOXEL_SPACING_MM[2] / 1000.0
    sums: dict[int, list[float]] = {}
    for f in scan.slices:
        acc = sums.setdefault(f.volume, [0.0, 0.0, 0.0])
        for c, n in enumerate(f.tumour_pixels[:3]):
            acc[c] += n * voxel_ml
    return {v: (a[0], a[1], a[2]) for v, a in sums.items()}
