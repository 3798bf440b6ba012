"""Preparing a run folder: the cached scan of the data and the split, shared by both models.

``RUN_DIR/scan.json`` holds every volume's normalisation statistics and per-slice
facts, so a resumed run or a second model trained into the same folder does not
read the data twice. ``RUN_DIR/split.csv`` is written once and reused, so that
``brats train all`` trains both models on the same patients and a split can be
audited or handed to another run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from brats_sdk._version import __version__
from brats_sdk.atomic import remove_orphan_temps
from brats_sdk.bins import BinMethod, SurvivalBins
from brats_sdk.constants import SURVIVAL_CSV
from brats_sdk.data.clinical import PatientIdMap, read_survival_csv
from brats_sdk.data.cohort import SurvivalCohort, survival_cohort
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.scan import SourceScan, scan_source
from brats_sdk.data.sources import DataFormat, open_source, source_dirs
from brats_sdk.data.splits import (
    DEFAULT_FRACTIONS,
    Split,
    SplitMode,
    read_split_csv,
    split_by_patient,
    split_slices,
    write_split_csv,
)
from brats_sdk.device import resolve_device
from brats_sdk.distributed import DistContext, is_main_process
from brats_sdk.errors import DataError
from brats_sdk.options import config_to_dict
from brats_sdk.out_dir import claim_out_dir, prepare_out_dir
from brats_sdk.run_files import SCAN_FILE, SPLIT_FILE
from brats_sdk.summarise import summarise
from brats_sdk.training.run_config import TrainRunConfig

__all__ = [
    "OpenedRun",
    "PartIndices",
    "RunStart",
    "claim_run_folder",
    "data_parallel",
    "find_survival_csv",
    "finish_run",
    "load_or_plan_split",
    "load_or_scan",
    "open_run",
    "part_indices",
    "require_survival_csv",
    "run_metadata",
    "start_run",
    "survival_strata",
]

logger = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class RunStart:
    """Where a training run executes and what it reads."""

    device: torch.device
    dist: DistContext
    source: DataSource


def claim_run_folder(out_dir: Path, dist: DistContext | None = None) -> AbstractContextManager[Path]:
    """Own the run folder for one training: a second ``brats train`` or ``brats predict``
    into it stops with a line naming this run (:func:`~brats_sdk.out_dir.claim_out_dir`).

    Under torchrun only rank 0 takes the lock (its rank from ``dist``, else from the
    environment); the lock goes however the run ends.

    Raises:
        DataError: On entering, when the folder cannot be created or another run holds it.
    """
    return claim_out_dir(out_dir, main=dist.is_main if dist is not None else is_main_process())


def start_run(
    *,
    device: str,
    seed: int,
    out_dir: Path,
    data_dir: Path,
    data_format: DataFormat,
    volumes: Sequence[int] | None,
    max_volumes: int | None,
    source: DataSource | None = None,
    dist: DistContext | None = None,
) -> RunStart:
    """What every training pipeline does first: resolve the device, join the process group
    (under torchrun each rank takes its local GPU), seed, create the run folder (removing
    the temporary files of writes a killed run left), open the data.

    Raises:
        DataError: The run folder cannot be created or written, or the data cannot be opened.
    """
    resolved = resolve_device(device)
    dist = dist or DistContext.from_env(resolved.type)
    if dist.is_distributed and resolved.type == "cuda":
        resolved = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(resolved)
    torch.manual_seed(seed)
    prepare_out_dir(out_dir)
    if dist.is_main:
        # Temporary files of checkpoint writes a killed run left (`.last.pt.<random>.tmp`).
        for orphan in remove_orphan_temps(out_dir, recursive=True):
            logger.info("removed %s, left by an interrupted write", orphan)
    if source is None:
        source = open_source(data_dir, fmt=data_format, volumes=volumes, max_volumes=max_volumes)
    return RunStart(resolved, dist, source)


@dataclass(frozen=True, slots=True)
class OpenedRun:
    """A training run ready for its model: where it executes, its data, their scan and split.

    Attributes:
        device: The resolved device (under torchrun, each rank's local GPU).
        dist: The process group.
        source: The data.
        scan: Normalisation statistics and per-slice facts (``scan.json``).
        split: The run's split (``split.csv``).
        survival_csv: The run's survival table, or None (none given, none beside the data).
        cohort: The survival cohort, when :func:`open_run` was asked for it.
    """

    device: torch.device
    dist: DistContext
    source: DataSource
    scan: SourceScan
    split: Split
    survival_csv: Path | None
    cohort: SurvivalCohort | None = None


def open_run(
    config: TrainRunConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    source: DataSource | None = None,
    dist: DistContext | None = None,
    cohort: bool = False,
    bin_method: BinMethod = BinMethod.QUANTILE,
    id_map: PatientIdMap | None = None,
) -> OpenedRun:
    """The opening both training pipelines share: :func:`start_run`, then rank 0 scans the
    data (or reuses ``scan.json``) and makes or reuses the split while the others wait and
    then read its files.

    Args:
        config: The run's options.
        progress: Called as ``progress(done, total)`` in slices scanned.
        source: An already-open source (else ``config.data_dir`` is opened).
        dist: Process group (torchrun); default from the environment.
        cohort: Form the survival cohort (the survival classifier's run): the survival
            table is then required, and the split is stratified by ``bin_method`` bins.
        bin_method: Provisional bins that stratify the split.
        id_map: Volume -> patient id of the survival table.

    Raises:
        DataError: ``cohort`` is asked for and there is no survival table; bad data or split.
    """
    run = start_run(
        device=config.device, seed=config.seed, out_dir=config.out_dir, data_dir=config.data_dir,
        data_format=config.data_format, volumes=config.volumes, max_volumes=config.max_volumes,
        source=source, dist=dist,
    )
    survival_csv = (
        require_survival_csv(config.data_dir, config.data_format, config.survival_csv, source=run.source)
        if cohort
        else find_survival_csv(run.source, config.survival_csv)
    )
    formed: SurvivalCohort | None = None
    with run.dist.main_first():
        scan = load_or_scan(run.source, config.out_dir, progress=progress)
        volumes = sorted({f.volume for f in scan.slices})
        if cohort and survival_csv is not None:
            formed = survival_cohort(read_survival_csv(survival_csv), volumes, id_map or PatientIdMap())
            logger.info("survival cohort: %s", formed.summary())
        split = load_or_plan_split(
            config.out_dir, volumes=volumes, keys=[(f.volume, f.index) for f in scan.slices],
            mode=config.split_mode, seed=config.seed, survival_csv=survival_csv, bin_method=bin_method,
            id_map=id_map, given=config.split_csv, cohort=formed,
        )
    if split.leaks_patients:
        logger.warning("slice-level split: slices of one patient are in train and test; test figures leak")
    return OpenedRun(run.device, run.dist, run.source, scan, split, survival_csv, formed)


def run_metadata(config: object, split: Split, source: DataSource) -> dict[str, object]:
    """What both models' checkpoints record about their run: the package version, the
    split, the data folders and the training config (a dataclass instance)."""
    return {
        "sdk_version": __version__,
        "split": {"mode": split.mode.value, "seed": split.seed, "train": list(split.train), "val": list(split.val), "test": list(split.test)},
        "leaks_patients": split.leaks_patients,
        "data_dirs": source_dirs(source),
        "train_config": config_to_dict(config, lists=True),
    }


def data_parallel(model: nn.Module, dist: DistContext, device: torch.device) -> nn.Module:
    """What the training loop steps: ``model`` itself for one process, wrapped in DDP under
    torchrun (on CUDA pinned to the rank's GPU), so gradients are averaged over the ranks.
    The model keeps its own weights either way; save and evaluate ``model``, not the wrapper.
    """
    if not dist.is_distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def finish_run(dist: DistContext, write: Callable[[], None]) -> None:
    """The end of every training pipeline: rank 0 writes the run's final files, and every
    rank waits until they are there."""
    if dist.is_main:
        write()
    dist.barrier()


def load_or_scan(
    source: DataSource, run_dir: Path, *, progress: Callable[[int, int], None] | None = None
) -> SourceScan:
    """The scan of ``source``, read from ``run_dir/scan.json`` when it matches the source.

    Args:
        source: The data.
        run_dir: The run folder.
        progress: Called as ``progress(done, total)`` in slices read.
    """
    path = run_dir / SCAN_FILE
    total = len(source)
    keys = [source.slice_key(i) for i in range(total)]
    cached: SourceScan | None = None
    if path.exists():
        try:
            cached = SourceScan.from_json(path)
        except DataError as exc:
            logger.warning("%s; scanning again", exc)
    if cached is not None:
        if [(f.volume, f.index) for f in cached.slices] == keys:
            logger.info("reusing %s", path)
            if progress is not None:
                progress(total, total)
            return cached
        logger.warning("%s does not match the data (other volumes or slices); scanning again", path)
    done = 0

    def read(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    scan = scan_source(source, progress=read)
    scan.to_json(path)
    return scan


def find_survival_csv(source: DataSource, given: Path | None = None) -> Path | None:
    """The survival table of a run: ``given``, else ``survival_info.csv`` beside the slice
    files or in the source's root, if present (the one place that looks for it)."""
    if given is not None:
        return Path(given)
    candidates: list[Path] = [Path(d) / SURVIVAL_CSV for d in getattr(source, "data_dirs", ())]
    root = getattr(source, "root", None)
    if isinstance(root, Path):
        candidates.append(root / SURVIVAL_CSV)
    return next((c for c in candidates if c.is_file()), None)


def require_survival_csv(
    data_dir: Path, data_format: DataFormat, given: Path | None = None, *, source: DataSource | None = None
) -> Path:
    """The survival table a survival run will use, checked before any training starts.

    Args:
        data_dir: The data folder (opened to look beside it when ``source`` is None).
        data_format: Layout of ``data_dir``.
        given: The table's path, if the user gave one.
        source: The already-open data of ``data_dir``.

    Raises:
        DataError: None is given and there is no ``survival_info.csv`` beside the data.
    """
    opened = source if source is not None else open_source(data_dir, fmt=data_format, max_volumes=1)
    found = find_survival_csv(opened, given)
    if found is None:
        raise DataError(f"{data_dir}: no {SURVIVAL_CSV} beside the data; give its path (--survival-csv)")
    return found


def survival_strata(
    cohort: SurvivalCohort, method: BinMethod
) -> Mapping[int, int]:
    """Provisional survival bin per volume, used only to stratify the split.

    The final quantile bins are formed from the training patients alone, after the split.
    """
    days = [e.days for e in cohort.entries]
    if not days:
        return {}
    try:
        bins = SurvivalBins.brats() if method is BinMethod.BRATS else SurvivalBins.quantile(days)
    except DataError:
        return {}
    return {e.volume: int(bins.assign(e.days)) for e in cohort.entries}


def load_or_plan_split(
    run_dir: Path,
    *,
    volumes: Sequence[int],
    keys: Sequence[tuple[int, int]],
    mode: SplitMode,
    seed: int,
    survival_csv: Path | None,
    bin_method: BinMethod = BinMethod.QUANTILE,
    id_map: PatientIdMap | None = None,
    given: Path | None = None,
    cohort: SurvivalCohort | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> Split:
    """Reuse ``run_dir/split.csv``, take ``given``, or plan and write a new split.

    Patient mode splits patients with usable survival data and the others separately, so
    that every part holds patients of both kinds (each part stratified by bin).

    Args:
        given: A split file to use (an earlier run's ``split.csv`` or one written by hand);
            it is copied into the run folder, which must not hold another split.
        cohort: The survival cohort when the caller has formed it already (the survival
            pipeline); otherwise it is formed from ``survival_csv``.
        fractions: (train, val, test) fractions of a new split (of patients, of slices).

    Raises:
        DataError: The saved or given split names volumes the data does not have, is of
            another mode, differs from the run folder's split, or there are too few volumes.
    """
    path = run_dir / SPLIT_FILE
    if given is not None:
        chosen = read_split_csv(given)
        if path.exists() and read_split_csv(path) != chosen:
            raise DataError(f"{path}: the run folder already holds another split than {given}")
        _check_split(chosen, given, volumes, mode)
        write_split_csv(chosen, path)
        return chosen
    if path.exists():
        split = read_split_csv(path)
        _check_split(split, path, volumes, mode)
        logger.info("reusing split %s", path)
        return split
    strata: Mapping[int, int] = {}
    survivors: tuple[int, ...] = ()
    if cohort is None and survival_csv is not None:
        cohort = survival_cohort(read_survival_csv(survival_csv), list(volumes), id_map or PatientIdMap())
    if cohort is not None:
        strata = survival_strata(cohort, bin_method)
        survivors = cohort.volumes
    if mode is SplitMode.SLICE:
        split = split_slices(list(keys), strata=strata, fractions=fractions, seed=seed)
    else:
        split = _split_two_groups(list(volumes), set(survivors), strata, seed, fractions)
    write_split_csv(split, path)
    return split


def _check_split(split: Split, path: Path, volumes: Sequence[int], mode: SplitMode) -> None:
    known = set(volumes)
    used = set(split.train + split.val + split.test) | {v for v, _ in split.train_slices + split.val_slices + split.test_slices}
    if not used <= known:
        raise DataError(f"{path}: names volumes {summarise(sorted(used - known))} that the data does not have")
    if split.mode is not mode:
        raise DataError(f"{path}: is a {split.mode.value} split, but a {mode.value} split was asked for")


def _split_two_groups(
    volumes: list[int], survivors: set[int], strata: Mapping[int, int], seed: int, fractions: Sequence[float]
) -> Split:
    with_data = [v for v in volumes if v in survivors]
    without = [v for v in volumes if v not in survivors]
    if len(with_data) < 3:
        return split_by_patient(volumes, strata=strata, fractions=fractions, seed=seed)
    a = split_by_patient(with_data, strata=strata, fractions=fractions, seed=seed)
    # Too few patients without survival data to split: they train the segmenter only.
    if len(without) >= 3:
        b = split_by_patient(without, fractions=fractions, seed=seed)
    else:
        b = Split(SplitMode.PATIENT, seed, train=tuple(without))
    return Split(
        mode=SplitMode.PATIENT,
        seed=seed,
        train=tuple(sorted(a.train + b.train)),
        val=tuple(sorted(a.val + b.val)),
        test=tuple(sorted(a.test + b.test)),
    )


@dataclass(frozen=True, slots=True)
class PartIndices:
    """Slice indices of a source in each part of a split."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]


def part_indices(
    source: DataSource,
    split: Split,
    *,
    keep: Callable[[int], bool] | None = None,
    volumes: set[int] | None = None,
) -> PartIndices:
    """Map a split onto slice indices of ``source``.

    Args:
        source: The data.
        split: Patient or slice split.
        keep: Filter on slice index (e.g. drop slices without brain).
        volumes: Keep only slices of these volumes.
    """
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    if split.mode is SplitMode.SLICE:
        lookup = {k: p for p, ks in (("train", split.train_slices), ("val", split.val_slices), ("test", split.test_slices)) for k in ks}
    else:
        by_volume = {v: p for p, vs in (("train", split.train), ("val", split.val), ("test", split.test)) for v in vs}
    for i in range(len(source)):
        key = source.slice_key(i)
        if volumes is not None and key[0] not in volumes:
            continue
        part = lookup.get(key) if split.mode is SplitMode.SLICE else by_volume.get(key[0])
        if part is None or (keep is not None and not keep(i)):
            continue
        parts[part].append(i)
    return PartIndices(tuple(parts["train"]), tuple(parts["val"]), tuple(parts["test"]))
