"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

import click

from brats_sdk.constants import DEVICE_CHOICES
from brats_sdk.data.nifti_labels import LabelConvention
from brats_sdk.data.sources import DataFormat
from brats_sdk.distributed import is_main_process
from cli.console import console

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=Enum)

# Click's parameter types are generic only in recent releases: subscripted for the type
# checker, plain at run time, so that every click the project allows imports this module.
if TYPE_CHECKING:
    _ChoiceBase = click.Choice[str]
    _ParamBase = click.ParamType[tuple[Any, ...]]
else:
    _ChoiceBase = click.Choice
    _ParamBase = click.ParamType


class EnumChoice(_ChoiceBase):
    """A choice among an option enum's values that gives the command the enum member,
    so a typed value goes straight into a config (help and errors list the values)."""

    def __init__(self, enum: type[E]) -> None:
        super().__init__([str(m.value) for m in enum])
        self.enum: type[Enum] = enum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, self.enum):
            return value
        return self.enum(super().convert(value, param, ctx))


class Triple(_ParamBase):
    """``"a,b,c"`` (or one value for all three) -> a typed 3-tuple, one value per stage."""

    name = "text"

    def __init__(self, cast: Callable[[str], Any]) -> None:
        self.cast = cast

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        if len(parts) == 1:
            parts = parts * 3
        try:
            values = tuple(self.cast(p) for p in parts)
        except ValueError:
            values = ()
        if len(values) != 3:
            self.fail(f"expected 1 or 3 comma-separated values, got {value!r}", param, ctx)
        return values


def device_option(f: F) -> F:
    return click.option(
        "--device", default="auto", show_default=True, metavar=DEVICE_CHOICES,
        help="Compute device; auto picks CUDA, then MPS, then the CPU.",
    )(f)


def quiet_option(f: F) -> F:
    return click.option("--quiet", is_flag=True, help="No progress bars.")(f)


def format_option(f: F) -> F:
    return click.option(
        "--format", "data_format", type=EnumChoice(DataFormat), default="auto",
        show_default=True, help="Layout of the data folder (auto detects it).",
    )(f)


def parse_int_list(value: str | None, *, name: str) -> tuple[int, ...] | None:
    """``"1,5,9"`` -> (1, 5, 9)."""
    if value is None or value == "":
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint=name) from None


def announce_device(spec: str) -> str:
    """Resolve the device once and say which it is."""
    from brats_sdk.device import resolve_device

    device = resolve_device(spec)
    if is_main_process():
        console.print(f"Device: [bold]{device}[/bold]" + (" (chosen automatically)" if spec == "auto" else ""))
    return str(device)


def warn_slow_bf16(device: str, asked: bool, what: str) -> None:
    """Say once, in yellow, that bf16 on this CPU is emulated and slower than fp32."""
    if not asked or not is_main_process():
        return
    from brats_sdk.device import bf16_is_emulated

    if bf16_is_emulated(device):
        console.print(
            f"[yellow]{what}: this CPU has no native bf16 (AVX-512 BF16 or AMX); bf16 is emulated "
            "here and slower than fp32.[/yellow]"
        )


def label_convention_option(f: F) -> F:
    return click.option(
        "--label-convention", type=EnumChoice(LabelConvention), default=LabelConvention.BRATS2017.value,
        show_default=True,
        help="What label 3 in NIfTI segmentations means: brats2017 (unused; a 3 is refused), brats2012 "
             "(non-enhancing core, read as 1 NCR/NET as BraTS 2017+ merged them), brats2023 (enhancing "
             "tumour, read as 4).",
    )(f)
