"""Report figures, drawn with matplotlib's object API on the Agg canvas.

Each figure is built on its own :class:`matplotlib.figure.Figure` with a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`; pyplot is never imported,
so no global backend or figure registry is touched (safe in notebooks and threads).

Colours: NCR/NET red, ED green, ET yellow (the common BraTS convention).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch
from PIL import Image

from brats_sdk.constants import MASK_CHANNELS, REGIONS
from brats_sdk.metrics.qubrats import qubrats_thresholds
from brats_sdk.metrics.survival import SurvivalScores
from brats_sdk.report.report_data import OverlaySample, ReportData, ReportOptions

__all__ = ["CLASS_COLOURS", "RenderedFigure", "render_figures"]

logger = logging.getLogger(__name__)

#: RGB of NCR, ED, ET overlays.
CLASS_COLOURS: dict[str, tuple[float, float, float]] = {"NCR": (1.0, 0.0, 0.0), "ED": (0.0, 0.8, 0.0), "ET": (1.0, 0.9, 0.0)}
BIN_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
_DPI = 96
_ALPHA = 0.5


@dataclass(frozen=True, slots=True)
class RenderedFigure:
    """One figure as PNG.

    Attributes:
        name: File stem (``figures/<name>.png``).
        section: Report section (``overlays``, ``segmentation``, ``survival``, ``exploratory``).
        title: Heading.
        caption: What it shows, with its counts.
        png: The PNG bytes.
        wide: The figure has several panels and takes the page's full width.
    """

    name: str
    section: str
    title: str
    caption: str
    png: bytes
    wide: bool = False


def _new(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure, *, palette: bool = False) -> bytes:
    """PNG bytes; ``palette`` re-saves with 256 colours (image overlays: about 3x smaller)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    if not palette:
        return buf.getvalue()
    buf.seek(0)
    out = io.BytesIO()
    with Image.open(buf) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="png", optimize=True)
    return out.getvalue()


def _bin_colour(b: int) -> str:
    return BIN_COLOURS[b % len(BIN_COLOURS)] if b >= 0 else "#9e9e9e"


# ----------------------------------------------------------------------------- overlays


