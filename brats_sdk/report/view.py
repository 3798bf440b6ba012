"""The slice viewer of a prediction folder: which volumes, their arrays, the HTML.

:func:`build_viewer` reads, one volume at a time, the predicted labels (and any
``unc_*`` uncertainty maps) of ``masks/volume_<V>_pred.h5``, the images and, when a
ground-truth folder is given, the true labels (matched as the report matches them:
:func:`~brats_sdk.report.truth.match_ground_truth`); images come from the ground truth,
else from the folder the predictions were made from, else the labels are drawn on black.
:func:`write_viewer` writes the page of ``brats view``; ``brats report`` embeds the same
viewer (:func:`~brats_sdk.report.viewer_page.viewer_fragment`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from brats_sdk.atomic import atomic_write_text
from brats_sdk.constants import VOXEL_SPACING_MM
from brats_sdk.data.protocols import DataSource
from brats_sdk.data.sources import open_source
from brats_sdk.errors import BratsError, DataError
from brats_sdk.labels import labels_to_classes, one_hot_to_classes
from brats_sdk.report.evaluate import input_source, largest_tumours
from brats_sdk.report.folder import PredictionFolder, read_prediction_folder
from brats_sdk.report.truth import match_ground_truth
from brats_sdk.report.viewer_data import ViewerInput, ViewerOptions, volume_payload
from brats_sdk.report.viewer_page import viewer_page

__all__ = ["UNCERTAINTY_PREFIX", "ViewerBuild", "ViewerVolume", "build_viewer", "read_uncertainty", "write_viewer"]

logger = logging.getLogger(__name__)

#: Mask-file datasets named ``unc_<name>`` (D, H, W) are drawn as uncertainty overlays.
UNCERTAINTY_PREFIX = "unc_"


@dataclass(frozen=True, slots=True)
class ViewerVolume:
    """One volume in a viewer.

    Attributes:
        volume: Volume number.
        name: Case name.
        slices: Axial slices shown (those between the first and last with brain).
        depth: Slices of the volume.
        height: Rows of the brain box.
        width: Columns of the brain box.
        has_truth: Whether the truth and the error view are shown.
        has_images: Whether intensity images are shown (else labels on black).
        uncertainty: Names of the uncertainty maps.
        quality: Lossy quality of the images.
        bytes: Size of the volume's payload in the page (JSON, base64 images).
    """

    volume: int
    name: str
    slices: int
    depth: int
    height: int
    width: int
    has_truth: bool
    has_images: bool
    uncertainty: tuple[str, ...]
    quality: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ViewerBuild:
    """What :func:`build_viewer` encoded.

    Attributes:
        payloads: One JSON-ready dict per volume, in selector order.
        volumes: What each holds, in the same order.
        notes: Volumes left out and why.
        seconds: Wall time.
    """

    payloads: tuple[dict[str, object], ...]
    volumes: tuple[ViewerVolume, ...]
    notes: tuple[str, ...]
    seconds: float


def read_uncertainty(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The ``unc_<name>`` datasets of a mask file as ``{name: (D, H, W) float32}`` (empty when none).

    Raises:
        DataError: The file cannot be read.
    """
    try:
        with h5py.File(path, "r") as f:
            return {
                key[len(UNCERTAINTY_PREFIX):]: np.asarray(f[key][()], dtype=np.float32)
                for key in sorted(f.keys()) if key.startswith(UNCERTAINTY_PREFIX)
            }
    except OSError as exc:
        raise DataError(f"{path}: unreadable prediction mask file ({exc})") from exc


def _choose(folder: PredictionFolder, volumes: Sequence[int] | None, max_volumes: int) -> list[int]:
    with_masks = [v for v in folder.volumes if folder.mask_path(v.volume).is_file()]
    if volumes is None:
        return largest_tumours(with_masks, max_volumes)
    known = {v.volume for v in with_masks}
    missing = [v for v in volumes if v not in known]
    if missing:
        raise DataError(f"{folder.root}: no mask file for volume(s) {', '.join(map(str, missing))}")
    return list(dict.fromkeys(volumes))


