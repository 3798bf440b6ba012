"""A training stage's checkpoints: ``last.pt`` holds everything to resume (weights,
optimizer, schedule, scaler, random state and the loop's :class:`FitState`), ``best.pt``
the best epoch's weights and record."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from brats_sdk.checkpoint import CheckpointKind, check_finite, load_checkpoint, save_checkpoint
from brats_sdk.errors import CheckpointError
from brats_sdk.options import config_to_dict

if TYPE_CHECKING:
    from brats_sdk.training.loop import FitConfig

__all__ = ["FitState", "restore_last", "save_best", "save_last", "training_record"]


@dataclass(slots=True)
class FitState:
    epoch: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    bad_epochs: int = 0
    finished: bool = False
    stopped_early: bool = False
    steps: int = 0
    elapsed_s: float = 0.0
    out_of_time: bool = False


def training_record(stage: str, state: FitState, config: FitConfig, model: nn.Module) -> dict[str, object]:
    return {
        "stage": stage,
        "state": dataclasses.asdict(state),
        "fit_config": config_to_dict(config),
        "model": model.state_dict(),
    }


def save_best(path: Path, stage: str, state: FitState, config: FitConfig, model: nn.Module) -> None:
    # Only last.pt is resumed from, so best.pt leaves out the optimizer's moments (for
    # Adam, twice the size of the weights).
    save_checkpoint(path, kind=CheckpointKind.TRAINING_STATE, payload=training_record(stage, state, config, model))


def save_last(
    path: Path,
    stage: str,
    state: FitState,
    config: FitConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.StepLR,
    scaler: torch.amp.GradScaler,
) -> None:
    payload: dict[str, object] = {
        **training_record(stage, state, config, model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    save_checkpoint(path, kind=CheckpointKind.TRAINING_STATE, payload=payload)


def restore_last(
    path: Path,
    stage: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.StepLR,
    scaler: torch.amp.GradScaler,
) -> FitState:
    ckpt = load_checkpoint(path, kind=CheckpointKind.TRAINING_STATE, map_location="cpu")
    if ckpt.get("stage") != stage:
        raise CheckpointError(f"{path}: holds stage {ckpt.get('stage')!r}, cannot resume stage {stage!r}")
    weights = ckpt.get("model")
    if isinstance(weights, dict):
        check_finite(path, weights)
    try:
        model.load_state_dict(ckpt["model"])  # type: ignore[arg-type]  # validated by load_state_dict
        optimizer.load_state_dict(ckpt["optimizer"])  # type: ignore[arg-type]  # validated by torch
        scheduler.load_state_dict(ckpt["scheduler"])  # type: ignore[arg-type]  # validated by torch
        scaler.load_state_dict(ckpt["scaler"])  # type: ignore[arg-type]  # validated by torch
        torch.set_rng_state(ckpt["rng_cpu"])  # type: ignore[arg-type]  # a ByteTensor we saved
        cuda_states = ckpt.get("rng_cuda") or []
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)  # type: ignore[arg-type]  # saved by us
        raw = ckpt["state"]
        if not isinstance(raw, dict):
            raise TypeError("state is not a dict")
        return FitState(**raw)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot resume from this checkpoint ({str(exc).splitlines()[0]})") from exc
