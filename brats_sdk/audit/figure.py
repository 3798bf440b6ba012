"""The audit's one figure: every row's per-patient accuracy with its 95 % interval, the
leak (slice split minus patient split) marked. matplotlib's object API on the Agg canvas,
as the report's figures: pyplot is never imported."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from brats_sdk.audit.result import PATIENT_SPLIT, SLICE_SPLIT, AuditResult

__all__ = ["accuracy_figure", "row_label"]

_DPI = 96
_LEAK = "#D55E00"
_NETWORK = "#0072B2"
_BASELINE = "#7f7f7f"


def row_label(name: str, bins: str, subset: str | None) -> str:
    """A row's label in tables and the figure."""
    return name if subset is None else f"{name} ({bins} bins, {subset})"


def accuracy_figure(result: AuditResult) -> bytes:
    """Per-patient accuracy of each row with its interval (PNG bytes).

    Rows without an accuracy are drawn as a label only. For a network audit, the slice
    split's bar and the gap to the patient split are drawn in orange and labelled.
    """
    rows = list(result.rows)
    height = 1.2 + 0.45 * max(len(rows), 1)
    fig = Figure(figsize=(8.0, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    for y, r in zip(ys, rows, strict=True):
        acc, ci = r.patient.value, r.patient.ci
        colour = _LEAK if r.name == SLICE_SPLIT else _NETWORK if r.name == PATIENT_SPLIT else _BASELINE
        if acc is None:
            continue
        ax.barh(y, acc, color=colour, alpha=0.35, height=0.6)
        if ci is not None:
            ax.errorbar(acc, y, xerr=[[max(acc - ci[0], 0.0)], [max(ci[1] - acc, 0.0)]], fmt="o", color=colour, capsize=4)
        ax.text(min(acc, 0.8) + 0.01, y + 0.22, f"{acc:.2f} (n={r.patient.n})", fontsize=8, color="black")
    ax.set_yticks(ys, [row_label(r.name, r.bins, r.subset) for r in rows])
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("accuracy per patient (95 % interval)")
    ax.grid(axis="x", alpha=0.3)
    slice_row, patient_row = result.row(SLICE_SPLIT), result.row(PATIENT_SPLIT)
    if result.inflation is not None and slice_row is not None and patient_row is not None:
        y_slice, y_patient = ys[rows.index(slice_row)], ys[rows.index(patient_row)]
        a, b = slice_row.patient.value or 0.0, patient_row.patient.value or 0.0
        ax.annotate("", xy=(b, y_patient), xytext=(a, y_slice),
                    arrowprops={"arrowstyle": "<->", "color": _LEAK, "lw": 1.5})
        # Beside the arrow, clear of the bars' own labels.
        ax.text(min(max(a, b) + 0.2, 0.85), (y_slice + y_patient) / 2, f"leak {result.inflation:+.2f}", color=_LEAK,
                fontsize=9, fontweight="bold", ha="left", va="center",
                bbox={"facecolor": "white", "edgecolor": _LEAK, "boxstyle": "round"})
    ax.set_title("Survival accuracy per patient: networks and baselines" if result.kind == "networks"
                 else "Baselines on the survival table (cross-validated)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()