def _input(
    folder: PredictionFolder, volume: int, gt: DataSource | None, gt_volume: int | None, images: DataSource | None,
) -> ViewerInput:
    labels, _ = folder.read_masks(volume)
    pred = labels_to_classes(labels)
    row = next(v for v in folder.volumes if v.volume == volume)
    truth = image = None
    spacing = VOXEL_SPACING_MM
    if gt is not None and gt_volume is not None:
        rec = gt.load_volume(gt_volume)
        if rec.mask is not None:
            truth = one_hot_to_classes(rec.mask, channel_axis=1)
        image, spacing = rec.image, rec.info.spacing
    elif images is not None and any(i.volume == volume for i in images.volumes()):
        rec = images.load_volume(volume)
        image, spacing = rec.image, rec.info.spacing
    if image is not None and (image.shape[0] != pred.shape[0] or image.shape[2:] != pred.shape[1:]):
        logger.warning("volume %d: image %s does not match the masks %s; labels drawn on black", volume, image.shape, pred.shape)
        image = None
    if truth is not None and truth.shape != pred.shape:
        logger.warning("volume %d: truth %s does not match the masks %s; not shown", volume, truth.shape, pred.shape)
        truth = None
    return ViewerInput(
        volume=volume, name=row.name or row.patient_id, pred=pred, truth=truth, image=image,
        uncertainty=read_uncertainty(folder.mask_path(volume)),
        spacing=spacing if len(spacing) == 3 else VOXEL_SPACING_MM,
    )


def build_viewer(
    pred_dir: Path | str,
    *,
    ground_truth: Path | str | None = None,
    volumes: Sequence[int] | None = None,
    max_volumes: int = 10,
    options: ViewerOptions | None = None,
    on_volume: Callable[[int], None] | None = None,
) -> ViewerBuild:
    """Encode volumes of a prediction folder for the viewer.

    Args:
        pred_dir: What ``brats predict --save-masks`` wrote.
        ground_truth: Labelled data folder (any layout): truth, error view and images.
        volumes: These volumes, in this order; None: the ``max_volumes`` with the
            largest predicted tumours.
        max_volumes: How many when ``volumes`` is None.
        options: Encoding options.
        on_volume: Called with each volume number once encoded (progress).

    Returns:
        The payloads and what they hold. A volume that cannot be read is left out with
        a note (the page shows the others).

    Raises:
        DataError: ``pred_dir`` is not a prediction folder, a volume asked for has no
            mask file, or ``ground_truth`` cannot be opened.
    """
    t0 = time.perf_counter()
    folder = read_prediction_folder(pred_dir)
    chosen = _choose(folder, volumes, max_volumes)
    gt = open_source(ground_truth, require_mask=True) if ground_truth is not None else None
    gt_of = match_ground_truth(folder.volumes, gt.volumes()) if gt is not None else {}
    images = None if gt is not None or not chosen else input_source(folder)
    payloads: list[dict[str, object]] = []
    summaries: list[ViewerVolume] = []
    notes: list[str] = []
    for v in chosen:
        try:
            inp = _input(folder, v, gt, gt_of.get(v), images)
            payload = volume_payload(inp, options)
        except BratsError as exc:
            logger.warning("volume %d left out of the viewer: %s", v, exc)
            notes.append(f"volume {v} not shown: {str(exc).splitlines()[0]}")
            continue
        if gt is not None and v not in gt_of:
            notes.append(f"volume {v}: not in the ground truth (prediction only)")
        payloads.append(payload)
        summaries.append(ViewerVolume(
            volume=v, name=inp.name, slices=int(str(payload["n"])), depth=inp.pred.shape[0],
            height=int(str(payload["h"])), width=int(str(payload["w"])), has_truth=inp.truth is not None,
            has_images=inp.image is not None, uncertainty=tuple(sorted(inp.uncertainty)),
            quality=int(str(payload["quality"])), bytes=len(json.dumps(payload, separators=(",", ":"))),
        ))
        if on_volume is not None:
            on_volume(v)
    seconds = time.perf_counter() - t0
    logger.info("viewer of %d volumes encoded in %.1f s", len(payloads), seconds)
    return ViewerBuild(tuple(payloads), tuple(summaries), tuple(notes), seconds)


def write_viewer(
    pred_dir: Path | str,
    out: Path | str,
    *,
    ground_truth: Path | str | None = None,
    volumes: Sequence[int] | None = None,
    max_volumes: int = 10,
    options: ViewerOptions | None = None,
    on_volume: Callable[[int], None] | None = None,
) -> ViewerBuild:
    """Write the viewer of a prediction folder as one self-contained HTML file.

    Args:
        pred_dir: What ``brats predict --save-masks`` wrote.
        out: The HTML file (written atomically).
        ground_truth: See :func:`build_viewer`.
        volumes: See :func:`build_viewer`.
        max_volumes: See :func:`build_viewer`.
        options: Encoding options.
        on_volume: Called with each volume number once encoded.

    Returns:
        What was encoded.

    Raises:
        DataError: As :func:`build_viewer`.
    """
    build = build_viewer(pred_dir, ground_truth=ground_truth, volumes=volumes, max_volumes=max_volumes,
                         options=options, on_volume=on_volume)
    truth = f"; ground truth {ground_truth}" if ground_truth is not None else ""
    subtitle = f"Predictions {pred_dir}{truth}; {len(build.volumes)} volume(s)."
    atomic_write_text(Path(out), viewer_page(build.payloads, title="BraTS slice viewer", subtitle=subtitle))
    return build
