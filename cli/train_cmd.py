"""``brats train segmenter|survival|all``."""

from __future__ import annotations

import click
from rich import box
from rich.table import Table

from brats_sdk.distributed import is_main_process
from brats_sdk.training.run import require_survival_csv
from brats_sdk.training.segmenter_pipeline import (
    SegmenterTrainConfig,
    SegmenterTrainResult,
    train_segmenter,
)
from brats_sdk.training.survival_pipeline import (
    SurvivalTrainConfig,
    SurvivalTrainResult,
    train_survival,
)
from cli.console import console, progress_updates
from cli.observer import RichObserver
from cli.options import announce_device, warn_slow_bf16
from cli.train_options import (
    RunOptions,
    SegmenterOptions,
    SurvivalOptions,
    run_options,
    segmenter_config,
    segmenter_options,
    survival_config,
    survival_options,
)


@click.group("train")
def train_group() -> None:
    """Train the segmenter, the survival classifier, or both."""


def _run_segmenter(config: SegmenterTrainConfig, quiet: bool) -> SegmenterTrainResult:
    warn_slow_bf16(config.device, config.cpu_bf16, "--cpu-bf16")
    quiet = quiet or not is_main_process()
    with progress_updates("Scanning slices", quiet=quiet) as progress, RichObserver(quiet=quiet) as observer:
        return train_segmenter(config, observer=observer, progress=progress)


def _run_survival(config: SurvivalTrainConfig, quiet: bool) -> SurvivalTrainResult:
    quiet = quiet or not is_main_process()
    with progress_updates("Scanning slices", quiet=quiet) as progress, RichObserver(quiet=quiet) as observer:
        return train_survival(config, observer=observer, progress=progress)


def _print_segmenter(r: SegmenterTrainResult) -> None:
    table = Table(title=f"Segmenter -> {r.model_path}")
    table.add_column("split")
    for name in ("NCR", "ED", "ET", "mean"):
        table.add_column(f"Dice {name}", justify="right")
    table.add_column("slices", justify="right")
    for part, metrics in (("validation", r.val_metrics), ("test", r.test_metrics)):
        table.add_row(part, *[f"{metrics[f'dice_{n}']:.3f}" if f"dice_{n}" in metrics else "-" for n in ("NCR", "ED", "ET", "mean")],
                      str(r.n_slices["val" if part == "validation" else "test"]))
    console.print(table)
    console.print(f"split: {r.split.mode.value} (train/val/test volumes {len(r.split.train)}/{len(r.split.val)}/{len(r.split.test)}), "
                  f"{r.seconds:.0f} s on {r.device}")
    if r.split.leaks_patients:
        console.print("[bold red]slice-level split: test slices come from training patients; the test figures leak.[/bold red]")


def _print_survival(r: SurvivalTrainResult) -> None:
    ranges = ", ".join(f"{r.bins.labels[b]} {r.bins.range_text(b)} d" for b in range(r.bins.n_bins))
    # Day ranges in the caption, not the headers: the table then fits 80 columns.
    table = Table(title=f"Survival classifier -> {r.model_path}",
                  caption=f"test patients, ground-truth masks; accuracy per true bin (n); bins: {ranges}",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    table.add_column("level", no_wrap=True)
    table.add_column("accuracy", justify="right")
    table.add_column("n", justify="right")
    for b in range(r.bins.n_bins):
        table.add_column(r.bins.labels[b], justify="right", overflow="fold")
    for name, label in (("per_slice", "per slice"), ("per_slice_nonempty", "per slice, non-empty mask"), ("per_patient", "per patient (vote)")):
        s = getattr(r.levels, name)
        if s is None:
            table.add_row(label, "-", "0", *["-"] * r.bins.n_bins)
            continue
        per_bin = [f"{a:.3f} (n={n})" if a is not None else f"- (n={n})" for a, n in zip(s.per_bin_accuracy, s.per_bin_n, strict=True)]
        table.add_row(label, f"{s.accuracy:.3f}", str(s.n), *per_bin)
    console.print(table)
    if r.levels.per_patient is not None:
        console.print(f"patient confusion matrix (rows truth, columns predicted): {r.levels.per_patient.confusion}")
    excluded = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.excluded.items() if v)
    console.print(f"patients train/val/test {r.patients['train']}/{r.patients['val']}/{r.patients['test']}; "
                  f"left out: {excluded or 'none'}; {r.seconds:.0f} s on {r.device}")
    if r.split.leaks_patients:
        console.print("[bold red]slice-level split: the same patients are in train and test; these accuracies leak.[/bold red]")


@train_group.command("segmenter")
@run_options
@segmenter_options
def train_segmenter_cmd(run: RunOptions, seg: SegmenterOptions) -> None:
    """Train the U-Net segmenter (the paper's three stages) on DATA_DIR."""
    device = announce_device(run.device)
    result = _run_segmenter(segmenter_config(run, seg, device=device), run.quiet)
    if is_main_process():
        _print_segmenter(result)


@train_group.command("survival")
@run_options
@survival_options
def train_survival_cmd(run: RunOptions, surv: SurvivalOptions) -> None:
    """Train the survival classifier on DATA_DIR's ground-truth masks."""
    device = announce_device(run.device)
    config = survival_config(run, surv, device=device, epochs=run.epochs, survival_csv=surv.survival_csv)
    result = _run_survival(config, run.quiet)
    if is_main_process():
        _print_survival(result)


@train_group.command("all")
@run_options
@segmenter_options
@survival_options
@click.option("--survival-epochs", type=click.IntRange(min=1), default=None,
              help="Epochs of the survival classifier (default: --epochs, else 50).")
def train_all_cmd(run: RunOptions, seg: SegmenterOptions, surv: SurvivalOptions, survival_epochs: int | None) -> None:
    """Train both models into one run folder, on the same split."""
    device = announce_device(run.device)
    survival_csv = require_survival_csv(run.data_dir, run.data_format, surv.survival_csv)
    # Both configs before either model trains: a bad value fails in a second, not after the segmenter.
    seg_config = segmenter_config(run, seg, device=device, survival_csv=survival_csv)
    surv_config = survival_config(run, surv, device=device, epochs=survival_epochs or run.epochs, survival_csv=survival_csv)
    seg_result = _run_segmenter(seg_config, run.quiet)
    surv_result = _run_survival(surv_config, run.quiet)
    if is_main_process():
        _print_segmenter(seg_result)
        _print_survival(surv_result)
