"""A synthetic BraTS 2020 cohort in the exact layout of the Kaggle h5 release.

There is no labelled real data in the test environment, so the SDK makes its own:
:func:`make_cohort` writes phantom brains with one tumour each, as
``BraTS2020_training_data/content/data/volume_<V>_slice_<S>.h5`` plus
``meta_data.csv``, ``survival_info.csv`` and ``name_mapping.csv``, so every reader,
trainer and CLI command can be exercised end to end on it.

The phantom, in normalised coordinates (``z`` as a fraction of ``slices``, rows and
columns as a fraction of ``size``):

* Brain: a slightly lumpy ellipsoid, semi-axes about 0.40 (z), 0.38 (rows) and
  0.30 (columns), so it spans roughly the middle 80% of the slices; the first and
  last ``max(1, ceil(0.06 * slices))`` slices are always empty. Inside: white and
  grey matter from smooth noise, a grey-matter cortex, two CSF ventricles.
* Tumour: one lumpy ellipsoid per volume, in-plane semi-axis ``r`` (fraction of
  ``size``) from U(0.03, 0.05) for about a quarter of the volumes ("small") and from
  U(0.06, 0.13) otherwise, with a necrotic core (NCR), an enhancing rim (ET) and an
  oedema shell (ED).
* Contrast per modality: ED bright on FLAIR and T2; ET bright on T1ce; NCR dark on
  T1ce and T1; CSF dark on FLAIR and T1, bright on T2. A smooth bias field and
  Gaussian noise keep it from being a threshold problem.
* Intensities are normalised like the release: per slice and channel, z-scored over
  the brain, background set to the slice minimum; slices without brain are zeros.

Survival (days, before rounding and clipping to 5..1800) is
``exp(ln 400 - 0.04 * (age - 55) - 12 * (r - 0.09) + N(0, 0.4^2))``: older patients
and bigger tumours live shorter. Ages are N(60, 13^2) clipped to 20..85.

With ``patient_signature`` on, each tumour is also stretched in the slice plane by a
per-patient factor from U(1.6, 2.4) (area kept) and turned by a per-patient angle from
U(0, 180) degrees, both drawn from a stream of their own: an outline every slice of the
patient shares and that says nothing about survival (``r``, age and days are unchanged).
It is what carries a slice split's leak on this small phantom, the way a real tumour's
own shape does (see ``brats audit``): a network can recognise the patient by it.

Everything about volume ``V`` (image, mask, age, tumour, survival days before the
tie-break) comes from ``numpy.random.default_rng([seed, V, stream])``, so it does not
depend on ``volumes``. Which volumes have survival rows, which one is censored and
which resections are NA is decided per cohort.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from brats_sdk.atomic import atomic_path
from brats_sdk.constants import (
    H5_FILE_PATTERN,
    H5_IMAGE_KEY,
    H5_MASK_KEY,
    IMAGE_CHANNELS,
    KAGGLE_DATA_SUBDIR,
    MASK_CHANNELS,
    META_CSV,
    NAME_MAPPING_CSV,
    SURVIVAL_CSV,
)
from brats_sdk.data.synth_tables import (
    NAME_MAPPING_HEADER,
    SURVIVAL_HEADER,
    name_mapping_rows,
    survival_rows,
    volume_rng,
)
from brats_sdk.errors import ConfigError, DataError

__all__ = ["SynthConfig", "make_cohort"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

# Per-volume random streams (the third entry of the seed sequence); 3 and 4 are the
# clinical tables' (synth_tables).
_STREAM_ANATOMY = 1
_STREAM_TUMOUR = 2
_STREAM_NOISE = 5
_STREAM_SIGNATURE = 6
_SIGNATURE_STRETCH = (1.6, 2.4)

# Raw tissue intensities, one column per channel in IMAGE_CHANNELS order
# (FLAIR, T1, T1ce, T2), before bias, noise and the per-slice z-score.
_WM = np.array([0.55, 0.80, 0.75, 0.35], dtype=np.float32)
_GM = np.array([0.68, 0.60, 0.60, 0.55], dtype=np.float32)
_CSF = np.array([0.22, 0.25, 0.25, 1.00], dtype=np.float32)
_ED = np.array([1.00, 0.50, 0.52, 0.92], dtype=np.float32)
_ET = np.array([0.82, 0.62, 1.25, 0.72], dtype=np.float32)
_NCR = np.array([0.60, 0.35, 0.30, 0.85], dtype=np.float32)
_NOISE_SD = 0.07

_SMALL_TUMOUR_P = 0.25
_H5_RE = re.compile(H5_FILE_PATTERN)

_META_HEADER = ("slice_path", "target", "volume", "slice")


@dataclass(frozen=True)
class SynthConfig:
    """Size and seed of a synthetic cohort.

    Attributes:
        volumes: Number of volumes (patients), numbered 1..volumes; at least 1.
        seed: Non-negative seed; the same config always gives byte-identical files.
        slices: Axial slices per volume (155 in the release); at least 8.
        size: Height and width of a slice in pixels (240 in the release); at least 32.
        patient_signature: Give every tumour a per-patient in-plane stretch and angle
            that is unrelated to survival (see the module docstring); off by default.

    Raises:
        ConfigError: If a field is not an int or is out of range.
    """

    volumes: int = 8
    seed: int = 0
    slices: int = 155
    size: int = 240
    patient_signature: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.patient_signature, bool):
            raise ConfigError(f"SynthConfig.patient_signature must be a bool, got {self.patient_signature!r}")
        limits = {"volumes": 1, "seed": 0, "slices": 8, "size": 32}
        for name, low in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"SynthConfig.{name} must be an int >= {low}, got {value!r}")
            if value < low:
                raise ConfigError(f"SynthConfig.{name} must be >= {low}, got {value}")


@dataclass(frozen=True)
class _TumourSpec:
    """One volume's tumour in normalised coordinates (see the module docstring)."""

    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    r: float
    ncr: float
    et: float
    angle: float = 0.0


