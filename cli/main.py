"""The ``brats`` command: a thin Click app over brats_sdk.

Library errors (:class:`~brats_sdk.errors.BratsError`) become a one-line message and
exit code 1; no traceback is shown for bad input. Subcommands are imported only when
run, so ``brats --help`` and ``brats --version`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from brats_sdk import __version__
from brats_sdk.errors import BratsError, first_line
from cli.console import setup_logging

# name -> (module, attribute, one-line help shown by `brats --help`)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("cli.data_cmds", "synth_cmd", "Write a synthetic cohort in the Kaggle h5 layout."),
    "inspect": ("cli.data_cmds", "inspect_cmd", "Check a data folder (h5, NIfTI or packed); exit 1 on problems."),
    "train": ("cli.train_cmd", "train_group", "Train the segmenter, the survival classifier, or both."),
    "predict": ("cli.predict_cmd", "predict_cmd", "Segment and classify a folder of volumes."),
    "report": ("cli.report_cmd", "report_cmd", "Score predictions and write an HTML report."),
    "audit": ("cli.audit_cmd", "audit_cmd", "Survival: the slice split's leak and the baselines beside the model."),
    "view": ("cli.view_cmd", "view_cmd", "Write an interactive slice viewer of predictions (one HTML file)."),
    "convert": ("cli.convert_cmd", "convert_cmd", "Convert a NIfTI release into the Kaggle h5 layout."),
    "pack": ("cli.pack_cmd", "pack_cmd", "Pack per-slice h5 files into one file per volume."),
    "export": ("cli.export_cmd", "export_cmd", "Export a run to ONNX (checked against PyTorch) for prediction without it."),
}


class BratsGroup(click.Group):
    """Lazy subcommands; library errors become ``click.ClickException`` (one line, exit 1)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command = getattr(module, entry[1])
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry[0]}.{entry[1]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in _COMMANDS.items()])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BratsError as exc:
            # A ClickException exits with ExitCode.ERROR (1).
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        except OSError as exc:
            # The environment failed where the library does not name it (disk full, a
            # folder removed under a run): still one line, exit 1, no traceback.
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or first_line(exc)}") from exc


@click.group(cls=BratsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="brats")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Segment BraTS 2020 tumour sub-regions and predict overall-survival class.

    Quick start on a synthetic cohort: `brats synth demo/ --volumes 10`, then `brats train
    all demo/ --out run/` (the paper's recipe: hours on a CPU; `make demo` in a source
    checkout trains a quick one), then `brats predict demo/ --model-dir run/ --age-csv
    demo/BraTS2020_training_data/content/data/survival_info.csv --out pred/` (ages from the
    cohort's survival table).

    Exit codes: 0 all done; 1 an error in the input, the files or the environment (one
    line naming the file or option); 2 a usage error; 3 a batch that finished but
    skipped some volumes (listed; `brats predict` writes them to errors.csv).
    """
    setup_logging(verbose)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="brats")
