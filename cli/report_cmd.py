"""``brats report PRED_DIR --out REPORT_DIR [--ground-truth DATA_DIR] [--survival-csv CSV]``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.errors import ConfigError
from brats_sdk.metrics.segmentation import HD95Method
from brats_sdk.report import ReportOptions, headline, resolve_survival_model, write_report
from brats_sdk.report.folder import read_prediction_folder
from cli.console import console, counted, progress_bar
from cli.options import device_option, label_convention_option, quiet_option


@click.command("report")
@click.argument("pred_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Report folder: report.html, metrics.json, per_volume.csv, figures/.")
@click.option("--ground-truth", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Labelled data folder (Kaggle h5, NIfTI cases or packed) to score the segmentation "
                   "against; NIfTI cases are matched by case name, others by volume number.")
@click.option("--survival-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="survival_info.csv to score the survival classes against.")
@click.option("--survival-model", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Survival checkpoint for the PCA of image features (paper Fig. 8).")
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A `brats train` run folder; its survival.pt is used when --survival-model is not given.")
@click.option("--max-figure-volumes", type=click.IntRange(min=0), default=3, show_default=True,
              help="Volumes drawn as image and mask overlays (largest predicted tumours first).")
@click.option("--viewer-volumes", type=click.IntRange(min=0), default=3, show_default=True,
              help="Volumes in the interactive slice viewer (largest predicted tumours first; "
                   "about 1-2 MB each); 0 leaves the viewer out.")
@click.option("--hd95-method", type=click.Choice([m.value for m in HD95Method]), default=HD95Method.POOLED.value,
              show_default=True, help="pooled: MedPy/nnU-Net HD95; max_directed: max of the two directed 95th percentiles.")
@click.option("--force", is_flag=True,
              help="Score --ground-truth even when its images are not those the predictions were made from.")
@label_convention_option
@click.option("--compare", "compare_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A second prediction folder of the same volumes (e.g. without --tta): its Dice and HD95 against "
                   "--ground-truth are shown beside PRED_DIR's.")
@device_option
@quiet_option
def report_cmd(
    pred_dir: Path, out_dir: Path, ground_truth: Path | None, survival_csv: Path | None,
    survival_model: Path | None, model_dir: Path | None, max_figure_volumes: int, viewer_volumes: int,
    hd95_method: str, force: bool, label_convention: LabelConvention, compare_dir: Path | None, device: str,
    quiet: bool,
) -> None:
    """Score and draw what `brats predict --save-masks` wrote into PRED_DIR."""
    if compare_dir is not None and ground_truth is None:
        raise ConfigError("--compare scores both folders against the ground truth: add --ground-truth")
    model = resolve_survival_model(survival_model, model_dir)
    total = len(read_prediction_folder(pred_dir).volumes)
    with progress_bar("Scoring volumes", total, quiet=quiet) as advance:
        files = write_report(
            pred_dir, out_dir, ground_truth=ground_truth, survival_csv=survival_csv, survival_model=model,
            options=ReportOptions(max_figure_volumes=max_figure_volumes, device=device, hd95_method=HD95Method(hd95_method),
                                  viewer_volumes=viewer_volumes, force=force, label_convention=label_convention),
            on_volume=lambda _v: advance(), compare=compare_dir,
        )
    data = files.data
    table = Table(title=f"Report of {counted(len(data.volumes), 'volume')} ({files.seconds:.1f} s)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for h in headline(data):
        table.add_row(h.name, h.text)
    console.print(table)
    if data.leaks_patients:
        console.print("[bold red]The models were trained on a slice-level split: the survival figures leak patients.[/bold red]")
    if data.survival is not None and data.survival.baseline_note:
        console.print(f"[yellow]{data.survival.baseline_note}[/yellow]")
    for o in data.overlap:
        if o.n_train:
            console.print(f"[yellow]{o.n_train} of {len(data.volumes)} volumes were in the {o.role} model's "
                          "training or validation set.[/yellow]")
    if data.missing_in_ground_truth:
        console.print(f"[yellow]{counted(len(data.missing_in_ground_truth), 'volume')} not in the ground truth: "
                      f"{', '.join(map(str, data.missing_in_ground_truth))}[/yellow]")
    for note in data.notes:
        console.print(f"note: {note}", markup=False)
    if files.viewer is not None:
        for note in files.viewer.notes:
            console.print(f"note: {note}", markup=False)
        sizes = ", ".join(f"{v.volume}: {v.bytes / 1e6:.2f} MB" for v in files.viewer.volumes)
        console.print(f"Slice viewer of {counted(len(files.viewer.volumes), 'volume')} ({sizes})")
    console.print(f"Wrote {files.html}")
