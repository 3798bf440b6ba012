"""Training the segmenter the paper's way: three stages through the shared loop.

1. the whole U-Net with smp's default head, Adam lr 1e-4;
2. the paper's head, backbone frozen, lr 1e-3;
3. the same, lr 1e-5.

Each stage early-stops on validation Dice loss and hands its best weights to the next.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from brats_sdk.checkpoint import CheckpointKind, load_checkpoint
from brats_sdk.constants import IMAGE_CHANNELS, MASK_CHANNELS
from brats_sdk.data.crops import RandomCrops, Window, union_box, window_around
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.normalise import Normalisation
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.scan import SliceFacts
from brats_sdk.data.splits import Split
from brats_sdk.device import warn_if_slow_bf16
from brats_sdk.distributed import DistContext
from brats_sdk.errors import ConfigError
from brats_sdk.models.losses import DiceCELoss, DiceLoss
from brats_sdk.models.segmenter import HeadKind, Segmenter, SegmenterConfig
from brats_sdk.run_files import HISTORY_FILE, SEGMENTER_FILE
from brats_sdk.training.history import HistoryFile
from brats_sdk.training.loop import BEST, FitConfig, FitResult, evaluate, fit
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
from brats_sdk.training.sampling import tumour_weights
from brats_sdk.training.schedule import LrSchedule
from brats_sdk.training.tasks import SegmentationTask

__all__ = ["SegmenterTrainConfig", "SegmenterTrainResult", "train_segmenter"]

logger = logging.getLogger(__name__)

# Channels-last weights and batches: the convolutions of training run faster in it on
# CPUs and on GPUs (the batches are made so in SegmentationTask).
_TRAIN_MEMORY_FORMAT = torch.channels_last


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmenterTrainConfig(TrainRunConfig):
    """Options of ``brats train segmenter`` (the paper's values as defaults).

    The options both models take are :class:`~brats_sdk.training.run_config.TrainRunConfig`'s
    (``data_dir``, ``out_dir``, ``epochs``, ``seed``, ``device``, ...); ``survival_csv`` is
    used only to stratify the split by survival bin. Keyword-only.

    Attributes:
        batch_size: Slices per optimizer step (paper: 120).
        stage_epochs: Maximum epochs of stages 1, 2, 3 (0 skips a stage).
        lrs: Learning rates of the three stages.
        drop_no_brain: Leave out slices without brain (default keeps them, as the paper).
        input_size: None pads to a multiple of 32; 256 is the paper's resize.
        accumulate_steps: Micro-batches per optimizer step.
        batch_dice: Dice pooled over the batch instead of per slice (the paper's); learns
            much faster when many slices hold no tumour.
        background_weight: Dice weight of the background class (the paper: 0). A small
            weight (0.1-0.5) teaches the network where there is no tumour, which stops a
            rare class (NCR) from being predicted across the brain on short runs.
        crop_size: Train on random ``crop_size`` windows at native resolution (mostly
            holding tumour) and validate on the brain box, instead of whole slices
            (the paper's). 96-128 cuts the U-Net's work per sample 4-7x.
        tumour_fraction: Draw slices with tumour this share of the time (with
            replacement) instead of every slice once per epoch (the paper's).
        normalisation: Intensity normalisation of the network's input (``slice``, the
            default, gives the same input from raw NIfTI and Kaggle's h5; ``volume``).
        schedule: ``step`` (the paper's StepLR) or ``cosine`` (per step, with warm-up).
        warmup_steps: Linear warm-up steps of the cosine schedule.
        time_limit_minutes: Budget of the training stages together (each validated
            epoch counts); a stage that reaches it stops after validating, and later
            stages are skipped. None: no limit.
        cpu_bf16: bf16 autocast when training on a CPU (fast only with native bf16).
        ce_weight: Add this times the cross-entropy to the Dice loss (the paper: 0).
        augment: Random mirroring and intensity jitter of training items (the paper: none).
        oedema_contrast_min: With ``augment``, fade the oedema of half the training items
            that hold it towards the healthy brain by a factor per channel drawn from
            ``[oedema_contrast_min, 1]`` (:func:`~brats_sdk.data.augment.fade_oedema`): a
            model for scans whose oedema stands out less, or on fewer sequences, than in
            the training cases'. 1: off (the paper's).
        keep_best: Keep the weights of the best validated epoch and stage (the paper's);
            False: the last epoch's of the last stage (for a cosine schedule).
        max_val_slices: Validate on at most this many slices each epoch (an evenly spread,
            fixed subset of the validation slices, all of them with tumour first), and
            test the final model on as many test slices, so that both stay cheap on a
            large release. None: every slice.
    """

    batch_size: int = 120
    stage_epochs: tuple[int, int, int] = (50, 50, 50)
    lrs: tuple[float, float, float] = (1e-4, 1e-3, 1e-5)
    drop_no_brain: bool = False
    input_size: int | None = None
    accumulate_steps: int = 1
    batch_dice: bool = False
    background_weight: float = 0.0
    crop_size: int | None = None
    tumour_fraction: float | None = None
    normalisation: Normalisation = Normalisation.SLICE
    schedule: LrSchedule = LrSchedule.STEP
    warmup_steps: int = 0
    time_limit_minutes: float | None = None
    cpu_bf16: bool = False
    ce_weight: float = 0.0
    max_val_slices: int | None = None
    keep_best: bool = True
    oedema_contrast_min: float = 1.0

    def __post_init__(self) -> None:
        TrainRunConfig.__post_init__(self)  # explicit: super() does not work in slotted dataclasses
        object.__setattr__(self, "normalisation", Normalisation.parse(self.normalisation))
        object.__setattr__(self, "schedule", LrSchedule.parse(self.schedule))
        if self.time_limit_minutes is not None and self.time_limit_minutes <= 0:
            raise ConfigError(f"time_limit_minutes must be > 0, got {self.time_limit_minutes}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.oedema_contrast_min <= 1.0:
            raise ConfigError(f"oedema_contrast_min must be in [0, 1], got {self.oedema_contrast_min}")
        if self.max_val_slices is not None and self.max_val_slices < 1:
            raise ConfigError(f"max_val_slices must be >= 1, got {self.max_val_slices}")
        DiceCELoss(DiceLoss(), ce_weight=self.ce_weight)  # validates the weight
        if len(self.stage_epochs) != 3 or any(e < 0 for e in self.stage_epochs) or not any(self.stage_epochs):
            raise ConfigError(f"stage_epochs must be three non-negative ints, not all 0, got {self.stage_epochs}")
        if len(self.lrs) != 3 or any(lr <= 0 for lr in self.lrs):
            raise ConfigError(f"lrs must be three positive numbers, got {self.lrs}")
        if self.crop_size is not None:
            RandomCrops(self.crop_size)  # validates the size
            if self.input_size is not None:
                raise ConfigError("crop_size and input_size exclude each other: crops are taken at native resolution")
        if self.tumour_fraction is not None:
            tumour_weights([True, False], self.tumour_fraction)  # validates the fraction

    def stage_max_epochs(self) -> tuple[int, int, int]:
        if self.epochs is None:
            return self.stage_epochs
        e = self.epochs
        a, b, c = self.stage_epochs
        return (min(a, e), min(b, e), min(c, e))


@dataclass(frozen=True, slots=True)
class SegmenterTrainResult:
    """What :func:`train_segmenter` produced."""

    model_path: Path
    split: Split
    stages: tuple[FitResult, ...]
    val_metrics: dict[str, float]
    test_loss: float
    test_metrics: dict[str, float]
    n_slices: dict[str, int]
    seconds: float
    device: str
    model: Segmenter


def train_segmenter(
    config: SegmenterTrainConfig,
    *,
    observer: TrainingObserver | None = None,
    progress: Callable[[int, int], None] | None = None,
    source: DataSource | None = None,
    dist: DistContext | None = None,
) -> SegmenterTrainResult:
    """Train a :class:`Segmenter` into ``config.out_dir``.

    Writes ``split.csv``, ``scan.json``, ``history.csv``, ``stage{1,2,3}/{last,best}.pt``
    and the final ``segmenter.pt`` with its metadata.

    Args:
        config: The options.
        observer: Progress events of the loop.
        progress: Advanced once per slice during the data scan.
        source: An already-open source (else ``config.data_dir`` is opened).
        dist: Process group (torchrun); default single process.

    Returns:
        Paths, metrics and timings.

    Raises:
        DataError: Another run (``brats train`` or ``brats predict``) holds ``config.out_dir``.
        BratsError: Bad data, options or checkpoints.
    """
    with claim_run_folder(config.out_dir, dist):
        return _train_segmenter(config, observer=observer, progress=progress, source=source, dist=dist)


def _train_segmenter(
    config: SegmenterTrainConfig,
    *,
    observer: TrainingObserver | None,
    progress: Callable[[int, int], None] | None,
    source: DataSource | None,
    dist: DistContext | None,
) -> SegmenterTrainResult:
    t0 = time.perf_counter()
    run = open_run(config, progress=progress, source=source, dist=dist)
    device, dist, source, scan, split, out = run.device, run.dist, run.source, run.scan, run.split, config.out_dir
    record_or_compare_options(out, "segmenter", config, resume=config.resume, dist=dist)
    if config.cpu_bf16:
        warn_if_slow_bf16(device, "bf16 training")
    facts = scan.slices
    keep = (lambda i: facts[i].has_brain) if config.drop_no_brain else None
    parts = part_indices(source, split, keep=keep)
    if not parts.train or not parts.val:
        raise ConfigError(f"{config.data_dir}: the split leaves no training or validation slice; use more volumes")
    norm = config.normalisation
    train_ds = SegmentationDataset(
        source, parts.train, scan.stats, crop=None if config.crop_size is None else RandomCrops(config.crop_size),
        normalisation=norm, augment=config.augment, oedema_contrast_min=config.oedema_contrast_min,
    )
    val_part = _validation_subset(parts.val, facts, config.max_val_slices)
    val_ds = SegmentationDataset(source, val_part, scan.stats, crop=_brain_window(config, source, facts, val_part), normalisation=norm)
    test_part = _validation_subset(parts.test, facts, config.max_val_slices)
    test_ds = SegmentationDataset(source, test_part, scan.stats, crop=_brain_window(config, source, facts, test_part), normalisation=norm)
    weights = None
    if config.tumour_fraction is not None:
        weights = tumour_weights([facts[i].has_tumour for i in parts.train], config.tumour_fraction)

    model = Segmenter(SegmenterConfig(
        input_size=config.input_size, encoder_weights=config.encoder_weights, normalisation=norm,
    )).to(device).to(memory_format=_TRAIN_MEMORY_FORMAT)
    history = HistoryFile(out / HISTORY_FILE) if dist.is_main else None
    dice = DiceLoss(class_weights=(config.background_weight, 1.0, 1.0, 1.0), batch_dice=config.batch_dice)
    task = SegmentationTask(DiceCELoss(dice, ce_weight=config.ce_weight) if config.ce_weight else dice)
    results: list[FitResult] = []
    stages_run: list[int] = []
    budget_s = None if config.time_limit_minutes is None else 60.0 * config.time_limit_minutes
    for stage, (max_epochs, lr) in enumerate(zip(config.stage_max_epochs(), config.lrs, strict=True), start=1):
        if max_epochs == 0:
            continue  # before the head swap: a skipped stage must not replace a trained head
        left_s = None if budget_s is None else budget_s - sum(r.seconds for r in results)
        if left_s is not None and left_s <= 0 and results:
            logger.info("time limit reached: stage %d and later are skipped", stage)
            break
        if stage >= 2 and model.config.head is not HeadKind.PAPER:
            model.replace_head()
            model.freeze_backbone()
            model.to(device).to(memory_format=_TRAIN_MEMORY_FORMAT)
        fit_cfg = FitConfig(
            lr=lr,
            max_epochs=max_epochs,
            step_size=config.step_size,
            patience=config.patience,
            batch_size=config.batch_size,
            accumulate_steps=config.accumulate_steps,
            max_steps_per_epoch=config.max_steps_per_epoch,
            num_workers=config.num_workers,
            amp=config.amp,
            seed=config.seed + stage,
            schedule=config.schedule,
            warmup_steps=config.warmup_steps,
            time_limit_s=None if left_s is None else max(left_s, 1.0),
            cpu_bf16=config.cpu_bf16,
            keep_best=config.keep_best,
        )
        result = fit(
            model=data_parallel(model, dist, device), task=task, train_data=train_ds, val_data=val_ds, config=fit_cfg, device=device,
            checkpoint_dir=out / f"stage{stage}", stage=f"stage{stage}", resume=config.resume,
            history=history, observer=observer, dist=dist, sample_weights=weights,
        )
        results.append(result)
        stages_run.append(stage)
    if config.keep_best:
        model = _keep_best_stage(model, results, stages_run, out, device)
    last_cfg = FitConfig(
        batch_size=config.batch_size, accumulate_steps=config.accumulate_steps, num_workers=config.num_workers,
        amp=config.amp, cpu_bf16=config.cpu_bf16,
    )
    best_i = min(range(len(results)), key=lambda k: results[k].best_val_loss) if config.keep_best else len(results) - 1
    val_metrics = dict(results[best_i].best_metrics if config.keep_best else results[best_i].last_metrics)
    test_loss, test_metrics = float("nan"), dict[str, float]()
    if parts.test:
        test_loss, test_metrics = evaluate(model=model, task=task, data=test_ds, device=device, config=last_cfg, dist=dist)
    model_path = out / SEGMENTER_FILE
    metadata: dict[str, object] = {
        "architecture": f"smp.Unet({model.config.encoder_name})",
        "head": model.config.head.value,
        "best_stage": stages_run[best_i],
        "image_channels": list(IMAGE_CHANNELS),
        "mask_channels": list(MASK_CHANNELS),
        "normalisation": norm.description,
        "val_metrics": val_metrics,
        "test_loss": test_loss,
        "test_metrics": test_metrics,
        **run_metadata(config, split, source),
    }
    finish_run(dist, lambda: model.save(model_path, metadata=metadata))
    return SegmenterTrainResult(
        model_path=model_path,
        split=split,
        stages=tuple(results),
        val_metrics=val_metrics,
        test_loss=test_loss,
        test_metrics=test_metrics,
        n_slices={"train": len(parts.train), "val": len(val_part), "test": len(test_part)},
        seconds=time.perf_counter() - t0,
        device=str(device),
        model=model,
    )


def _validation_subset(indices: Sequence[int], facts: Sequence[SliceFacts], limit: int | None) -> list[int]:
    """At most ``limit`` validation slices: with tumour first, each group evenly spread
    over its slices, in source order (a fixed subset, the same every epoch)."""
    if limit is None or len(indices) <= limit:
        return list(indices)
    tumour = [i for i in indices if facts[i].has_tumour]
    other = [i for i in indices if not facts[i].has_tumour]
    take_t = min(len(tumour), limit)
    chosen = _spread(tumour, take_t) + _spread(other, limit - take_t)
    return sorted(chosen)


def _spread(items: Sequence[int], k: int) -> list[int]:
    if k <= 0:
        return []
    step = len(items) / k
    return [items[int(j * step)] for j in range(k)]


def _brain_window(
    config: SegmenterTrainConfig, source: DataSource, facts: Sequence[SliceFacts], indices: Sequence[int]
) -> Window | None:
    """With crop training, validation and test look at the brain box of their slices, as
    prediction does; without, at whole slices."""
    if config.crop_size is None or not indices:
        return None
    height, width = source.read_slice(indices[0]).image.shape[-2:]
    return window_around(union_box(facts[i].brain_box for i in indices), height=height, width=width)


def _keep_best_stage(
    model: Segmenter, results: list[FitResult], stages: list[int], out: Path, device: torch.device
) -> Segmenter:
    """The weights of the stage with the lowest validation loss.

    A freshly initialised paper head (stage 2) can end worse than stage 1 on short runs;
    the final model is the best validated one, and the metadata says which stage it is.
    """
    best_i = min(range(len(results)), key=lambda k: results[k].best_val_loss)
    if best_i == len(results) - 1:
        return model
    stage = stages[best_i]
    logger.info("stage %d validated best (loss %.4f); keeping its weights", stage, results[best_i].best_val_loss)
    head = HeadKind.DEFAULT if stage == 1 else HeadKind.PAPER
    best = Segmenter(dataclasses.replace(model.config, head=head, encoder_weights=None))
    ckpt = load_checkpoint(out / f"stage{stage}" / BEST, kind=CheckpointKind.TRAINING_STATE)
    best.load_state_dict(ckpt["model"])  # type: ignore[arg-type]  # a state dict we saved
    return best.to(device).to(memory_format=_TRAIN_MEMORY_FORMAT)