def _interp_axis(a: F32, n: int, axis: int) -> F32:
    """Resample ``a`` along ``axis`` to ``n`` points with Catmull-Rom interpolation.

    The ``n`` output points span the inner cells of ``a`` (one padding cell each side
    and one more at the end feed the 4-tap kernel).
    """
    m = a.shape[axis]
    pos = 1.0 + (np.arange(n, dtype=np.float64) + 0.5) * ((m - 3) / n)
    i1 = np.minimum(pos.astype(np.intp), m - 3)
    t = (pos - i1).astype(np.float32)
    t2, t3 = t * t, t * t * t
    weights = (
        0.5 * (-t3 + 2 * t2 - t),
        0.5 * (3 * t3 - 5 * t2 + 2),
        0.5 * (-3 * t3 + 4 * t2 + t),
        0.5 * (t3 - t2),
    )
    shape = [1] * a.ndim
    shape[axis] = n
    out: F32 = np.zeros(
        tuple(n if k == axis else a.shape[k] for k in range(a.ndim)), dtype=np.float32
    )
    for k, w in enumerate(weights):
        out += np.take(a, i1 + (k - 1), axis=axis) * w.reshape(shape)
    return out


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], cells: Sequence[int]) -> F32:
    """Smooth value noise of about unit standard deviation.

    Args:
        rng: Random generator.
        shape: Output shape ``(Z, H, W)``.
        cells: Number of noise cells along each axis (larger means finer detail).

    Returns:
        A ``shape`` float32 field.
    """
    grid = rng.standard_normal(tuple(c + 3 for c in cells)).astype(np.float32)
    out = grid
    for axis, n in enumerate(shape):
        out = _interp_axis(out, n, axis)
    # Interpolation between independent normals shrinks the spread by about 0.7.
    scaled: F32 = out * np.float32(1.45)
    return scaled


