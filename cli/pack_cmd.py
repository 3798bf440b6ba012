"""``brats pack``: convert a data folder (Kaggle h5 or NIfTI release) into one brain-box file per volume."""

from __future__ import annotations

from pathlib import Path

import click

from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.data.packed import IMAGE_DTYPES, ImageDtype
from brats_sdk.data.packed_writer import open_pack_source, pack_folder
from cli.console import console, counted, err_console, progress_bar
from cli.exit_codes import ExitCode
from cli.options import label_convention_option


@click.command("pack")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--dtype",
    "image_dtype",
    type=click.Choice(list(IMAGE_DTYPES)),
    default="float32",
    show_default=True,
    help="Image storage type: float32 reads back identical, float16 halves the size (values rounded to float16, brain masks kept).",
)
@click.option(
    "--require-mask/--no-require-mask",
    default=True,
    show_default=True,
    help="Whether every slice must have a mask (--no-require-mask packs unlabelled data).",
)
@label_convention_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def pack_cmd(
    data_dir: Path, out_dir: Path, image_dtype: ImageDtype, require_mask: bool, label_convention: LabelConvention, quiet: bool
) -> None:
    """Pack DATA_DIR (Kaggle h5 layout or a NIfTI release) into one h5 file per volume in OUT_DIR.

    Each file holds the volume's brain box, its class indices and per-slice statistics;
    readers give back the whole frame. Resumable: volumes already packed and verified
    are skipped, and folders packed by an older format are rewritten. Exits 3 if some
    volumes could not be packed (each is listed); the others are still packed.
    """
    folder = open_pack_source(data_dir, require_mask=require_mask, label_convention=label_convention)
    with progress_bar("Packing", len(folder.volumes()), quiet=quiet) as advance:
        result = pack_folder(
            folder, out_dir, image_dtype=image_dtype, require_mask=require_mask, progress=advance
        )
    console.print(
        f"Packed {counted(len(result.packed), 'volume')}, skipped {len(result.skipped)} already packed, "
        f"{len(result.failed)} failed ({image_dtype}) into {result.out_dir} in {result.seconds:.1f} s"
    )
    for failure in result.failed:
        err_console.print(
            f"[red]failed[/red] volume {failure.volume}: {failure.message}",
            markup=True,
            soft_wrap=True,
        )
    if not result.ok:
        raise SystemExit(ExitCode.VOLUMES_SKIPPED)
