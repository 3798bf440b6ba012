"""The one training loop, shared by the segmenter and the survival classifier.

Adam, StepLR (the paper's) or a cosine schedule, early stopping on validation loss, an
optional time limit, gradient accumulation, AMP on CUDA and bf16 autocast on a CPU on
request, atomic ``last``/``best`` checkpoints with everything needed to resume, and a
deterministic order of samples per epoch, so that a resumed run reaches the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Sampler

from brats_sdk.checkpoint import CheckpointKind, load_checkpoint
from brats_sdk.config_checks import require_finite
from brats_sdk.distributed import DistContext
from brats_sdk.errors import ConfigError, TrainingDivergedError
from brats_sdk.options import OptionEnum
from brats_sdk.training.batches import make_loader
from brats_sdk.training.history import HistoryFile
from brats_sdk.training.observer import EpochRecord, LoggingObserver, TrainingObserver
from brats_sdk.training.protocols import Batch, Task
from brats_sdk.training.resume import FitState, restore_last, save_best, save_last
from brats_sdk.training.sampling import epoch_generator, epoch_sampler
from brats_sdk.training.schedule import LrSchedule, cosine_factor, progress

__all__ = ["FitConfig", "FitResult", "KeepWeights", "fit"]

logger = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"


class KeepWeights(OptionEnum):
    """Which epoch's weights a stage ends holding; configs store the choice as
    ``keep_best = keep is KeepWeights.BEST``.

    BEST: the epoch with the lowest validation loss (the paper's early stopping).
    LAST: the last epoch (the usual choice with a cosine schedule, which ends on its lowest rate).
    """

    BEST = "best"
    LAST = "last"


@dataclass(frozen=True, slots=True)
class FitConfig:
    """Optimisation settings of one training stage (the paper's values as defaults).

    Attributes:
        lr: Adam learning rate.
        max_epochs: Upper bound on epochs.
        step_size: StepLR period in epochs.
        gamma: StepLR factor.
        patience: Epochs without validation-loss improvement before stopping.
        batch_size: Samples per optimizer step (split into micro-batches of
            ``batch_size // accumulate_steps`` when memory is short).
        accumulate_steps: Micro-batches per optimizer step.
        max_steps_per_epoch: Cap on optimizer steps per epoch (quick runs), or None.
        num_workers: DataLoader workers.
        amp: Mixed precision on CUDA (bf16 where supported, else fp16 with a scaler).
        seed: Seed of weights' training order and dropout.
        schedule: ``step`` (StepLR every ``step_size`` epochs, the paper's) or ``cosine``
            (per optimizer step, over ``max_epochs``, or over the time limit once the run
            falls behind: :func:`~brats_sdk.training.schedule.progress`).
        warmup_steps: Optimizer steps of linear warm-up (``cosine`` only).
        time_limit_s: Stop the stage once it has run this long (validation included),
            after validating what it has; None: no limit.
        cpu_bf16: bf16 autocast on a CPU (fast only where the CPU has native bf16).
        keep_best: End holding the weights of the epoch with the lowest validation loss
            (the paper's early stopping); False: those of the last epoch (the usual choice
            with a cosine schedule, which ends on its lowest rate).
    """

    lr: float = 1e-4
    max_epochs: int = 50
    step_size: int = 10
    gamma: float = 0.1
    patience: int = 3
    batch_size: int = 120
    accumulate_steps: int = 1
    max_steps_per_epoch: int | None = None
    num_workers: int = 0
    amp: bool = True
    seed: int = 0
    schedule: LrSchedule = LrSchedule.STEP
    warmup_steps: int = 0
    time_limit_s: float | None = None
    cpu_bf16: bool = False
    keep_best: bool = True

    def __post_init__(self) -> None:
        require_finite(self)
        object.__setattr__(self, "schedule", LrSchedule.parse(self.schedule))
        checks = {
            "lr": (math.isfinite(self.lr) and self.lr > 0, "finite and > 0"),
            "max_epochs": (self.max_epochs >= 1, ">= 1"),
            "step_size": (self.step_size >= 1, ">= 1"),
            "gamma": (math.isfinite(self.gamma) and self.gamma > 0, "finite and > 0"),
            "patience": (self.patience >= 1, ">= 1"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "accumulate_steps": (1 <= self.accumulate_steps <= self.batch_size, "in 1..batch_size"),
            "num_workers": (self.num_workers >= 0, ">= 0"),
            "warmup_steps": (self.warmup_steps >= 0, ">= 0"),
            "time_limit_s": (
                self.time_limit_s is None or (math.isfinite(self.time_limit_s) and self.time_limit_s > 0),
                "finite and > 0, or None",
            ),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ConfigError(f"invalid {name}={getattr(self, name)!r} (must be {rule})")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError(f"invalid max_steps_per_epoch={self.max_steps_per_epoch!r}")


@dataclass(frozen=True, slots=True)
class FitResult:
    """Outcome of :func:`fit`. The model holds the best epoch's weights (the last epoch's
    with ``keep_best=False``); ``last_metrics`` are the last epoch's validation metrics."""

    best_epoch: int
    best_val_loss: float
    best_metrics: Mapping[str, float]
    epochs_run: int
    stopped_early: bool
    history: tuple[EpochRecord, ...]
    out_of_time: bool = False
    seconds: float = 0.0
    last_metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def fit(
    *,
    model: nn.Module,
    task: Task,
    train_data: Dataset[Batch],
    val_data: Dataset[Batch],
    config: FitConfig,
    device: torch.device,
    checkpoint_dir: Path,
    stage: str = "train",
    resume: bool = False,
    history: HistoryFile | None = None,
    observer: TrainingObserver | None = None,
    dist: DistContext | None = None,
    parameters: list[nn.Parameter] | None = None,
    sample_weights: Sequence[float] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_data``, early-stopping on ``val_data``'s loss.

    Args:
        model: The network (already on ``device``; may be wrapped in DDP).
        task: Turns batches into losses and metrics.
        train_data: Training samples (dicts of tensors).
        val_data: Validation samples.
        config: Optimisation settings.
        device: Where to run.
        checkpoint_dir: Receives ``last.pt`` (everything to resume) and ``best.pt`` (the
            best epoch's weights and record, without optimizer state); both atomically written.
        stage: Name of this stage in the history and checkpoints.
        resume: Continue from ``checkpoint_dir/last.pt`` if it exists.
        history: Where epoch rows go (rank 0 writes).
        observer: Progress events (defaults to logging).
        dist: Process group (defaults to a single process).
        parameters: Parameters to optimise (defaults to those requiring grad).
        sample_weights: Draw each epoch's samples with replacement in proportion to these
            (one per training sample); None: every sample once, shuffled.

    Returns:
        The result; ``model`` is left holding the best epoch's weights.

    Raises:
        ConfigError: Empty data.
        CheckpointError: ``resume`` found a checkpoint of another stage or model.
    """
    dist = dist or DistContext()
    if len(train_data) == 0 or len(val_data) == 0:  # type: ignore[arg-type]  # map-style datasets have __len__
        raise ConfigError(f"stage {stage}: training and validation data must be non-empty")
    params = parameters if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    trainer = _Trainer.start(
        model, task, config, device, dist, observer or LoggingObserver(), params, stage, checkpoint_dir, history
    )
    if resume and trainer.last_path.exists():
        trainer.resume()
    if history is not None and dist.is_main:
        history.truncate(stage, trainer.state.epoch)
    records: list[EpochRecord] = []
    state = trainer.state
    while not state.finished and state.epoch < config.max_epochs:
        epoch = state.epoch + 1
        t0 = time.perf_counter()
        lr, train_loss, seen = trainer.train_epoch(train_data, epoch, sample_weights, t0)
        val_loss, val_metrics = evaluate(model=model, task=task, data=val_data, device=device, config=config, dist=dist)
        seconds = time.perf_counter() - t0
        record = EpochRecord(stage, epoch, lr, train_loss, val_loss, seconds, seen * dist.world_size / seconds, val_metrics)
        records.append(record)
        improved, stop = trainer.end_epoch(record)
        trainer.checkpoint(record, improved)
        if stop:
            logger.info("stage %s: early stop after epoch %d (best %d)", stage, epoch, state.best_epoch)
        if state.out_of_time:
            logger.info("stage %s: time limit reached in epoch %d after %.0f s (best %d)", stage, epoch, state.elapsed_s, state.best_epoch)
    trainer.keep_best()
    return FitResult(
        best_epoch=state.best_epoch,
        best_val_loss=state.best_val_loss,
        best_metrics=dict(state.best_metrics),
        epochs_run=state.epoch,
        stopped_early=state.stopped_early,
        history=tuple(records),
        out_of_time=state.out_of_time,
        seconds=state.elapsed_s,
        last_metrics=dict(records[-1].metrics) if records else {},
    )


@dataclass(slots=True)
class _Trainer:
    """One :func:`fit` call's optimiser, schedule, scaler and state, with one method per
    seam of an epoch: train, validate and decide, checkpoint."""

    model: nn.Module
    task: Task
    config: FitConfig
    device: torch.device
    dist: DistContext
    observer: TrainingObserver
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.StepLR
    scaler: torch.amp.GradScaler
    amp_on: bool
    amp_dtype: torch.dtype
    stage: str
    checkpoint_dir: Path
    history: HistoryFile | None
    state: FitState = dataclasses.field(default_factory=FitState)
    started: float = dataclasses.field(default_factory=time.perf_counter)
    elapsed_before: float = 0.0

    @classmethod
    def start(
        cls, model: nn.Module, task: Task, config: FitConfig, device: torch.device, dist: DistContext,
        observer: TrainingObserver, params: list[nn.Parameter], stage: str, checkpoint_dir: Path,
        history: HistoryFile | None,
    ) -> _Trainer:
        optimizer = torch.optim.Adam(params, lr=config.lr)
        # Kept (and saved) with either schedule; stepped only by the paper's.
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
        amp_on, amp_dtype = _autocast_settings(config, device)
        scaler = torch.amp.GradScaler("cuda", enabled=amp_on and device.type == "cuda" and amp_dtype == torch.float16)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        return cls(model, task, config, device, dist, observer, optimizer, scheduler, scaler, amp_on, amp_dtype,
                   stage, checkpoint_dir, history)

    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / LAST

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def resume(self) -> None:
        config = self.config
        state = restore_last(self.last_path, self.stage, _unwrap(self.model), self.optimizer, self.scheduler, self.scaler)
        # A run that reached its max_epochs goes on when resumed with a larger one; a run
        # that early-stopped (under this patience) or ran out of time stays stopped.
        state.finished = state.bad_epochs >= config.patience or state.out_of_time
        state.stopped_early = state.stopped_early and state.finished
        self.state, self.started, self.elapsed_before = state, time.perf_counter(), state.elapsed_s
        logger.info("stage %s: resumed after epoch %d", self.stage, state.epoch)

    def train_epoch(
        self, train_data: Dataset[Batch], epoch: int, sample_weights: Sequence[float] | None, t0: float
    ) -> tuple[float, float, int]:
        """One epoch of optimizer steps. Returns the learning rate it started with, the
        mean training loss over all ranks and this rank's sample count."""
        config, state, optimizer, scaler = self.config, self.state, self.optimizer, self.scaler
        # A fresh generator per epoch makes the sample order a function of (seed, epoch)
        # alone, which is what lets a resumed run match an uninterrupted one.
        gen = epoch_generator(config.seed, epoch)
        sampler = epoch_sampler(
            len(train_data), seed=config.seed, epoch=epoch, dist=self.dist, weights=sample_weights, generator=gen  # type: ignore[arg-type]  # map-style dataset
        )
        micro = max(1, config.batch_size // config.accumulate_steps)
        loader = make_loader(
            train_data, batch_size=micro, sampler=sampler, num_workers=config.num_workers,
            generator=gen, pin_memory=self.device.type == "cuda",
        )
        n_batches = len(loader)
        if config.max_steps_per_epoch is not None:
            n_batches = min(n_batches, config.max_steps_per_epoch * config.accumulate_steps)
        weights = _micro_weights(len(sampler), micro, n_batches, config.accumulate_steps)
        total_steps = config.max_epochs * -(-n_batches // config.accumulate_steps)
        self.observer.epoch_started(self.stage, epoch, config.max_epochs, n_batches)
        if config.schedule is LrSchedule.COSINE:
            _set_cosine_lr(optimizer, config, state.steps, total_steps, self.elapsed())
        lr = float(optimizer.param_groups[0]["lr"])
        self.model.train()
        meter = self.task.new_meter()
        loss_sum = torch.zeros(2, dtype=torch.float64)
        seen = 0
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(loader):
            if i >= n_batches:
                break
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_on):
                loss, outputs = self.task.step(self.model, batch, self.device)
            loss_value = float(loss.detach())
            # Every rank decides together (a rank that stops alone would hang the others).
            if self.dist.any_flag(not math.isfinite(loss_value)):
                raise TrainingDivergedError(
                    f"stage {self.stage}: the training loss became {loss_value if not math.isfinite(loss_value) else 'non-finite on another rank'} "
                    f"at epoch {epoch}, step {state.steps + 1} (learning rate {float(optimizer.param_groups[0]['lr']):g}); "
                    "lower the learning rate or check the data"
                )
            scaled: torch.Tensor = scaler.scale(loss * weights[i])
            scaled.backward()  # type: ignore[no-untyped-call]  # torch.Tensor.backward is untyped
            step_done = (i + 1) % config.accumulate_steps == 0 or i + 1 == n_batches
            if step_done:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                state.steps += 1
            n = self.task.batch_size_of(batch)
            seen += n
            loss_sum += torch.tensor([loss_value * n, n], dtype=torch.float64)
            meter.update(outputs.detach(), batch)
            self.observer.batch_done(float(loss_sum[0] / loss_sum[1]), meter.summarise(meter.totals()), seen / max(time.perf_counter() - t0, 1e-9))
            if step_done and config.time_limit_s is not None and self.dist.broadcast_flag(self.elapsed() >= config.time_limit_s):
                state.out_of_time = True
                break
            if step_done and config.schedule is LrSchedule.COSINE:
                _set_cosine_lr(optimizer, config, state.steps, total_steps, self.elapsed())
        if config.schedule is LrSchedule.STEP:
            self.scheduler.step()
        train_totals = self.dist.all_reduce_sum(loss_sum)
        return lr, float(train_totals[0] / max(train_totals[1].item(), 1.0)), seen

    def end_epoch(self, record: EpochRecord) -> tuple[bool, bool]:
        """Early-stopping bookkeeping after validation. Returns (improved, stop)."""
        state, config = self.state, self.config
        improved = record.val_loss < state.best_val_loss
        if improved:
            state.best_val_loss, state.best_epoch, state.best_metrics, state.bad_epochs = record.val_loss, record.epoch, dict(record.metrics), 0
        else:
            state.bad_epochs += 1
        state.epoch = record.epoch
        state.elapsed_s = self.elapsed()
        # Rank 0 decides and broadcasts, so every rank stops at the same epoch.
        stop = self.dist.broadcast_flag(state.bad_epochs >= config.patience)
        if stop and state.epoch < config.max_epochs:
            state.stopped_early = True
        state.finished = stop or state.out_of_time or state.epoch >= config.max_epochs
        self.observer.epoch_done(record, improved)
        return improved, stop

    def checkpoint(self, record: EpochRecord, improved: bool) -> None:
        """Rank 0 appends the history row and writes ``best`` (when improved) and ``last``."""
        if self.dist.is_main:
            if self.history is not None:
                self.history.append(record)
            model = _unwrap(self.model)
            if improved:
                save_best(self.checkpoint_dir / BEST, self.stage, self.state, self.config, model)
            save_last(self.last_path, self.stage, self.state, self.config, model, self.optimizer, self.scheduler, self.scaler)
        self.dist.barrier()

    def keep_best(self) -> None:
        """Leave the model holding the best epoch's weights (with ``keep_best``)."""
        best_path = self.checkpoint_dir / BEST
        # best_epoch 0: no epoch had a finite validation loss, and a best.pt is a stale one.
        if self.config.keep_best and self.state.best_epoch > 0 and best_path.exists():
            best = load_checkpoint(best_path, kind=CheckpointKind.TRAINING_STATE, map_location=self.device)
            _unwrap(self.model).load_state_dict(best["model"])  # type: ignore[arg-type]  # checked by load_state_dict


def _autocast_settings(config: FitConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    """Whether autocast is on, and its dtype: AMP on CUDA (bf16 where supported, else
    fp16), bf16 on a CPU when asked."""
    if device.type == "cuda" and config.amp:
        return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and config.cpu_bf16:
        return True, torch.bfloat16
    return False, torch.float32


def _set_cosine_lr(optimizer: torch.optim.Optimizer, config: FitConfig, steps: int, total_steps: int, elapsed_s: float) -> None:
    done = progress(step=steps, total_steps=total_steps, elapsed_s=elapsed_s, time_limit_s=config.time_limit_s)
    lr = config.lr * cosine_factor(done, step=steps, warmup_steps=config.warmup_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr


def _micro_weights(n_samples: int, micro: int, n_batches: int, accumulate: int) -> list[float]:
    """Loss weight of each micro-batch: its share of the samples of its optimizer step.

    The gradient of a step is then that of the mean loss over the step's samples, as
    with one big batch, also for a last step with fewer or smaller micro-batches.
    """
    sizes = [min(micro, n_samples - k * micro) for k in range(n_batches)]
    weights: list[float] = []
    for start in range(0, n_batches, accumulate):
        group = sizes[start : start + accumulate]
        total = sum(group)
        weights.extend(n / total for n in group)
    return weights


def evaluate(
    *,
    model: nn.Module,
    task: Task,
    data: Dataset[Batch],
    device: torch.device,
    config: FitConfig,
    dist: DistContext | None = None,
) -> tuple[float, dict[str, float]]:
    """Mean loss and metrics of ``model`` on ``data`` (reduced over ranks).

    Returns:
        (mean loss, metrics).
    """
    dist = dist or DistContext()
    sampler: Sampler[int] | None = None
    if dist.is_distributed:
        sampler = DistributedSampler(data, num_replicas=dist.world_size, rank=dist.rank, shuffle=False)
    loader = make_loader(data, batch_size=max(1, config.batch_size // config.accumulate_steps), sampler=sampler,
                         num_workers=config.num_workers, pin_memory=device.type == "cuda")
    amp_on, amp_dtype = _autocast_settings(config, device)
    model.eval()
    meter = task.new_meter()
    loss_sum = torch.zeros(2, dtype=torch.float64)
    with torch.inference_mode():
        for batch in loader:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_on):
                loss, outputs = task.step(model, batch, device)
            n = task.batch_size_of(batch)
            loss_sum += torch.tensor([float(loss) * n, n], dtype=torch.float64)
            meter.update(outputs, batch)
    totals = dist.all_reduce_sum(torch.cat([loss_sum, meter.totals()]))
    return float(totals[0] / max(totals[1].item(), 1.0)), meter.summarise(totals[2:])