def _grey(img: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Intensities scaled to [0, 1] by the 1st and 99.5th percentiles of the non-background pixels."""
    x = img.astype(np.float64)
    fg = x[x > x.min()] if (x > x.min()).any() else x.ravel()
    lo, hi = np.percentile(fg, [1.0, 99.5])
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(x)


def _rgba(classes: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    out = np.zeros((*classes.shape, 4))
    for c, name in enumerate(MASK_CHANNELS, start=1):
        m = classes == c
        out[m, :3] = CLASS_COLOURS[name]
        out[m, 3] = _ALPHA
    return out


def overlay_figure(samples: Sequence[OverlaySample]) -> bytes:
    """One volume's slices: FLAIR and T1ce with the ground-truth and predicted masks.

    Args:
        samples: Slices of one volume.

    Returns:
        PNG bytes.
    """
    has_img = samples[0].flair is not None
    has_truth = samples[0].truth is not None
    cols: list[tuple[str, str | None, str | None]] = []  # (title, image, mask)
    if has_img:
        for key, name in (("flair", "FLAIR"), ("t1ce", "T1ce")):
            cols.append((f"{name} + truth" if has_truth else name, key, "truth" if has_truth else None))
            cols.append((f"{name} + prediction", key, "pred"))
    else:
        if has_truth:
            cols.append(("ground truth", None, "truth"))
        cols.append(("prediction", None, "pred"))
    fig = _new(2.3 * len(cols), 2.35 * len(samples) + 0.5)
    axes = fig.subplots(len(samples), len(cols), squeeze=False)
    for r, s in enumerate(samples):
        for c, (title, mod, mask) in enumerate(cols):
            ax = axes[r][c]
            img = getattr(s, mod) if mod else None
            ax.imshow(_grey(img) if img is not None else np.zeros(s.pred.shape), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            m = getattr(s, mask) if mask else None
            if m is not None:
                ax.imshow(_rgba(m), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"slice {s.slice_index}", fontsize=9)
    handles = [Patch(color=CLASS_COLOURS[n], label=lab) for n, lab in zip(MASK_CHANNELS, ("NCR/NET", "ED", "ET"), strict=True)]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9, frameon=False)
    return _png(fig, palette=True)


# ----------------------------------------------------------------------------- segmentation


def _annotated_matrix(ax: Axes, values: npt.NDArray[np.float64], text: list[list[str]], labels: Sequence[str],
                      cmap: str, vmin: float | None = None, vmax: float | None = None) -> AxesImage:
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
    n = len(labels)
    ax.set_xticks(range(n), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            r, g, b, _ = im.cmap(im.norm(values[i, j]))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8, color="white" if dark else "black")
    return im


def _compact(n: int) -> str:
    return f"{n:,}" if n < 100_000 else f"{n:.2e}"


def confusion_figure(confusion: npt.NDArray[np.int64]) -> bytes:
    """4x4 pixel confusion matrix, colour log10(1 + count), counts written in the cells."""
    fig = _new(4.6, 4.0)
    ax = fig.add_subplot()
    values = np.log10(1.0 + confusion.astype(np.float64))
    labels = ("background", *MASK_CHANNELS)
    im = _annotated_matrix(ax, values, [[_compact(int(x)) for x in row] for row in confusion], labels, "viridis")
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    fig.colorbar(im, ax=ax, label="log10(1 + pixels)", shrink=0.8)
    return _png(fig)


def region_box_figure(data: ReportData) -> bytes:
    """Dice and HD95 per region (WT, TC, ET) as box plots over the scored volumes."""
    scored = [v.regions for v in data.scored if v.regions is not None]
    fig = _new(8.0, 3.6)
    axes = fig.subplots(1, 2)
    rng = np.random.default_rng(0)
    for ax, metric, label in ((axes[0], "dice", "Dice"), (axes[1], "hd95", "HD95 (mm)")):
        series = [np.array([getattr(r[region], metric) for r in scored], dtype=np.float64) for region in REGIONS]
        ax.boxplot(series, widths=0.5, showfliers=False)
        for i, ys in enumerate(series, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, ys.size), ys, s=12, alpha=0.7, color="#444444", zorder=3)
        ax.set_xticks(range(1, len(REGIONS) + 1), list(REGIONS))
        ax.set_title(f"{label} per volume (n = {len(scored)} volumes)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if metric == "dice":
            ax.set_ylim(-0.02, 1.02)
    return _png(fig)


def qubrats_figure(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> bytes:
    """One panel per region: mean Dice, FTP ratio and FTN ratio against 100 - threshold (the challenge's plot)."""
    fig = _new(9.0, 3.0)
    axes = fig.subplots(1, max(len(curves), 1), sharey=True, squeeze=False)[0]
    x = 100.0 - qubrats_thresholds()
    for ax, (region, c) in zip(axes, curves.items(), strict=False):
        for key, label in (("dice", "Dice"), ("ftp_ratio", "FTP ratio"), ("ftn_ratio", "FTN ratio")):
            ax.plot(x, c[key], label=label)
        ax.set_title(region, fontsize=10)
        ax.set_xlabel("100 - uncertainty threshold")
        ax.set_xlim(0, 100)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _png(fig)


# ----------------------------------------------------------------------------- survival


def survival_confusion_figure(levels: Sequence[tuple[str, SurvivalScores]], labels: Sequence[str]) -> bytes:
    """Survival confusion matrices (rows true bin, columns predicted), one panel per level."""
    fig = _new(4.2 * len(levels), 3.8)
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    for ax, (name, s) in zip(axes, levels, strict=True):
        cm = np.asarray(s.confusion, dtype=np.float64)
        _annotated_matrix(ax, cm, [[str(int(x)) for x in row] for row in cm], labels, "Blues", vmin=0)
        ax.set_title(f"{name}: {100 * s.accuracy:.1f}% (n = {s.n})", fontsize=10)
        ax.set_xlabel("predicted bin")
        ax.set_ylabel("true bin")
    return _png(fig)


def roc_figure(levels: Sequence[tuple[str, SurvivalScores]], labels: Sequence[str]) -> bytes:
    """One-vs-rest ROC curve and AUC per bin, one panel per level."""
    fig = _new(4.2 * len(levels), 4.0)
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    for ax, (name, s) in zip(axes, levels, strict=True):
        ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=1, ls="--")
        for b, lab in enumerate(labels):
            roc = s.roc[b]
            if roc is None:
                ax.plot([], [], color=_bin_colour(b), label=f"{lab}: AUC n/a")
                continue
            auc = s.auc[b]
            ax.plot(roc[0], roc[1], color=_bin_colour(b), lw=1.8, label=f"{lab}: AUC {auc:.2f} ({s.per_bin_n[b]} pos.)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{name} (n = {s.n})", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def votes_figure(data: ReportData, max_volumes: int) -> bytes | None:
    """Per-volume slice votes per bin as stacked bars, with the true bin when known."""
    rows = [v for v in data.volumes if v.votes is not None][:max_volumes]
    labels = data.bin_labels
    if not rows or not labels:
        return None
    fig = _new(7.5, 0.9 + 0.28 * len(rows))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for b, lab in enumerate(labels):
        w = np.array([v.votes[b] if v.votes is not None else 0 for v in rows], dtype=np.float64)
        ax.barh(y, w, left=left, color=_bin_colour(b), label=lab, height=0.7)
        left += w
    for i, v in enumerate(rows):
        if v.true_bin is not None:
            ax.text(left[i], i, f"  true: {labels[v.true_bin]}" + (" ✓" if v.true_bin == v.predicted_bin else " ✗"),
                    va="center", fontsize=7)
    ax.set_yticks(y, [f"vol {v.volume}" for v in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("slices voting for each bin")
    ax.set_xlim(0, float(left.max()) * 1.35 + 1)
    fig.legend(fontsize=8, ncol=len(labels), loc="outside upper center", frameon=False)
    return _png(fig)


# ----------------------------------------------------------------------------- exploratory


def pca_figure(data: ReportData) -> bytes | None:
    """Fig. 8: survival-network image features by PCA, coloured by bin."""
    ex = data.exploratory
    if ex.pca is None:
        return None
    fig = _new(5.2, 4.4)
    ax = fig.add_subplot()
    for b in sorted({int(x) for x in ex.pca_bins}, key=lambda x: (x < 0, x)):
        sel = ex.pca_bins == b
        name = data.bin_labels[b] if 0 <= b < len(data.bin_labels) else "no bin"
        ax.scatter(ex.pca[sel, 0], ex.pca[sel, 1], s=14, alpha=0.75, color=_bin_colour(b), label=f"{name} ({int(sel.sum())})")
    ev = ex.pca_explained
    ax.set_xlabel(f"PC 1 ({100 * ev[0]:.0f}% of variance)" if ev else "PC 1")
    ax.set_ylabel(f"PC 2 ({100 * ev[1]:.0f}% of variance)" if len(ev) > 1 else "PC 2")
    ax.legend(title=f"{ex.pca_bin_source} bin", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def correlation_figure(data: ReportData) -> bytes | None:
    """Fig. 9: Pearson correlation of region shares per slice and the survival bin."""
    ex = data.exploratory
    if ex.corr is None:
        return None
    fig = _new(5.0, 4.3)
    ax = fig.add_subplot()
    text = [["n/a" if not np.isfinite(x) else f"{x:.2f}" for x in row] for row in ex.corr]
    im = _annotated_matrix(ax, np.nan_to_num(ex.corr, nan=0.0), text, ex.corr_labels, "RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(im, ax=ax, label="Pearson r", shrink=0.8)
    return _png(fig)


# ----------------------------------------------------------------------------- all


def render_figures(data: ReportData, options: ReportOptions | None = None) -> list[RenderedFigure]:
    """Every figure the report's data allows, in display order.

    Args:
        data: The report.
        options: Figure options (vote bars shown).

    Returns:
        The figures; a figure without data is left out (the HTML says why).
    """
    opts = options or ReportOptions()
    out: list[RenderedFigure] = []
    by_volume: dict[int, list[OverlaySample]] = {}
    for sample in data.overlays:
        by_volume.setdefault(sample.volume, []).append(sample)
    for v, samples in sorted(by_volume.items()):
        what = "FLAIR and T1ce with the " if samples[0].flair is not None else ""
        masks = "ground-truth and predicted masks" if samples[0].truth is not None else "predicted mask"
        slices = ", ".join(str(x.slice_index) for x in samples)
        out.append(RenderedFigure(f"overlay_volume_{v}", "overlays", f"Volume {v}",
                                  f"{what}{masks} on the slices with the most tumour ({slices}).", overlay_figure(samples)))
    seg = data.segmentation
    if seg is not None:
        out.append(RenderedFigure("confusion_pixels", "segmentation", "Pixel confusion matrix",
                                  f"Rows truth, columns prediction; colour log10(1 + count) over {seg.n_pixels:,} pixels "
                                  f"of {len(data.scored)} volumes.", confusion_figure(seg.confusion)))
        out.append(RenderedFigure("region_scores", "segmentation", "Dice and HD95 per region",
                                  f"Box plots over {len(data.scored)} volumes; each dot is a volume. "
                                  "An empty region in one mask only scores Dice 0 and HD95 373.13 mm.", region_box_figure(data), wide=True))
    if data.uncertainty is not None and data.uncertainty.volumes:
        n = len(data.uncertainty.volumes)
        out.append(RenderedFigure("qubrats_curves", "segmentation", "QU-BraTS curves of the uncertainty maps",
                                  f"Mean over {n} volumes of the Dice of the kept voxels and the filtered true positive and "
                                  "true negative ratios, as voxels above each uncertainty threshold are filtered out.",
                                  qubrats_figure(data.uncertainty.mean_curves()), wide=True))
    s = data.survival
    levels = [] if s is None else [(n, sc) for n, sc in (("per patient (vote)", s.per_patient), ("per slice", s.per_slice)) if sc is not None]
    if s is not None and levels:
        out.append(RenderedFigure("survival_confusion", "survival", "Survival confusion matrices",
                                  "Rows true bin, columns predicted bin.", survival_confusion_figure(levels, s.labels),
                                  wide=len(levels) > 1))
        roc_levels = [(n, sc) for n, sc in (("per patient, mean probability", s.per_patient), ("per slice", s.per_slice))
                      if sc is not None and any(a is not None for a in sc.auc)]
        if roc_levels:
            out.append(RenderedFigure("survival_roc", "survival", "ROC curves, one bin against the rest",
                                      "AUC per bin; a bin that is absent or the only one present has no curve.",
                                      roc_figure(roc_levels, s.labels), wide=len(roc_levels) > 1))
    votes = votes_figure(data, opts.max_vote_volumes)
    if votes is not None:
        n = sum(1 for v in data.volumes if v.votes is not None)
        shown = min(n, opts.max_vote_volumes)
        out.append(RenderedFigure("survival_votes", "survival", "Slice votes per volume",
                                  f"Votes of the slices used, per bin ({shown} of {n} volumes shown).", votes))
    ex = data.exploratory
    pca = pca_figure(data)
    if pca is not None and ex.pca is not None:
        out.append(RenderedFigure("pca_features", "exploratory", "Image features by PCA (paper Fig. 8)",
                                  f"{ex.pca.shape[0]} slices' 128 image features of the survival network on the predicted "
                                  f"masks, coloured by {ex.pca_bin_source} bin.", pca))
    corr = correlation_figure(data)
    if corr is not None:
        out.append(RenderedFigure("correlation", "exploratory", "Region shares and survival bin (paper Fig. 9)",
                                  f"Pearson correlation over {ex.corr_n} slices of each region's share of the slice "
                                  f"(predicted masks) and the {ex.corr_bin_source} bin.", corr))
    logger.info("rendered %d figures", len(out))
    return out