def _tumour_spec(config: SynthConfig, volume: int) -> _TumourSpec:
    rng = volume_rng(config.seed, volume, _STREAM_TUMOUR)
    small = rng.random() < _SMALL_TUMOUR_P
    r = float(rng.uniform(0.03, 0.05) if small else rng.uniform(0.06, 0.13))
    # Centre inside the inner 55% of the brain ellipsoid, snapped to a voxel centre.
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    u = direction * 0.55 * float(rng.random()) ** (1.0 / 3.0)
    semi = (0.40, 0.38, 0.30)
    centre = []
    for k, n in enumerate((config.slices, config.size, config.size)):
        c = u[k] * semi[k]
        idx = int(np.clip(np.floor((c + 0.5) * n), 0, n - 1))
        centre.append((idx + 0.5) / n - 0.5)
    ry = r * float(rng.uniform(0.85, 1.15))
    rx = r * float(rng.uniform(0.85, 1.15))
    rz = r * float(rng.uniform(1.0, 1.3))
    # At least about one voxel in every direction so that the tumour never vanishes.
    rz = max(rz, 1.2 / config.slices)
    ry = max(ry, 1.5 / config.size)
    rx = max(rx, 1.5 / config.size)
    ncr = float(rng.uniform(0.35, 0.50))
    et = ncr + float(rng.uniform(0.18, 0.28))
    angle = 0.0
    if config.patient_signature:
        srng = volume_rng(config.seed, volume, _STREAM_SIGNATURE)
        stretch = math.sqrt(float(srng.uniform(*_SIGNATURE_STRETCH)))
        ry, rx = ry * stretch, max(rx / stretch, 1.5 / config.size)
        angle = float(srng.uniform(0.0, math.pi))
    return _TumourSpec(
        centre=(centre[0], centre[1], centre[2]), radii=(rz, ry, rx), r=r, ncr=ncr, et=et, angle=angle
    )


def _coords(config: SynthConfig) -> tuple[F32, F32, F32]:
    s, n = config.slices, config.size
    z = ((np.arange(s) + 0.5) / s - 0.5).astype(np.float32).reshape(s, 1, 1)
    y = ((np.arange(n) + 0.5) / n - 0.5).astype(np.float32).reshape(1, n, 1)
    x = ((np.arange(n) + 0.5) / n - 0.5).astype(np.float32).reshape(1, 1, n)
    return z, y, x


def _span(centre: float, half: float, n: int) -> slice:
    """Voxel index range covering ``centre +- half`` (normalised units) on an axis of ``n``."""
    lo = math.floor((centre - half + 0.5) * n)
    hi = math.ceil((centre + half + 0.5) * n)
    return slice(max(0, lo), min(n, hi))


