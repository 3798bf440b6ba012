"""The ``brats`` command: a thin Click app over brats_sdk.

Library errors (:class:`~brats_sdk.errors.BratsError`) become a one-line message and
exit code 1; no traceback is shown for bad input.
"""

from __future__ import annotations

from typing import Any

import click

from brats_sdk import __version__
from brats_sdk.errors import BratsError
from cli.console import setup_logging
from cli.convert_cmd import convert_cmd
from cli.data_cmds import inspect_cmd, synth_cmd
from cli.predict_cmd import predict_cmd
from cli.train_cmd import train_group


class BratsGroup(click.Group):
    """Turns library errors into ``click.ClickException`` (one line, exit code 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BratsError as exc:
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


@click.group(cls=BratsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="brats")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Segment BraTS 2020 tumour sub-regions and predict overall-survival class."""
    setup_logging(verbose)


cli.add_command(synth_cmd)
cli.add_command(inspect_cmd)
cli.add_command(train_group)
cli.add_command(predict_cmd)
cli.add_command(convert_cmd)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="brats")
