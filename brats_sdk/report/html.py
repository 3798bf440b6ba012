"""The report as one self-contained HTML page.

Figures are embedded as base64 PNG ``data:`` URIs; no script, font or style is fetched
from the network. The page is responsive (viewport meta, fluid images, scrollable
tables) and has print CSS. Every accuracy is written with the number it is over.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape

from brats_sdk.audit.write import accuracy_text as audit_text
from brats_sdk.constants import REGIONS
from brats_sdk.predict.results import REGION_NAMES
from brats_sdk.report.figures import RenderedFigure
from brats_sdk.report.report_data import ReportData, SurvivalReport
from brats_sdk.report.summary import (
    accuracy_text,
    hd95_text,
    headline,
    leak_warning,
    region_stats,
    stats,
)

__all__ = ["render_html"]

_CSS = """
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#dadce0;--accent:#0b57d0;--bad:#b00020;--badbg:#fdecea;--okbg:#e6f4ea}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#fff}
main{max-width:1100px;margin:0 auto;padding:16px}
h1{font-size:1.6em;margin:.2em 0}
h2{font-size:1.25em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:1px solid var(--line)}
h3{font-size:1.05em;margin:1em 0 .4em}
.meta,.caption,.note{color:var(--muted);font-size:.9em}
.box{border:1px solid var(--line);border-radius:8px;padding:10px 14px;margin:12px 0;background:var(--okbg)}
.box.leak{border:2px solid var(--bad);background:var(--badbg);color:var(--bad);font-weight:600}
.box.unknown{background:#fef7e0}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:8px 0}
table{border-collapse:collapse;font-size:.9em;min-width:50%}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{background:#f1f3f4;position:sticky;top:0}
td.bad{color:var(--bad)}
figure{margin:12px 0;break-inside:avoid}
figure img{max-width:100%;height:auto;display:block;border:1px solid var(--line);border-radius:4px}
figure.wide{grid-column:1/-1}
#overlays figure img{max-width:760px;width:100%}
figcaption{color:var(--muted);font-size:.88em;margin-top:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:12px}
nav a{margin-right:12px;color:var(--accent);text-decoration:none;white-space:nowrap}
@media (max-width:600px){body{font-size:14px}main{padding:10px}h1{font-size:1.3em}.grid{grid-template-columns:1fr}th,td{white-space:normal}}
@media print{
  body{font-size:10pt}main{max-width:none;padding:0}nav{display:none}
  .table-wrap{overflow:visible}thead th{position:static}
  h2{break-after:avoid}figure,table,.box{break-inside:avoid}
  .box.leak{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  a{color:inherit;text-decoration:none}
}
"""


def _e(x: object) -> str:
    return escape("" if x is None else str(x))


def _num(x: float | int | None, digits: int = 3) -> str:
    return "-" if x is None else f"{float(x):.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, raw: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(f: RenderedFigure) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    cls = ' class="wide"' if f.wide else ""
    return (
        f'<figure id="fig-{_e(f.name)}"{cls}><img src="data:image/png;base64,{data}" alt="{_e(f.title)}" loading="lazy">'
        f"<figcaption><b>{_e(f.title)}.</b> {_e(f.caption)}</figcaption></figure>"
    )


def _honesty(data: ReportData) -> str:
    parts: list[str] = []
    warning = leak_warning(data)
    for m in data.models:
        mode = m.split_mode or "not recorded"
        leak = {True: "leaks patients", False: "no patient in two sets", None: "leakage unknown"}[m.leaks_patients]
        parts.append(f"<li>{_e(m.role)} model: split by <b>{_e(mode)}</b> ({_e(leak)})"
                     + (f", trained on {_e(m.trained_on)}" if m.trained_on else "") + "</li>")
    for o in data.overlap:
        total = o.n_train + o.n_test + o.n_other
        if o.n_train:
            parts.append(f"<li>{o.n_train} of {total} report volumes were in the {_e(o.role)} model's training or "
                         "validation set: its scores on them are not test scores.</li>")
        elif o.n_test:
            parts.append(f"<li>{o.n_test} of {total} report volumes are in the {_e(o.role)} model's test set.</li>")
    items = "<ul>" + "".join(parts) + "</ul>" if parts else "<p>The predictions record no model metadata.</p>"
    if warning is not None:
        return f'<section id="honesty"><h2>Data split</h2><div class="box leak"><p>⚠ {_e(warning)}</p>{items}</div></section>'
    if not data.split_known:
        return ('<section id="honesty"><h2>Data split</h2><div class="box unknown"><p>The models\' metadata does not '
                f"record how patients were split; survival figures may leak patients.</p>{items}</div></section>")
    caution = " unknown" if any(o.n_train for o in data.overlap) else ""
    return f'<section id="honesty"><h2>Data split</h2><div class="box{caution}">{items}</div></section>'


def _summary(data: ReportData) -> str:
    rows = [(h.name, h.text) for h in headline(data)]
    return '<section id="summary"><h2>Summary</h2>' + _table(("figure", "value"), rows) + "</section>"


def _volumes(data: ReportData) -> str:
    vols = data.volumes
    out = ['<section id="volumes"><h2>Volumes</h2>']
    ok = sum(1 for v in vols if v.status == "ok")
    out.append(f"<p>{len(vols)} volumes in the predictions: {ok} with status ok.</p>")
    not_ok: dict[str, list[int]] = {}
    for v in vols:
        if v.status != "ok":
            not_ok.setdefault(v.status, []).append(v.volume)
    if not_ok:
        out.append(_table(("status", "volumes", "count"), [(k, _ids(ids), str(len(ids))) for k, ids in sorted(not_ok.items())]))
    if data.missing_in_ground_truth:
        out.append(f'<p class="note">Not in the ground truth (not scored): volumes {_e(_ids(data.missing_in_ground_truth))}.</p>')
    rows = []
    for name in REGION_NAMES:
        p = stats([v.pred_ml.get(name, 0.0) for v in vols if v.has_mask])
        t = stats([v.truth_ml[name] for v in vols if v.truth_ml is not None])
        rows.append((name, _num(p["mean"], 1), _num(p["median"], 1), _num(p["max"], 1), _num(t["mean"], 1), _num(t["median"], 1)))
    out.append("<h3>Tumour volume (mL)</h3>")
    out.append(_table(("region", "pred. mean", "pred. median", "pred. max", "truth mean", "truth median"), rows))
    out.append("</section>")
    return "".join(out)


def _ids(ids: Sequence[int], limit: int = 30) -> str:
    text = ", ".join(str(i) for i in ids[:limit])
    return text + (f", … ({len(ids)} in all)" if len(ids) > limit else "")


def _segmentation(data: ReportData, figs: list[RenderedFigure]) -> str:
    out = ['<section id="segmentation"><h2>Segmentation</h2>']
    seg = data.segmentation
    if seg is None:
        out.append('<p class="note">Not scored: no ground truth given (--ground-truth), or no volume could be matched.</p></section>')
        return "".join(out)
    rs = region_stats(data)
    n = len(data.scored)
    rows = []
    for region in REGIONS:
        r = rs[region]
        rows.append((
            region,
            f"{_num(r['dice']['mean'])} ± {_num(r['dice']['std'])}", _num(r["dice"]["median"]),
            _num(r["hd95"]["mean"], 2), _num(r["hd95"]["median"], 2),
            _num(r["sensitivity"]["mean"]), _num(r["specificity"]["mean"], 4),
            f"{r['truth_empty']['n']} / {r['pred_empty']['n']}",
        ))
    out.append(f"<p>Per-volume BraTS regions over <b>{n} volumes</b> (mean over volumes; HD95 in mm, "
               f"{_e(hd95_text(data.hd95_method))}).</p>")
    out.append(_table(("region", "Dice mean ± sd", "Dice median", "HD95 mean", "HD95 median", "sensitivity",
                       "specificity", "empty truth / pred."), rows))
    out.append(f"<p>The paper's pooled per-channel Dice over {seg.n_pixels:,} pixels of {n} volumes:</p>")
    out.append(_table(("channel", "Dice"), [*((k, f"{v:.3f}") for k, v in seg.channel_dice.items()), ("mean", f"{seg.mean_dice:.3f}")]))
    out.append('<div class="grid">' + "".join(_figure(f) for f in figs if f.section == "segmentation") + "</div></section>")
    return "".join(out)


def _survival(data: ReportData, figs: list[RenderedFigure]) -> str:
    out = ['<section id="survival"><h2>Survival</h2>']
    s = data.survival
    if s is None:
        out.append('<p class="note">Not scored: no survival CSV given (--survival-csv) or no survival model in the predictions.</p>')
    else:
        excl = ", ".join(f"{n} {why}" for why, n in s.excluded.items() if n) or "none"
        out.append(f"<p>{s.n_with_truth} patients have a true bin (left out: {_e(excl)}). "
                   f"{len(s.not_predicted)} of them have no predicted bin (no age or no tumour predicted) and are not "
                   "counted below.</p>")
        pp, ps = s.per_patient, s.per_slice
        out.append("<ul>")
        out.append(f"<li>Per patient, after the vote: <b>{_e(accuracy_text(None if pp is None else pp.accuracy, 0 if pp is None else pp.n, 'patients'))}</b></li>")
        out.append(f"<li>Per slice (slices with a predicted tumour): <b>{_e(accuracy_text(None if ps is None else ps.accuracy, 0 if ps is None else ps.n, 'slices'))}</b>"
                   f" from {s.per_slice_patients} patients</li>")
        out.append(f"<li>BraTS challenge (gross total resection only): <b>{_e(accuracy_text(s.challenge_accuracy, s.challenge_n, 'patients'))}</b></li>")
        out.append("</ul>")
        out.append(_baselines(s))
        if pp is not None:
            rows = []
            for b, lab in enumerate(s.labels):
                auc = pp.auc[b]
                rows.append((lab, s.ranges[b], accuracy_text(pp.per_bin_accuracy[b], pp.per_bin_n[b], "patients"),
                             _num(auc, 3), _num(None if ps is None else ps.auc[b], 3)))
            out.append(_table(("bin", "days", "accuracy per patient", "AUC per patient", "AUC per slice"), rows))
    out.append('<div class="grid">' + "".join(_figure(f) for f in figs if f.section == "survival") + "</div></section>")
    return "".join(out)


def _baselines(s: SurvivalReport) -> str:
    """The model beside the majority and age-only baselines, on the same patients."""
    if not s.baselines or s.model_patient is None:
        return f'<p class="note">{_e(s.baseline_note)}</p>' if s.baseline_note else ""
    rows = [("this model", audit_text(s.model_patient), "-")]
    rows += [(r.name, audit_text(r.patient), str(r.n_train_patients)) for r in s.baselines]
    return ("<h3>Baselines on the same patients</h3>"
            + _table(("predictor", "accuracy per patient [95% Wilson interval]", "fitted on (training patients)"), rows)
            + f'<p class="note">{_e(s.baseline_note)}</p>')


def _exploratory(data: ReportData, figs: list[RenderedFigure]) -> str:
    ex = data.exploratory
    out = ['<section id="exploratory"><h2>Exploratory figures of the paper</h2>']
    if ex.pca_note:
        out.append(f'<p class="note">Fig. 8 (PCA of image features) skipped: {_e(ex.pca_note)}.</p>')
    if ex.corr_note:
        out.append(f'<p class="note">Fig. 9 (correlation): {_e(ex.corr_note)}.</p>')
    if ex.pca_bin_source == "predicted":
        out.append('<p class="note">Without a survival CSV the points are coloured by the <b>predicted</b> bin, '
                   "which shows what the network does, not how survival relates to the masks.</p>")
    out.append('<div class="grid">' + "".join(_figure(f) for f in figs if f.section == "exploratory") + "</div></section>")
    return "".join(out)


def _per_volume(data: ReportData) -> str:
    labels = data.bin_labels
    header = ["volume", "patient", "status", *(f"Dice {r}" for r in REGIONS), *(f"HD95 {r}" for r in REGIONS),
              "WT mL", "slices", "predicted", "true"]
    rows = []
    for v in data.volumes:
        reg = v.regions
        cells = [str(v.volume), _e(v.patient_id), _e(v.status if v.not_scored is None else f"{v.status}; {v.not_scored}")]
        cells += [_num(None if reg is None else reg[r].dice) for r in REGIONS]
        cells += [_num(None if reg is None else reg[r].hd95, 1) for r in REGIONS]
        cells += [_num(v.pred_ml.get("WT"), 1), str(v.slices_used)]
        pred = "-" if v.predicted_bin is None or not labels else labels[v.predicted_bin]
        true = _e(v.survival_note or "-") if v.true_bin is None or not labels else labels[v.true_bin]
        wrong = v.true_bin is not None and v.predicted_bin is not None and v.true_bin != v.predicted_bin
        cells += [f'<span class="{"bad" if wrong else ""}">{_e(pred)}</span>', true]
        rows.append(cells)
    return '<section id="per-volume"><h2>Per volume</h2>' + _table(header, rows, raw=True) + "</section>"


def render_html(data: ReportData, figures: list[RenderedFigure], *, viewer: str | None = None) -> str:
    """The report page.

    Args:
        data: The report.
        figures: Rendered figures (embedded as base64 PNG).
        viewer: The slice viewer's HTML fragment
            (:func:`~brats_sdk.report.viewer_page.viewer_fragment`), shown above the
            still overlays, which stay for print and for readers without JavaScript.

    Returns:
        The HTML text.
    """
    models = "; ".join(f"{m.role} {m.architecture or ''} (SDK {m.sdk_version or '?'})" for m in data.models)
    overlays = [f for f in figures if f.section == "overlays"]
    overlay_html = "".join(_figure(f) for f in overlays) or '<p class="note">No volume to draw.</p>'
    notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    inputs = [("predictions", data.pred_dir), ("ground truth", data.ground_truth or "-"),
              ("survival CSV", data.survival_csv or "-"), ("survival model", data.survival_model or "-")]
    return "".join([
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>BraTS 2020 prediction report</title>",
        f"<style>{_CSS}</style></head><body><main>",
        "<header><h1>BraTS 2020 prediction report</h1>",
        f'<p class="meta">Created {_e(data.created)} by brats_sdk {_e(data.sdk_version)}; predictions by brats_sdk '
        f"{_e(data.predict_sdk_version or '?')}. Models: {_e(models or 'not recorded')}.</p>",
        '<nav><a href="#summary">Summary</a><a href="#volumes">Volumes</a><a href="#overlays">Images</a>'
        '<a href="#segmentation">Segmentation</a><a href="#survival">Survival</a>'
        '<a href="#exploratory">Exploratory</a><a href="#per-volume">Per volume</a></nav></header>',
        _honesty(data),
        _summary(data),
        _volumes(data),
        f'<section id="overlays"><h2>Images and masks</h2>{viewer or ""}{overlay_html}</section>',
        _segmentation(data, figures),
        _survival(data, figures),
        _exploratory(data, figures),
        _per_volume(data),
        f'<section id="notes"><h2>Notes</h2><ul>{notes}<li>Scored in {data.seconds:.1f} s.</li></ul>',
        _table(("input", "path"), inputs),
        "</section></main></body></html>\n",
    ])
