"""``brats view PRED_DIR --out viewer.html [--ground-truth DATA_DIR] [--volumes 1,4]``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from brats_sdk.report import ImageFormat, ViewerOptions, write_viewer
from brats_sdk.report.folder import read_prediction_folder
from cli.console import console, counted, progress_bar
from cli.options import parse_int_list, quiet_option


@click.command("view")
@click.argument("pred_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write (self-contained; opens from file://).")
@click.option("--ground-truth", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Labelled data folder (Kaggle h5, NIfTI cases or packed): truth outline, error view and images. "
                   "Without it the images come from the folder the predictions were made from, when it still exists.")
@click.option("--volumes", default=None, metavar="V1,V2,...",
              help="These volumes, in this order (default: the largest predicted tumours).")
@click.option("--max-volumes", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many volumes when --volumes is not given.")
@click.option("--quality", type=click.IntRange(1, 100), default=70, show_default=True,
              help="Lossy quality of the images (lowered automatically above --max-mb per volume).")
@click.option("--max-mb", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Budget per volume in MB.")
@click.option("--image-format", type=click.Choice([m.value for m in ImageFormat]), default=ImageFormat.WEBP.value,
              show_default=True, help="Format of the intensity images.")
@quiet_option
def view_cmd(
    pred_dir: Path, out: Path, ground_truth: Path | None, volumes: str | None, max_volumes: int,
    quality: int, max_mb: float, image_format: str, quiet: bool,
) -> None:
    """Write an interactive slice viewer of what `brats predict --save-masks` wrote into PRED_DIR (no scoring)."""
    chosen = parse_int_list(volumes, name="--volumes")
    options = ViewerOptions(image_format=ImageFormat(image_format), quality=quality, max_bytes=int(max_mb * 1e6))
    total = len(chosen) if chosen is not None else min(max_volumes, len(read_prediction_folder(pred_dir).volumes))
    with progress_bar("Encoding volumes", total, quiet=quiet) as advance:
        build = write_viewer(pred_dir, out, ground_truth=ground_truth, volumes=chosen, max_volumes=max_volumes,
                             options=options, on_volume=lambda _v: advance())
    table = Table(title=f"Slice viewer of {counted(len(build.volumes), 'volume')} ({build.seconds:.1f} s)")
    for col in ("volume", "name", "slices", "box", "truth", "uncertainty", "quality", "MB"):
        table.add_column(col, justify="left" if col in ("name", "uncertainty") else "right")
    for v in build.volumes:
        table.add_row(str(v.volume), v.name, f"{v.slices}/{v.depth}", f"{v.height}x{v.width}",
                      "yes" if v.has_truth else "no", ", ".join(v.uncertainty) or "-", str(v.quality), f"{v.bytes / 1e6:.2f}")
    console.print(table)
    for note in build.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"Wrote {out}")