def _volume(config: SynthConfig, volume: int) -> tuple[F32, npt.NDArray[np.uint8]]:
    """Build one volume.

    Everything is computed inside the brain's bounding box and then embedded.

    Returns:
        ``(image, mask)``: ``(S, H, W, 4)`` float32 normalised like the release and
        ``(S, H, W, 3)`` uint8 one-hot.
    """
    s, n = config.slices, config.size
    shape = (s, n, n)
    rng = volume_rng(config.seed, volume, _STREAM_ANATOMY)
    z, y, x = _coords(config)

    # Brain: a lumpy ellipsoid that varies a little per volume, inside box ``bb``.
    cz, cy, cx = (float(v) for v in rng.uniform(-0.02, 0.02, 3))
    az = float(rng.uniform(0.38, 0.41))
    ay = float(rng.uniform(0.36, 0.40))
    ax = float(rng.uniform(0.28, 0.32))
    bump = 0.035
    margin = max(1, math.ceil(0.06 * s))
    bz = _span(cz, az * (1 + 3 * bump), s)
    bb = (
        slice(max(margin, bz.start), min(s - margin, bz.stop)),
        _span(cy, ay * (1 + 3 * bump), n),
        _span(cx, ax * (1 + 3 * bump), n),
    )
    zb, yb, xb = z[bb[0]], y[:, bb[1]], x[:, :, bb[2]]
    box = (zb.shape[0], yb.shape[1], xb.shape[2])
    coarse = (max(2, s // 40), max(2, n // 60), max(2, n // 60))
    fine = (max(3, s // 10), max(3, n // 12), max(3, n // 12))
    radius = np.sqrt(((zb - cz) / az) ** 2 + ((yb - cy) / ay) ** 2 + ((xb - cx) / ax) ** 2)
    lumps = np.clip(_smooth_noise(rng, box, coarse), -3.0, 3.0)
    brain = radius < 1.0 + bump * lumps

    # Tissue fractions: cortex + textured deep grey matter, white matter, ventricles.
    finer = tuple(2 * c for c in fine)
    texture = _smooth_noise(rng, box, fine) + 0.5 * _smooth_noise(rng, box, finer)
    cortex = np.clip((radius - 0.80) / 0.12 + 0.25 * texture, 0.0, 1.0)
    deep_gm = 1.0 / (1.0 + np.exp(-3.0 * (texture - 0.6)))
    gm = cortex + (1.0 - cortex) * deep_gm
    vent = (((zb - cz) / (0.28 * az)) ** 2 + ((yb - cy + 0.02) / (0.45 * ay)) ** 2) + (
        (np.abs(xb - cx) - 0.045) / 0.03
    ) ** 2 < 1.0
    csf = vent.astype(np.float32)
    gm = gm * (1.0 - csf)
    wm = 1.0 - gm - csf

    # Tumour labels (0 none, channel + 1 otherwise) in the tumour's own box ``tb``.
    spec = _tumour_spec(config, volume)
    trng = volume_rng(config.seed, volume, _STREAM_TUMOUR + 100)
    labels = np.zeros(shape, dtype=np.uint8)
    ed_full = np.zeros(shape, dtype=np.float32)
    brain_full = np.zeros(shape, dtype=np.bool_)
    brain_full[bb] = brain
    # A turned tumour reaches its longer in-plane semi-axis in both directions.
    longer = max(spec.radii[1], spec.radii[2])
    reach = spec.radii if spec.angle == 0.0 else (spec.radii[0], longer, longer)
    tb = tuple(_span(spec.centre[k], 1.6 * reach[k], shape[k]) for k in range(3))
    zt, yt, xt = z[tb[0]], y[:, tb[1]], x[:, :, tb[2]]
    tshape = (zt.shape[0], yt.shape[1], xt.shape[2])
    dy, dx = yt - spec.centre[1], xt - spec.centre[2]
    if spec.angle != 0.0:
        cos, sin = np.float32(math.cos(spec.angle)), np.float32(math.sin(spec.angle))
        dy, dx = dy * cos + dx * sin, dx * cos - dy * sin
    d = np.sqrt(
        ((zt - spec.centre[0]) / spec.radii[0]) ** 2
        + (dy / spec.radii[1]) ** 2
        + (dx / spec.radii[2]) ** 2
    )
    lump_cells = (4, 4, 4)
    d_outer = d / (1.0 + 0.28 * np.clip(_smooth_noise(trng, tshape, lump_cells), -1.5, 1.5))
    d_core = d / (1.0 + 0.18 * np.clip(_smooth_noise(trng, tshape, lump_cells), -1.5, 1.5))
    in_brain = brain_full[tb]
    lab = np.zeros(tshape, dtype=np.uint8)
    lab[(d_outer < 1.0) & in_brain] = 2
    lab[(d_core < spec.et) & in_brain] = 3
    lab[(d_core < spec.ncr) & in_brain] = 1
    labels[tb] = lab
    # Oedema fades into the surrounding tissue over a thin band.
    ed_full[tb] = np.clip((1.08 - d_outer) / 0.16, 0.0, 1.0) * in_brain
    ed_w = ed_full[bb]
    ncr_m, et_m = labels[bb] == 1, labels[bb] == 3

    # Intensities per channel: tissue mix, tumour, bias field, noise, z-score.
    nrng = volume_rng(config.seed, volume, _STREAM_NOISE)
    sub_noise = _smooth_noise(nrng, box, fine)
    image = np.zeros((*shape, len(IMAGE_CHANNELS)), dtype=np.float32)
    for c in range(len(IMAGE_CHANNELS)):
        tissue = wm * _WM[c] + gm * _GM[c] + csf * _CSF[c]
        ed_val = _ED[c] * (1.0 + 0.08 * sub_noise)
        chan = tissue + ed_w * (ed_val - tissue)
        chan = np.where(ncr_m, _NCR[c] * (1.0 + 0.10 * sub_noise), chan)
        chan = np.where(et_m, _ET[c] * (1.0 - 0.08 * sub_noise), chan)
        bias = 1.0 + 0.07 * _smooth_noise(nrng, box, coarse)
        chan = chan * bias + _NOISE_SD * nrng.standard_normal(box, dtype=np.float32)
        normed, background = _zscore_slices(chan, brain)
        image[..., c][bb[0]] = background[:, None, None]
        image[..., c][bb] = normed

    mask = np.zeros((*shape, len(MASK_CHANNELS)), dtype=np.uint8)
    for c in range(len(MASK_CHANNELS)):
        mask[..., c] = labels == c + 1
    return image, mask


def _zscore_slices(chan: F32, brain: BoolArray) -> tuple[F32, F32]:
    """Z-score each slice over its brain voxels, like the release's normalisation.

    Args:
        chan: ``(Z, H, W)`` raw intensities.
        brain: ``(Z, H, W)`` brain mask.

    Returns:
        ``(normed, background)``: ``(Z, H, W)`` with non-brain voxels at the slice
        minimum, and that minimum per slice ``(Z,)``; slices without brain are 0.
    """
    count = brain.sum(axis=(1, 2), dtype=np.float64)
    safe = np.maximum(count, 1.0)
    inside = np.where(brain, chan, np.float32(0.0))
    mean = (inside.sum(axis=(1, 2), dtype=np.float64) / safe).astype(np.float32)
    centred = np.where(brain, chan - mean[:, None, None], np.float32(0.0))
    var = np.einsum("zhw,zhw->z", centred, centred, dtype=np.float64) / safe
    std = np.sqrt(var)
    inv = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-6), 1.0).astype(np.float32)
    z = centred * inv[:, None, None]
    zmin = np.where(brain, z, np.float32(np.inf)).min(axis=(1, 2))
    background = np.where(count > 0, zmin, np.float32(0.0)).astype(np.float32)
    normed: F32 = np.where(brain, z, background[:, None, None])
    return normed, background


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with atomic_path(path, fsync=False) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_slice(path: Path, image: npt.NDArray[np.float64], mask: npt.NDArray[np.uint8]) -> None:
    with atomic_path(path, fsync=False) as tmp, h5py.File(tmp, "w") as fh:
        fh.create_dataset(H5_IMAGE_KEY, data=image, track_times=False)
        fh.create_dataset(H5_MASK_KEY, data=mask, track_times=False)


def make_cohort(
    out_dir: Path,
    config: SynthConfig,
    *,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a synthetic cohort in the Kaggle "BraTS2020 training data" layout.

    Files written under ``out_dir/BraTS2020_training_data/content/data/``:

    * ``volume_<V>_slice_<S>.h5`` for V = 1..volumes, S = 0..slices-1, each with
      dataset ``image`` float64 ``(size, size, 4)`` in
      :data:`~brats_sdk.constants.IMAGE_CHANNELS` order and dataset ``mask`` uint8
      one-hot ``(size, size, 3)`` in :data:`~brats_sdk.constants.MASK_CHANNELS` order;
      uncompressed, no attributes, no timestamps.
    * ``meta_data.csv`` (``slice_path,target,volume,slice``), ``survival_info.csv``
      (about 2/3 of the volumes; all but one for cohorts of up to 12; always one
      censored ``ALIVE (N days later)`` row and at least one ``NA`` resection) and
      ``name_mapping.csv`` (every volume).

    The same config always gives byte-identical files. If the folder already holds a
    cohort (allowed with ``overwrite`` only), its files are overwritten, and h5 slices outside the new cohort's
    volume and slice range are deleted so that the folder holds exactly this cohort.
    Each file is written to a temporary name and moved into place.

    Args:
        out_dir: Folder to write into (created if missing).
        config: Cohort size and seed.
        progress: Called after each volume with the number of volumes written so far.
        overwrite: Write into an ``out_dir`` that is not empty; False refuses it
            (``brats synth`` without ``--overwrite``).

    Returns:
        The data folder, ``out_dir/BraTS2020_training_data/content/data``.

    Raises:
        ConfigError: If ``config`` is not a :class:`SynthConfig`.
        DataError: If the data folder cannot be created or written, or ``out_dir`` is not
            empty and ``overwrite`` is False.
    """
    if not isinstance(config, SynthConfig):
        raise ConfigError(f"config must be a SynthConfig, got {type(config).__name__}")
    if not overwrite and Path(out_dir).is_dir() and any(Path(out_dir).iterdir()):
        raise DataError(f"{out_dir}: not empty; use an empty folder or overwrite (files in it may be replaced or deleted)")
    data_dir = Path(out_dir).joinpath(*KAGGLE_DATA_SUBDIR)
    start = time.perf_counter()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        meta: list[tuple[str, int, int, int]] = []
        for v in range(1, config.volumes + 1):
            image, mask = _volume(config, v)
            targets = [bool(t) for t in np.any(mask, axis=(1, 2, 3))]
            for s in range(config.slices):
                name = f"volume_{v}_slice_{s}.h5"
                _write_slice(data_dir / name, image[s].astype(np.float64), mask[s])
                meta.append((f"/content/data/{name}", int(targets[s]), v, s))
            logger.debug("synthetic volume %d written (%d tumour slices)", v, sum(targets))
            if progress is not None:
                progress(v)
        _write_csv(data_dir / META_CSV, _META_HEADER, meta)
        survival, with_survival = survival_rows(
            config.seed, config.volumes, lambda v: _tumour_spec(config, v).r
        )
        _write_csv(data_dir / SURVIVAL_CSV, SURVIVAL_HEADER, survival)
        _write_csv(
            data_dir / NAME_MAPPING_CSV,
            NAME_MAPPING_HEADER,
            name_mapping_rows(config.seed, config.volumes, with_survival),
        )
        removed = _remove_stale(data_dir, config)
    except OSError as exc:
        raise DataError(f"cannot write synthetic cohort to {data_dir}: {exc}") from exc
    logger.info(
        "synthetic cohort of %d volumes x %d slices (%dx%d) written to %s in %.1f s%s",
        config.volumes,
        config.slices,
        config.size,
        config.size,
        data_dir,
        time.perf_counter() - start,
        f", {removed} stale slice files removed" if removed else "",
    )
    return data_dir


def _remove_stale(data_dir: Path, config: SynthConfig) -> int:
    """Delete h5 slices of an earlier, larger cohort; return how many."""
    removed = 0
    for entry in os.scandir(data_dir):
        match = _H5_RE.match(entry.name)
        if match is None:
            continue
        v, s = int(match.group(1)), int(match.group(2))
        canonical = entry.name == f"volume_{v}_slice_{s}.h5"
        if not (canonical and 1 <= v <= config.volumes and 0 <= s < config.slices):
            os.remove(entry.path)
            removed += 1
    return removed
