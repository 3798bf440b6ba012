"""``brats convert``: a BraTS NIfTI folder -> the Kaggle h5 layout."""

from __future__ import annotations

import time
from pathlib import Path

import click

from brats_sdk.data.convert import convert_folder
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.nifti_labels import LabelConvention
from cli.console import console, counted, err_console, progress_bar
from cli.exit_codes import ExitCode
from cli.options import label_convention_option, parse_int_list


@click.command("convert")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--volumes",
    "volumes_text",
    default=None,
    help="Convert only these volumes, e.g. 1,2 (cases are numbered 1..N in name order).",
)
@click.option(
    "--no-compress",
    is_flag=True,
    help="Store h5 datasets uncompressed (about 10x larger, slightly faster to read).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into a data folder that already holds slice files (stale ones are deleted).",
)
@label_convention_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def convert_cmd(
    data_dir: Path,
    out_dir: Path,
    volumes_text: str | None,
    no_compress: bool,
    overwrite: bool,
    label_convention: LabelConvention,
    quiet: bool,
) -> None:
    """Convert the NIfTI cases in DATA_DIR to the Kaggle h5 layout under OUT_DIR.

    DATA_DIR holds case folders (BraTS 2020 <case>_flair/_t1/_t1ce/_t2[/_seg] or
    BraTS 2021+ <case>-t2f/-t1n/-t1c/-t2w[/-seg], .nii.gz or .nii), or is one case
    folder. OUT_DIR gets BraTS2020_training_data/content/data with one h5 file per
    slice, meta_data.csv and volume_map.csv (volume -> case name).

    Atomic per case: a case that fails leaves no slice file and the others are
    converted (exit 3, each failure listed); running the command again keeps the
    cases already converted and converts the rest.
    """
    t0 = time.perf_counter()
    volumes = parse_int_list(volumes_text, name="--volumes")
    source = NiftiFolder(data_dir, volumes=volumes, skip_broken=True, label_convention=label_convention)
    with progress_bar("Converting", len(source), quiet=quiet) as advance:
        result = convert_folder(
            data_dir,
            out_dir,
            progress=advance,
            volumes=volumes,
            compress=not no_compress,
            overwrite=overwrite,
            label_convention=label_convention,
        )
    kept = f", kept {len(result.kept)} converted before" if result.kept else ""
    console.print(
        f"Converted {counted(len(result.converted), 'volume')}{kept}, {len(result.failed)} failed ({counted(result.slices, 'slice')}) "
        f"from {data_dir} to {result.data_dir} in {time.perf_counter() - t0:.1f} s"
    )
    for failure in result.failed:
        err_console.print(f"[red]failed[/red] volume {failure.volume} ({failure.name}): {failure.reason}",
                          markup=True, soft_wrap=True)
    if not result.ok:
        raise SystemExit(ExitCode.VOLUMES_SKIPPED)
