"""Writing an audit: ``audit.json`` (fixed core for scripts), ``audit.csv`` (one line per row)
and a self-contained ``audit.html`` (tables and the figure inline)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from brats_sdk._version import __version__
from brats_sdk.atomic import atomic_write_text
from brats_sdk.audit.figure import accuracy_figure, row_label
from brats_sdk.audit.result import PATIENT_SPLIT, SLICE_SPLIT, Accuracy, AuditResult, AuditRow
from brats_sdk.predict.outputs import write_json, write_rows_csv

__all__ = ["AUDIT_CSV", "AUDIT_HTML", "AUDIT_JSON", "AuditFiles", "accuracy_text", "audit_dict", "plain_notes", "write_audit"]

AUDIT_JSON = "audit.json"
AUDIT_CSV = "audit.csv"
AUDIT_HTML = "audit.html"


@dataclass(frozen=True, slots=True)
class AuditFiles:
    """The three files :func:`write_audit` wrote."""

    json: Path
    csv: Path
    html: Path


def accuracy_text(a: Accuracy | None, unit: str = "patients") -> str:
    """``0.625 [0.31, 0.86] (n = 8 patients)``; ``n/a`` when there is nothing to score."""
    if a is None or a.value is None:
        return "n/a"
    ci = "" if a.ci is None else f" [{a.ci[0]:.2f}, {a.ci[1]:.2f}]"
    return f"{a.value:.3f}{ci} (n = {a.n} {unit.removesuffix('s') if a.n == 1 else unit})"


def plain_notes(result: AuditResult) -> tuple[str, ...]:
    """What the rows mean, in plain words: the leak and whether the network beats age alone."""
    notes: list[str] = []
    s, p, age = result.row(SLICE_SPLIT), result.row(PATIENT_SPLIT), result.row("age only")
    if s is not None and p is not None and result.inflation is not None:
        notes.append(
            f"Split by slice, the network scores {s.patient.value:.3f} per patient; split by patient, "
            f"{p.patient.value:.3f}. The difference, {result.inflation:+.3f}, is the leak: "
            f"{s.test_patients_in_training} of the slice split's {s.patient.n} test patients were also training patients."
        )
    if p is not None and age is not None and p.patient.value is not None and age.patient.value is not None:
        if p.patient.value <= age.patient.value:
            notes.append(
                f"The network does not beat age alone on the same {p.patient.n} test patients "
                f"({p.patient.value:.3f} against {age.patient.value:.3f})."
            )
        else:
            notes.append(
                f"The network beats age alone by {p.patient.value - age.patient.value:+.3f} on the same "
                f"{p.patient.n} test patients; compare the intervals before trusting the difference."
            )
    return tuple(notes)


def audit_dict(result: AuditResult) -> dict[str, object]:
    """The ``audit.json`` payload: ``rows`` and ``inflation`` first, then the details."""
    return {
        "rows": [r.to_dict() for r in result.rows],
        "inflation": result.inflation,
        "kind": result.kind,
        "sdk_version": __version__,
        "settings": dict(result.settings),
        "counts": dict(result.counts),
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "notes": list(result.notes),
    }


def _csv_rows(rows: Sequence[AuditRow]) -> list[dict[str, object]]:
    out = []
    for r in rows:
        d = r.to_dict()
        for key in ("acc_patient_ci", "acc_slice_ci", "acc_slice_nonempty_ci", "confusion", "cutoffs_days"):
            d[key] = None if d[key] is None else json.dumps(d[key])
        out.append(d)
    return out


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}.leak{color:#D55E00;font-weight:bold}.note{background:#fff6e5;border-left:4px solid #D55E00;padding:6px 10px}
img{max-width:100%}"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _kv(d: Mapping[str, object]) -> str:
    return _table(("", ""), [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in d.items()])


def render_html(result: AuditResult, png: bytes) -> str:
    """The self-contained page: headline, rows, figure, confusion matrices, settings."""
    title = "Survival audit" if result.kind == "networks" else "Survival baselines on the clinical table"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>",
             f"<h1>{title}</h1>"]
    if result.inflation is not None:
        parts.append(f"<p class='leak'>Inflation by the slice split (per patient): {result.inflation:+.3f}</p>")
    parts.extend(f"<p class='note'>{_e(n)}</p>" for n in result.notes)
    rows = [
        (row_label(r.name, r.bins, r.subset), r.bins, accuracy_text(r.patient),
         accuracy_text(r.per_slice, "slices"), accuracy_text(r.per_slice_nonempty, "slices"),
         "-" if r.test_patients_in_training is None else r.test_patients_in_training,
         "-" if r.n_train_patients is None else r.n_train_patients, r.note)
        for r in result.rows
    ]
    parts.append(_table(("row", "bins", "per patient [95 % CI]", "per slice", "per non-empty slice",
                         "test patients also in training", "training patients", "note"), rows))
    data = base64.b64encode(png).decode("ascii")
    parts.append(f"<h2>Figure</h2><img alt='per-patient accuracy with 95 % intervals' src='data:image/png;base64,{data}'>")
    parts.append("<h2>Confusion matrices (per patient; rows truth, columns prediction)</h2>")
    for r in result.rows:
        if r.confusion is not None:
            n = len(r.confusion)
            parts.append(f"<h3>{_e(row_label(r.name, r.bins, r.subset))}</h3>")
            parts.append(_table(("truth \\ predicted", *(str(b) for b in range(n))), [(b, *r.confusion[b]) for b in range(n)]))
    parts.append("<h2>Settings</h2>" + _kv(result.settings))
    parts.append("<h2>Counts</h2>" + _kv(result.counts))
    parts.append("<h2>Seconds</h2>" + _kv({k: round(v, 1) for k, v in result.seconds.items()}))
    parts.append(f"<p>brats_sdk {__version__}. Per-patient intervals: Wilson; per-slice intervals: "
                 "percentile bootstrap over patients (2,000 resamples).</p></body></html>")
    return "".join(parts)


def write_audit(result: AuditResult, out_dir: Path | str) -> AuditFiles:
    """Write ``audit.json``, ``audit.csv`` and ``audit.html`` into ``out_dir`` atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = AuditFiles(out / AUDIT_JSON, out / AUDIT_CSV, out / AUDIT_HTML)
    write_json(files.json, audit_dict(result))
    write_rows_csv(files.csv, _csv_rows(result.rows))
    atomic_write_text(files.html, render_html(result, accuracy_figure(result)))
    return files
