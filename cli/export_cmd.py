"""``brats export RUN_DIR --out EXPORT_DIR [--opset N] [--precision fp32|fp16] [--check-data DIR]``."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from brats_sdk.export.parity import MIN_LABEL_AGREEMENT, VolumeParity
from brats_sdk.export.write import DEFAULT_OPSET, ExportOptions, ExportPrecision, export_run
from brats_sdk.predict.export_manifest import EXPORT_FILE
from cli.console import console, counted, err_console
from cli.options import parse_int_list, quiet_option


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Export folder to create (absent or empty).")
@click.option("--opset", type=click.IntRange(14, 20), default=DEFAULT_OPSET, show_default=True, help="ONNX opset.")
@click.option("--precision", type=click.Choice([p.value for p in ExportPrecision]), default="fp32", show_default=True,
              help="fp16 graphs are for providers with fp16 kernels (CUDA); inputs and outputs stay float32.")
@click.option("--check-data", "check_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also check ONNX Runtime against PyTorch on the volumes of this data folder (repeatable).")
@click.option("--check-volumes", "check_volumes", default=None, help="Only these volumes of --check-data, e.g. 1,4,7.")
@quiet_option
def export_cmd(
    run_dir: Path, out_dir: Path, opset: int, precision: str, check_dirs: tuple[Path, ...], check_volumes: str | None,
    quiet: bool,
) -> None:
    """Export the networks of RUN_DIR to ONNX, with export.json, checked against PyTorch.

    The export predicts with `brats predict --model-dir EXPORT_DIR` or
    `CombinedPredictor.from_export` through ONNX Runtime, without PyTorch. Before the
    folder appears, ONNX Runtime and PyTorch run the whole prediction on a synthetic
    volume and on the --check-data volumes; labels must agree on at least 99.99 % of
    brain voxels and the survival bins must be identical, or nothing is written.
    """
    options = ExportOptions(
        opset=opset, precision=ExportPrecision(precision), check_dirs=check_dirs,
        check_volumes=parse_int_list(check_volumes, name="--check-volumes"),
    )

    def on_volume(p: VolumeParity) -> None:
        if not quiet:
            err_console.print(f"checked {p.name}: labels agree on {100 * p.label_agreement:.4f} % of brain voxels")

    result = export_run(run_dir, out_dir, options, on_volume=on_volume)
    table = Table(title=f"ONNX Runtime against PyTorch ({counted(len(result.parity), 'volume')}, {result.seconds:.1f} s)",
                  caption=f"brain: voxels; labels: identical there (>= {100 * MIN_LABEL_AGREEMENT:.2f} % needed); "
                          "diff: max |logit PyTorch - ONNX|; bins: volume bin PyTorch/ONNX", box=box.SIMPLE_HEAD, show_edge=False)
    # Fits 80 columns: case names stay whole.
    for col in ("volume", "brain", "labels %", "seg diff", "surv diff", "bins"):
        table.add_column(col, justify="left" if col == "volume" else "right", no_wrap=col == "volume")
    for p in result.parity:
        table.add_row(
            p.name, str(p.brain_voxels), f"{100 * p.label_agreement:.4f}", f"{p.segmenter_max_logit_diff:.2e}",
            "-" if p.survival_max_logit_diff is None else f"{p.survival_max_logit_diff:.2e}",
            "-" if p.torch_bin is None and p.onnx_bin is None else f"{p.torch_bin}/{p.onnx_bin}",
        )
    console.print(table)
    networks = "segmenter and survival" if result.manifest.survival is not None else "segmenter"
    console.print(f"Exported the {networks} ({result.manifest.precision}, opset {result.manifest.opset}) to {result.out_dir}; "
                  f"see {result.out_dir / EXPORT_FILE}")
