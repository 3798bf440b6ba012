"""Terminal output for the CLI: one rich console, progress bars and logging set-up."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from brats_sdk.distributed import is_main_process

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def setup_logging(verbose: int) -> None:
    """Library logs go to stderr through rich: WARNING by default, INFO with -v, DEBUG with -vv."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if not is_main_process():
        level = logging.ERROR  # under torchrun, rank 0 speaks for all
    root = logging.getLogger("brats_sdk")
    root.handlers.clear()
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def counted(n: int, noun: str) -> str:
    """``"1 volume"``, ``"2 volumes"``: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Advance(Protocol):
    def __call__(self, n: int = 1) -> None: ...


def _progress() -> Progress:
    """The one look of every progress bar: description, bar, n of total, elapsed, remaining."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


@contextmanager
def progress_bar(description: str, total: int, *, quiet: bool = False) -> Iterator[Advance]:
    """A rich progress bar (nothing when ``quiet``); yields a function advancing it by n."""
    if quiet:
        yield lambda n=1: None
        return
    with _progress() as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            progress.advance(task, n)

        yield advance


@contextmanager
def progress_updates(description: str, *, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar driven by the library's ``(done, total)`` callbacks."""
    if quiet:
        yield lambda done, total: None
        return
    with _progress() as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
