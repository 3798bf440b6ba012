"""``brats audit DATA_DIR --out AUDIT_DIR`` and ``brats audit --clinical-only CSV --out AUDIT_DIR``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from brats_sdk.audit import (
    AuditConfig,
    AuditResult,
    accuracy_text,
    clinical_only_audit,
    run_audit,
    write_audit,
)
from brats_sdk.audit.write import AUDIT_HTML
from brats_sdk.bins import BinMethod
from brats_sdk.data.sources import DataFormat
from cli.console import console, err_console
from cli.observer import RichObserver
from cli.options import announce_device, device_option, format_option, quiet_option


@click.command("audit")
@click.argument("data_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Audit folder: audit.json, audit.csv, audit.html and the two trainings.")
@click.option("--survival-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="survival_info.csv (default: the one beside the data).")
@click.option("--clinical-only", "clinical_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Only the majority and age-only baselines on this survival table, by stratified k-fold CV "
                   "(both bin schemes, all patients and GTR only); DATA_DIR is not needed.")
@click.option("--bins", type=click.Choice([m.value for m in BinMethod]), default="quantile", show_default=True,
              help="quantile: tertiles of the training patients (the paper's); brats: 304.2 / 456.25 days.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Maximum epochs of each training.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Slices per step.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate.")
@click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True, help="Early-stopping patience.")
@click.option("--step-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="StepLR period in epochs (gamma 0.1; the paper: 10).")
@click.option("--input-size", type=click.IntRange(min=32), default=224, show_default=True,
              help="Side of the mask images the network takes (the paper: 224; smaller is faster).")
@click.option("--val-fraction", type=click.FloatRange(0.0, 0.5), default=0.1, show_default=True,
              help="Validation share of both splits (patients, slices).")
@click.option("--test-fraction", type=click.FloatRange(0.05, 0.5), default=0.1, show_default=True,
              help="Test share of both splits (the paper: 0.1).")
@click.option("--max-volumes", type=click.IntRange(min=3), default=None, help="Use only the first N volumes.")
@click.option("--max-steps-per-epoch", type=click.IntRange(min=1), default=None, help="Cap on steps per epoch.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Folds of --clinical-only.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the splits, weights and folds.")
@click.option("--resume", is_flag=True, help="Continue an interrupted audit in AUDIT_DIR.")
@format_option
@device_option
@quiet_option
def audit_cmd(
    data_dir: Path | None, out_dir: Path, survival_csv: Path | None, clinical_csv: Path | None, bins: str,
    epochs: int, batch_size: int, lr: float, patience: int, step_size: int, input_size: int, val_fraction: float,
    test_fraction: float, max_volumes: int | None, max_steps_per_epoch: int | None, folds: int, seed: int,
    resume: bool, data_format: str, device: str, quiet: bool,
) -> None:
    """How much of a survival accuracy is leakage and how much is age.

    Trains the survival classifier twice on DATA_DIR with the same budget, seed and bins,
    split by slice (the paper's protocol) and by patient, and scores the majority,
    age-only and age + volumes baselines on the patient split's test patients.
    """
    if clinical_csv is not None:
        result = clinical_only_audit(clinical_csv, folds=folds, seed=seed)
        files = write_audit(result, out_dir)
        _print(result, f"Baselines on {clinical_csv} ({folds}-fold CV)")
        console.print(f"Wrote {files.html}")
        return
    if data_dir is None:
        raise click.UsageError("give DATA_DIR, or --clinical-only CSV")
    config = AuditConfig(
        data_dir=data_dir, out_dir=out_dir, survival_csv=survival_csv, bins=BinMethod(bins), epochs=epochs,
        batch_size=batch_size, lr=lr, patience=patience, step_size=step_size, seed=seed, device=device if quiet else announce_device(device),
        input_size=input_size, fractions=(1.0 - val_fraction - test_fraction, val_fraction, test_fraction),
        max_volumes=max_volumes, max_steps_per_epoch=max_steps_per_epoch, resume=resume,
        data_format=DataFormat(data_format),
    )
    with RichObserver(quiet=quiet) as observer:
        result = run_audit(config, observer=observer, on_stage=lambda line: None if quiet else err_console.print(line))
    _print(result, f"Survival audit of {data_dir}")
    console.print(f"Wrote {out_dir / AUDIT_HTML}")


def _print(result: AuditResult, title: str) -> None:
    table = Table(title=title)
    if result.kind == "clinical-only":
        table.add_column("baseline", no_wrap=True)
        for col in ("bins", "patients", "per patient [95% CI]"):
            table.add_column(col)
        for r in result.rows:
            table.add_row(r.name, r.bins, str(r.subset), accuracy_text(r.patient))
        console.print(table)
        for note in result.notes:
            console.print(note, markup=False)
        return
    table.add_column("row", no_wrap=True)
    for col in ("bins", "per patient [95% CI]", "per slice [95% CI]", "non-empty slices [95% CI]", "test in training"):
        table.add_column(col)
    for r in result.rows:
        name = r.name if r.subset is None else f"{r.name} ({r.subset})"
        style = "bold red" if r.name == "slice split" else None
        table.add_row(
            name, r.bins, accuracy_text(r.patient), accuracy_text(r.per_slice, "slices"),
            accuracy_text(r.per_slice_nonempty, "slices"),
            "-" if r.test_patients_in_training is None else str(r.test_patients_in_training), style=style,
        )
    console.print(table)
    if result.inflation is not None:
        console.print(f"[bold red]Inflation (slice split minus patient split, per patient): {result.inflation:+.3f}[/bold red]")
    for note in result.notes:
        console.print(note, markup=False)
