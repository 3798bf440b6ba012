"""A rich progress bar for the training loop (the CLI's :class:`TrainingObserver`)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from brats_sdk.training.observer import EpochRecord
from cli.console import err_console


class RichObserver:
    """One progress bar per epoch: loss, running Dice or accuracy, slices/s; a line per epoch."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RichObserver:
        if not self.quiet:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def epoch_started(self, stage: str, epoch: int, max_epochs: int, n_batches: int) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(f"{stage} epoch {epoch}/{max_epochs}", total=n_batches, stats="")

    def batch_done(self, loss: float, metrics: Mapping[str, float], samples_per_s: float) -> None:
        if self._progress is None or self._task is None:
            return
        shown = metrics.get("dice_mean", metrics.get("accuracy"))
        label = "dice" if "dice_mean" in metrics else "acc"
        extra = f" {label} {shown:.3f}" if shown is not None else ""
        self._progress.update(self._task, advance=1, stats=f"loss {loss:.4f}{extra} {samples_per_s:.1f} slices/s")

    def epoch_done(self, record: EpochRecord, improved: bool) -> None:
        if self.quiet:
            return
        metrics = " ".join(f"{k} {v:.3f}" for k, v in record.metrics.items())
        mark = " [green]best[/green]" if improved else ""
        err_console.print(
            f"{record.stage} epoch {record.epoch}: train {record.train_loss:.4f} val {record.val_loss:.4f} "
            f"{metrics} ({record.seconds:.1f} s, {record.samples_per_s:.1f} slices/s){mark}"
        )
