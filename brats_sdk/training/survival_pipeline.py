"""Training the survival classifier on ground-truth masks (the paper's way), split by patient.

Patients without survival data, censored patients (``ALIVE (N days later)``) and
patients without age are left out and counted. Quantile bins and the age scaling are
fitted on the training patients only and saved in the checkpoint. Slices with an
empty mask are left out of training; the test evaluation reports the paper's three
accuracies.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from brats_sdk.atomic import atomic_write_text
from brats_sdk.bins import BinMethod, SurvivalBins
from brats_sdk.constants import MASK_CHANNELS, SURVIVAL_INPUT_SIZE
from brats_sdk.data.clinical import PatientIdMap
from brats_sdk.data.datasets import SurvivalDataset
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.splits import Split
from brats_sdk.distributed import DistContext
from brats_sdk.errors import DataError
from brats_sdk.metrics.levels import SurvivalLevels, VolumeSlices, survival_levels
from brats_sdk.models.survival import (
    AgeScaler,
    SurvivalClassifier,
    SurvivalConfig,
    bin_probabilities,
)
from brats_sdk.run_files import HISTORY_FILE, SURVIVAL_EVAL_FILE, SURVIVAL_FILE
from brats_sdk.training.history import HistoryFile
from brats_sdk.training.loop import FitConfig, FitResult, fit
from brats_sdk.training.observer import TrainingObserver
from brats_sdk.training.resume_options import record_or_compare_options
from brats_sdk.training.run import (
    claim_run_folder,
    data_parallel,
    finish_run,
    open_run,
    part_indices,
    run_metadata,
)
from brats_sdk.training.run_config import TrainRunConfig
from brats_sdk.training.tasks import SurvivalTask

__all__ = ["SurvivalTrainConfig", "SurvivalTrainResult", "train_survival"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SurvivalTrainConfig(TrainRunConfig):
    """Options of ``brats train survival``.

    The options both models take are :class:`~brats_sdk.training.run_config.TrainRunConfig`'s
    (``data_dir`` with ground-truth masks, ``survival_csv``, ``out_dir``, ``seed``,
    ``device``, ...). Keyword-only.

    Attributes:
        bins: ``quantile`` (tertiles of training patients, the paper's) or ``brats``.
        epochs: Maximum epochs (paper: 50).
        batch_size: Slices per step.
        lr: Adam learning rate (paper: 1e-4).
        id_map_csv: CSV ``volume,patient_id`` overriding ``BraTS20_Training_{V:03d}``.
        augment: Random flips and quarter turns of the training masks (the paper: none).
        input_size: Side of the mask images the network takes (paper: 224; smaller is
            faster and coarser).
    """

    epochs: int = 50
    batch_size: int = 32
    bins: BinMethod = BinMethod.QUANTILE
    lr: float = 1e-4
    id_map_csv: Path | None = None
    input_size: int = SURVIVAL_INPUT_SIZE

    def __post_init__(self) -> None:
        TrainRunConfig.__post_init__(self)  # explicit: super() does not work in slotted dataclasses
        object.__setattr__(self, "bins", BinMethod.parse(self.bins))


@dataclass(frozen=True, slots=True)
class SurvivalTrainResult:
    """What :func:`train_survival` produced.

    ``test_slices`` holds the test part's slice probabilities per patient, from which
    ``levels`` is computed (for intervals that resample patients).
    """

    model_path: Path
    split: Split
    fit: FitResult
    bins: SurvivalBins
    age_scaler: AgeScaler
    levels: SurvivalLevels
    patients: dict[str, int]
    excluded: dict[str, int]
    seconds: float
    device: str
    model: SurvivalClassifier
    test_slices: Mapping[int, VolumeSlices] = dataclasses.field(default_factory=dict)


def train_survival(
    config: SurvivalTrainConfig,
    *,
    observer: TrainingObserver | None = None,
    progress: Callable[[int, int], None] | None = None,
    source: DataSource | None = None,
    dist: DistContext | None = None,
) -> SurvivalTrainResult:
    """Train a :class:`SurvivalClassifier` into ``config.out_dir``.

    Writes ``split.csv`` (or reuses it), ``scan.json``, ``history.csv``,
    ``survival/{last,best}.pt``, ``survival.pt`` and ``survival_eval.json``.

    Raises:
        DataError: Too few patients with survival data to form the bins or the split;
            another run (``brats train`` or ``brats predict``) holds ``config.out_dir``.
    """
    with claim_run_folder(config.out_dir, dist):
        return _train_survival(config, observer=observer, progress=progress, source=source, dist=dist)


def _train_survival(
    config: SurvivalTrainConfig,
    *,
    observer: TrainingObserver | None,
    progress: Callable[[int, int], None] | None,
    source: DataSource | None,
    dist: DistContext | None,
) -> SurvivalTrainResult:
    t0 = time.perf_counter()
    id_map = PatientIdMap.from_csv(config.id_map_csv) if config.id_map_csv is not None else PatientIdMap()
    run = open_run(config, progress=progress, source=source, dist=dist, cohort=True, bin_method=config.bins, id_map=id_map)
    device, dist, source, scan, split, out = run.device, run.dist, run.source, run.scan, run.split, config.out_dir
    record_or_compare_options(out, "survival", config, resume=config.resume, dist=dist)
    if run.cohort is None or run.survival_csv is None:
        raise DataError(f"{config.data_dir}: no survival cohort could be formed")  # open_run forms it or raises
    cohort, survival_csv = run.cohort, run.survival_csv
    excluded = {
        "no_survival_row": cohort.n_no_survival,
        "censored": cohort.n_censored,
        "missing_days": cohort.n_missing_days,
        "missing_age": cohort.n_missing_age,
    }
    entries = {e.volume: e for e in cohort.entries}
    usable = set(entries)
    facts = scan.slices
    parts = part_indices(source, split, volumes=usable)
    train_patients = sorted({facts[i].volume for i in parts.train})
    if not train_patients:
        raise DataError(f"{survival_csv}: no training patient has usable survival data ({cohort.summary()})")
    train_days = [entries[v].days for v in train_patients]
    bins = (
        SurvivalBins.quantile(train_days) if config.bins is BinMethod.QUANTILE else SurvivalBins.brats().with_observed(train_days)
    )
    scaler = AgeScaler.fit([entries[v].age for v in train_patients])
    bin_of = {v: int(bins.assign(e.days)) for v, e in entries.items()}
    scaled_age = {v: scaler.transform(e.age) for v, e in entries.items()}
    with_tumour = [i for i in parts.train if facts[i].has_tumour], [i for i in parts.val if facts[i].has_tumour]
    if not with_tumour[0] or not with_tumour[1]:
        raise DataError(
            f"{config.data_dir}: no tumour slice of a patient with survival data in the "
            f"{'training' if not with_tumour[0] else 'validation'} part; use more volumes"
        )
    train_ds = SurvivalDataset(source, with_tumour[0], scaled_age, bin_of, augment=config.augment)
    val_ds = SurvivalDataset(source, with_tumour[1], scaled_age, bin_of)
    model = SurvivalClassifier(
        SurvivalConfig(n_bins=bins.n_bins, encoder_weights=config.encoder_weights, input_size=config.input_size),
        bins=bins, age_scaler=scaler,
    ).to(device)
    fit_cfg = FitConfig(
        lr=config.lr, max_epochs=config.epochs, step_size=config.step_size, patience=config.patience,
        batch_size=config.batch_size, max_steps_per_epoch=config.max_steps_per_epoch,
        num_workers=config.num_workers, amp=config.amp, seed=config.seed,
    )
    history = HistoryFile(out / HISTORY_FILE) if dist.is_main else None
    result = fit(
        model=data_parallel(model, dist, device), task=SurvivalTask(input_size=config.input_size), train_data=train_ds, val_data=val_ds, config=fit_cfg, device=device,
        checkpoint_dir=out / "survival", stage="survival", resume=config.resume, history=history,
        observer=observer, dist=dist,
    )
    test_ds = SurvivalDataset(source, parts.test, scaled_age, bin_of)
    test_slices = _test_slices(model, test_ds, config.batch_size, device, [facts[i].has_tumour for i in parts.test])
    levels = survival_levels(test_slices, bins.n_bins)
    patients = {
        "train": len(train_patients),
        "val": len({facts[i].volume for i in parts.val}),
        "test": len({facts[i].volume for i in parts.test}),
    }
    metadata: dict[str, object] = {
        "architecture": "torchvision.resnet50 + age branch (paper)",
        "mask_channels": list(MASK_CHANNELS),
        "trained_on": "ground-truth masks",
        "patients": patients,
        "excluded": excluded,
        "val_metrics": dict(result.best_metrics),
        "test": levels.headline(),
        **run_metadata(config, split, source),
    }
    model_path = out / SURVIVAL_FILE

    def write() -> None:
        model.save(model_path, metadata=metadata)
        atomic_write_text(out / SURVIVAL_EVAL_FILE, json.dumps(_levels_json(levels, bins, split, patients, excluded), indent=2))

    finish_run(dist, write)
    return SurvivalTrainResult(
        model_path=model_path, split=split, fit=result, bins=bins, age_scaler=scaler, levels=levels,
        patients=patients, excluded=excluded, seconds=time.perf_counter() - t0, device=str(device),
        model=model, test_slices=test_slices,
    )


def _test_slices(
    model: SurvivalClassifier,
    data: SurvivalDataset,
    batch_size: int,
    device: torch.device,
    has_tumour: list[bool],
) -> dict[int, VolumeSlices]:
    """Per test patient, the probabilities of its slices and which masks are empty."""
    if len(data) == 0:
        return {}
    probs: list[np.ndarray] = []
    volumes: list[int] = []
    targets: list[int] = []
    model.eval()
    with torch.inference_mode():
        for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
            batch_probs = bin_probabilities(model, batch["mask"].to(device), batch["age"], size=model.config.input_size)
            probs.append(batch_probs.cpu().numpy())
            volumes.extend(int(v) for v in batch["volume"])
            targets.extend(int(t) for t in batch["target"])
    p = np.concatenate(probs)
    vol = np.asarray(volumes)
    empty = ~np.asarray(has_tumour)
    return {
        v: VolumeSlices(true_bin=targets[int(np.flatnonzero(vol == v)[0])], probs=p[vol == v], empty=empty[vol == v])
        for v in sorted(set(volumes))
    }


def _levels_json(
    levels: SurvivalLevels, bins: SurvivalBins, split: Split, patients: dict[str, int], excluded: dict[str, int]
) -> dict[str, object]:
    def scores(name: str) -> object:
        s = getattr(levels, name)
        if s is None:
            return None
        return {
            "accuracy": s.accuracy, "n": s.n, "per_bin_accuracy": list(s.per_bin_accuracy),
            "per_bin_n": list(s.per_bin_n), "confusion": s.confusion, "auc": list(s.auc),
        }

    return {
        "split_mode": split.mode.value,
        "leaks_patients": split.leaks_patients,
        "bins": bins.to_dict(),
        "bin_ranges": [bins.range_text(b) for b in range(bins.n_bins)],
        "patients": patients,
        "excluded": excluded,
        "per_slice": scores("per_slice"),
        "per_slice_nonempty": scores("per_slice_nonempty"),
        "per_patient": scores("per_patient"),
        "patients_without_tumour": levels.patients_without_tumour,
    }
