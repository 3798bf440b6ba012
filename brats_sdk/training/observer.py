"""How the loop reports progress: an observer protocol, so the library never prints.

The CLI passes a rich progress bar; library users get :class:`LoggingObserver`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["EpochRecord", "LoggingObserver", "TrainingObserver"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """One row of ``history.csv``."""

    stage: str
    epoch: int
    lr: float
    train_loss: float
    val_loss: float
    seconds: float
    samples_per_s: float
    metrics: Mapping[str, float] = field(default_factory=dict)

    def as_row(self) -> dict[str, float | int | str]:
        row: dict[str, float | int | str] = {
            "stage": self.stage,
            "epoch": self.epoch,
            "lr": self.lr,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "seconds": round(self.seconds, 3),
            "samples_per_s": round(self.samples_per_s, 2),
        }
        row.update({f"val_{k}": v for k, v in self.metrics.items()})
        return row


class TrainingObserver(Protocol):
    """Receives progress events from :func:`~brats_sdk.training.loop.fit`."""

    def epoch_started(self, stage: str, epoch: int, max_epochs: int, n_batches: int) -> None: ...

    def batch_done(self, loss: float, metrics: Mapping[str, float], samples_per_s: float) -> None: ...

    def epoch_done(self, record: EpochRecord, improved: bool) -> None: ...


class LoggingObserver:
    """Logs one line per epoch at INFO."""

    def epoch_started(self, stage: str, epoch: int, max_epochs: int, n_batches: int) -> None:
        logger.debug("%s epoch %d/%d: %d batches", stage, epoch, max_epochs, n_batches)

    def batch_done(self, loss: float, metrics: Mapping[str, float], samples_per_s: float) -> None:
        return None

    def epoch_done(self, record: EpochRecord, improved: bool) -> None:
        extra = " ".join(f"{k}={v:.4f}" for k, v in record.metrics.items())
        logger.info(
            "%s epoch %d: train_loss=%.4f val_loss=%.4f %s%s",
            record.stage, record.epoch, record.train_loss, record.val_loss, extra, " (best)" if improved else "",
        )
