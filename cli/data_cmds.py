"""Data commands: ``brats synth`` and ``brats inspect``."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from brats_sdk.data.inspect import inspect_h5_folder
from brats_sdk.data.synth import SynthConfig, make_cohort
from cli.console import console, err_console, progress_bar


@click.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--volumes", default=8, show_default=True, type=click.IntRange(min=1), help="Number of volumes.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same bytes).")
@click.option("--slices", default=155, show_default=True, type=click.IntRange(min=8), help="Axial slices per volume.")
@click.option("--size", default=240, show_default=True, type=click.IntRange(min=32), help="Slice height and width.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth_cmd(out_dir: Path, volumes: int, seed: int, slices: int, size: int, quiet: bool) -> None:
    """Write a synthetic cohort in the Kaggle h5 layout to OUT_DIR."""
    t0 = time.perf_counter()
    config = SynthConfig(volumes=volumes, seed=seed, slices=slices, size=size)
    with progress_bar("Synthesising volumes", volumes, quiet=quiet) as advance:
        data_dir = make_cohort(out_dir, config, progress=lambda _done: advance(1))
    console.print(f"Wrote {volumes} volumes x {slices} slices to {data_dir} in {time.perf_counter() - t0:.1f} s")


@click.command("inspect")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--require-masks", is_flag=True,
              help="Count an unlabelled folder (no slice has a mask) as a problem: a folder to train on.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def inspect_cmd(data_dir: Path, require_masks: bool, quiet: bool) -> None:
    """Check a folder in the Kaggle h5 layout; exit 1 if it has problems.

    A folder where no slice has a mask is unlabelled: fine for `brats predict`, a
    problem with --require-masks. Slices without a mask beside slices with one are
    always a problem.
    """
    from brats_sdk.data.h5_folder import scan_h5_folder

    total = len(scan_h5_folder(data_dir))
    with progress_bar("Inspecting", total, quiet=quiet) as advance:
        result = inspect_h5_folder(data_dir, require_masks=require_masks, progress=advance)
    table = Table(title=f"{data_dir}", show_header=True)
    table.add_column("property")
    table.add_column("value")
    table.add_row("volumes", str(result.n_volumes))
    table.add_row("slice files", str(result.n_slices))
    table.add_row("slices per volume", _counts(result.slices_per_volume))
    table.add_row("image shapes", _counts(result.image_shapes))
    table.add_row("image dtypes", _counts(result.image_dtypes))
    if result.labelled:
        table.add_row("slices with a mask", f"{result.slices_with_mask:,}")
        table.add_row("mask dtypes", _counts(result.mask_dtypes))
        for name, n in result.voxels_per_channel.items():
            table.add_row(f"voxels {name}", f"{n:,}")
        table.add_row("slices with tumour", f"{result.slices_with_tumour:,}")
    else:
        table.add_row("masks", "none: unlabelled (can be predicted on, not trained on)")
    for name, found in result.tables.items():
        table.add_row(name, "found" if found else "absent")
    table.add_row("problems", str(len(result.problems)))
    console.print(table)
    for line in result.problems:
        err_console.print(f"[red]problem[/red] {line}", markup=True, soft_wrap=True)
    if not result.ok:
        raise SystemExit(1)


def _counts(counter: dict[int, int] | dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0])))
