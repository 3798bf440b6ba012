"""Data commands: ``brats synth`` and ``brats inspect``."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from brats_sdk.constants import MASK_CHANNELS
from brats_sdk.data.inspection import VolumeCounts, inspect_folder, plan_inspection
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.data.sources import DataFormat
from brats_sdk.data.synth import SynthConfig, make_cohort
from cli.console import console, counted, err_console, progress_bar
from cli.exit_codes import ExitCode
from cli.options import format_option, label_convention_option


@click.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--volumes", default=8, show_default=True, type=click.IntRange(min=1), help="Number of volumes.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same bytes).")
@click.option("--slices", default=155, show_default=True, type=click.IntRange(min=8), help="Axial slices per volume.")
@click.option("--size", default=240, show_default=True, type=click.IntRange(min=32), help="Slice height and width.")
@click.option("--patient-signature", is_flag=True,
              help="Give each tumour a per-patient stretch and angle unrelated to survival (what a slice split leaks; see `brats audit`).")
@click.option("--overwrite", is_flag=True,
              help="Write into a folder that is not empty (its slice files outside the new cohort are deleted).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def synth_cmd(
    out_dir: Path, volumes: int, seed: int, slices: int, size: int, patient_signature: bool, overwrite: bool, quiet: bool
) -> None:
    """Write a synthetic cohort in the Kaggle h5 layout to OUT_DIR (an empty or new folder unless --overwrite)."""
    t0 = time.perf_counter()
    config = SynthConfig(volumes=volumes, seed=seed, slices=slices, size=size, patient_signature=patient_signature)
    with progress_bar("Synthesising volumes", volumes, quiet=quiet) as advance:
        data_dir = make_cohort(out_dir, config, progress=lambda _done: advance(1), overwrite=overwrite)
    console.print(f"Wrote {counted(volumes, 'volume')} x {counted(slices, 'slice')} to {data_dir} in {time.perf_counter() - t0:.1f} s")


@click.command("inspect")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--require-masks", is_flag=True,
              help="Count an unlabelled folder (no slice or case has labels) as a problem: a folder to train on.")
@click.option("--per-volume", is_flag=True, help="Also list each volume's slices and label voxel counts.")
@format_option
@label_convention_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def inspect_cmd(
    data_dir: Path, require_masks: bool, per_volume: bool, data_format: DataFormat, label_convention: LabelConvention, quiet: bool
) -> None:
    """Check a data folder (Kaggle h5, NIfTI cases or `brats pack`); exit 1 if it has problems.

    DATA_DIR is laid out as the other commands read it: the Kaggle h5 release (or a
    parent), a folder of NIfTI case folders (or a parent, or one case folder), or a
    `brats pack` folder. Every file is read. Dtypes are those stored in the files.

    A folder where no slice or case has labels is unlabelled: fine for `brats predict`,
    a problem with --require-masks. Slices or cases without labels beside others with
    them are always a problem.
    """
    plan = plan_inspection(data_dir, fmt=data_format)
    with progress_bar(f"Inspecting {plan.unit}", plan.steps, quiet=quiet) as advance:
        result = inspect_folder(
            data_dir, fmt=plan.layout, require_masks=require_masks, progress=advance, label_convention=label_convention
        )
    nifti = result.layout == DataFormat.NIFTI.value
    stored = "" if result.dtypes_as_stored else " (as read)"
    table = Table(title=f"{data_dir}", show_header=True)
    table.add_column("property")
    table.add_column("value")
    table.add_row("layout", _LAYOUTS.get(result.layout, result.layout))
    table.add_row("volumes", str(result.n_volumes))
    table.add_row("slice files" if result.layout == DataFormat.H5.value else "slices", f"{result.n_slices:,}")
    table.add_row("slices per volume", _counts(result.slices_per_volume))
    table.add_row("image shapes" + (" (per case)" if nifti else ""), _counts(result.image_shapes))
    table.add_row("image dtypes" + (" (per file)" if nifti else stored), _counts(result.image_dtypes))
    if result.labelled:
        if nifti:
            table.add_row("cases with a segmentation", f"{result.volumes_with_mask:,}")
            table.add_row("segmentation dtypes", _counts(result.mask_dtypes))
        else:
            table.add_row("slices with a mask", f"{result.slices_with_mask:,}")
            table.add_row("mask dtypes" + stored, _counts(result.mask_dtypes))
        for name, n in result.voxels_per_channel.items():
            table.add_row(f"voxels {name}", f"{n:,}")
        table.add_row("slices with tumour", f"{result.slices_with_tumour:,}")
    else:
        table.add_row("masks", "none: unlabelled (can be predicted on, not trained on)")
    for name, found in result.tables.items():
        table.add_row(name, "found" if found else "absent")
    table.add_row("problems", str(len(result.problems)))
    console.print(table)
    if per_volume:
        console.print(_volume_table(result.volumes))
    for line in result.problems:
        err_console.print(f"[red]problem[/red] {escape(line)}", markup=True, soft_wrap=True)
    if not result.ok:
        raise SystemExit(ExitCode.ERROR)


_LAYOUTS = {
    DataFormat.H5.value: "h5 (Kaggle, one file per slice)",
    DataFormat.NIFTI.value: "nifti (one folder per case)",
    DataFormat.PACKED.value: "packed (brats pack, one file per volume)",
}


def _volume_table(volumes: tuple[VolumeCounts, ...]) -> Table:
    table = Table(title="Per volume", caption="NCR / ED / ET: label voxels; tumour: slices with a label",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    # Fits 80 columns with whole BraTS case names: the name never wraps.
    for col in ("volume", "name", "slices", *MASK_CHANNELS, "tumour"):
        table.add_column(col, justify="left" if col == "name" else "right", no_wrap=col == "name")
    for v in volumes:
        table.add_row(
            str(v.volume), v.name, str(v.n_slices),
            *(f"{v.voxels_per_channel[c]:,}" if v.has_mask else "-" for c in MASK_CHANNELS),
            str(v.slices_with_tumour) if v.has_mask else "-",
        )
    return table


def _counts(counter: dict[int, int] | dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(counter.items(), key=lambda kv: str(kv[0])))
