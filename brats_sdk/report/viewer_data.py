"""One volume as the slice viewer's compact payload (a JSON-ready dict).

What the page needs to scroll through a volume, and nothing more:

- the brain box only (rows and columns holding brain or labels on any slice, plus a
  margin) and only the axial slices between the first and the last that hold brain;
- per modality one *sprite*: every kept slice tiled into one lossy WebP (or JPEG) image,
  intensities windowed to the 0.5-99.5 percentiles of the volume's brain voxels. Tiles are
  padded to multiples of 16 pixels so that no compression block straddles two slices,
  and one image per modality costs one header instead of one per slice;
- labels (prediction, truth) as class indices 0..3 over the box, run-length encoded:
  each run one LEB128 varint of ``length * 4 + class``, the bytes base64;
- uncertainty maps (``unc_*`` datasets of a mask file, when present) as lossless
  greyscale PNG sprites scaled to the volume's maximum;
- per-slice region volumes (WT, TC, ET in mL) and the "jump to" lists: the slices with
  the most tumour and, with truth, those with the most wrongly labelled voxels.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image, features

from brats_sdk.constants import IMAGE_CHANNELS, N_CLASSES, VOXEL_SPACING_MM
from brats_sdk.data.crops import box_of
from brats_sdk.data.normalise import brain_mask
from brats_sdk.errors import ConfigError, DataError
from brats_sdk.options import OptionEnum

__all__ = [
    "MODALITY_NAMES",
    "VIEWER_REGIONS",
    "ImageFormat",
    "ViewerInput",
    "ViewerOptions",
    "decode_runs",
    "encode_runs",
    "volume_payload",
]

logger = logging.getLogger(__name__)

#: Display names of :data:`~brats_sdk.constants.IMAGE_CHANNELS`, in the data's channel order.
MODALITY_NAMES: dict[str, str] = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}
#: BraTS regions as the class indices (1 NCR, 2 ED, 3 ET) they hold.
VIEWER_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}

_TILE = 16
_MAX_SPRITE_SIDE = 16_000  # WebP's limit is 16383 pixels a side
_PERCENTILES = (0.5, 99.5)
_PERCENTILE_SAMPLES = 400_000
_MIN_QUALITY = 30


class ImageFormat(OptionEnum):
    """Lossy format of the intensity sprites.

    WEBP: about a third smaller than JPEG at the same quality (every current browser).
    JPEG: for Pillow builds without WebP.
    """

    WEBP = "webp"
    JPEG = "jpeg"


@dataclass(frozen=True, slots=True)
class ViewerOptions:
    """How volumes are encoded for the viewer.

    Attributes:
        image_format: Format of the intensity sprites (WebP falls back to JPEG when
            Pillow lacks it).
        quality: Lossy quality, 1..100.
        max_bytes: Budget of one volume's payload: above it the intensity sprites are
            encoded again at lower quality (in steps of 10, down to 30).
        margin: Background pixels kept around the brain box.
        jump_slices: Length of each "jump to" list.

    Raises:
        ConfigError: A value out of range, or an unknown format.
    """

    image_format: ImageFormat = ImageFormat.WEBP
    quality: int = 70
    max_bytes: int = 2_000_000
    margin: int = 4
    jump_slices: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_format", ImageFormat.parse(self.image_format))
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"viewer quality must be in 1..100, got {self.quality}")
        if self.max_bytes <= 0:
            raise ConfigError(f"viewer max_bytes must be > 0, got {self.max_bytes}")
        if self.margin < 0 or self.jump_slices < 0:
            raise ConfigError("viewer margin and jump_slices must be >= 0")


@dataclass(frozen=True, slots=True)
class ViewerInput:
    """One volume's arrays, before encoding.

    Attributes:
        volume: Volume number.
        name: Case name (shown in the volume selector).
        pred: ``(D, H, W)`` uint8 predicted class indices 0..3.
        truth: ``(D, H, W)`` uint8 true class indices, or None.
        image: ``(D, 4, H, W)`` float intensities in
            :data:`~brats_sdk.constants.IMAGE_CHANNELS` order, or None (labels on black).
        uncertainty: Name -> ``(D, H, W)`` float map (e.g. ``whole``), >= 0.
        spacing: Voxel spacing in mm (slice, row, column).
    """

    volume: int
    name: str
    pred: npt.NDArray[np.uint8] = field(repr=False)
    truth: npt.NDArray[np.uint8] | None = field(default=None, repr=False)
    image: npt.NDArray[np.floating] | None = field(default=None, repr=False)
    uncertainty: Mapping[str, npt.NDArray[np.floating]] = field(default_factory=dict, repr=False)
    spacing: tuple[float, float, float] = VOXEL_SPACING_MM


def encode_runs(classes: npt.NDArray[np.uint8]) -> str:
    """Run-length code of class indices 0..3 (flattened in C order), base64.

    Each run is one unsigned LEB128 varint of ``length * 4 + class``.

    Raises:
        DataError: A value above 3.
    """
    flat = np.ascontiguousarray(classes).ravel()
    if flat.size == 0:
        return ""
    if int(flat.max()) >= N_CLASSES:
        raise DataError(f"class indices must be in 0..{N_CLASSES - 1}, got {int(flat.max())}")
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    lengths = np.diff(np.append(starts, flat.size)).astype(np.uint64)
    codes = lengths * np.uint64(4) + flat[starts].astype(np.uint64)
    # Vectorised LEB128: 7 bits a byte, the high bit set on every byte but a code's last.
    n_bytes = np.maximum(1, (np.floor(np.log2(codes.astype(np.float64))).astype(np.int64) // 7) + 1)
    out = np.empty(int(n_bytes.sum()), dtype=np.uint8)
    pos = np.concatenate(([0], np.cumsum(n_bytes)[:-1]))
    rest = codes.copy()
    for k in range(int(n_bytes.max())):
        live = n_bytes > k
        more = n_bytes[live] > k + 1
        out[pos[live] + k] = (rest[live] & np.uint64(0x7F)).astype(np.uint8) | (more.astype(np.uint8) << 7)
        rest[live] >>= np.uint64(7)
    return base64.b64encode(out.tobytes()).decode("ascii")


def decode_runs(text: str, shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`encode_runs` (what the page's script does), into ``shape``.

    Raises:
        DataError: The runs do not cover ``shape`` exactly.
    """
    data = base64.b64decode(text)
    values: list[int] = []
    lengths: list[int] = []
    code, shift = 0, 0
    for b in data:
        code |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            values.append(code & 3)
            lengths.append(code >> 2)
            code, shift = 0, 0
    total = math.prod(shape)
    if sum(lengths) != total:
        raise DataError(f"runs cover {sum(lengths)} voxels, expected {total}")
    return np.repeat(np.array(values, dtype=np.uint8), lengths).reshape(shape)


def _format(options: ViewerOptions) -> ImageFormat:
    if options.image_format is ImageFormat.WEBP and not features.check("webp"):
        logger.info("Pillow has no WebP support: the viewer's images are JPEG")
        return ImageFormat.JPEG
    return options.image_format


def _sprite(tiles: npt.NDArray[np.uint8], cols: int) -> Image.Image:
    """``(n, th, tw)`` uint8 tiles -> one greyscale image, ``cols`` tiles a row, row-major."""
    n, th, tw = tiles.shape
    rows = -(-n // cols)
    canvas = np.zeros((rows * th, cols * tw), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = tiles[i]
    return Image.fromarray(canvas, mode="L")


def _data_uri(img: Image.Image, fmt: str, **save: object) -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    mime = {"WEBP": "image/webp", "JPEG": "image/jpeg", "PNG": "image/png"}[fmt]
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _window(values: npt.NDArray[np.floating], brain: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """Intensities -> 0..255 between the brain's 0.5 and 99.5 percentiles; background 0."""
    inside = values[brain]
    if inside.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    step = max(1, inside.size // _PERCENTILE_SAMPLES)
    lo, hi = (float(p) for p in np.percentile(inside[::step], _PERCENTILES))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.clip((values.astype(np.float32) - lo) * scale, 0, 255)
    out[~brain] = 0
    grey: npt.NDArray[np.uint8] = np.rint(out).astype(np.uint8)
    return grey


def _counts(classes: npt.NDArray[np.uint8], voxel_ml: float) -> list[list[float]]:
    """Per slice ``[WT, TC, ET]`` in mL."""
    per = np.stack([np.isin(classes, ks).sum(axis=(1, 2)) for ks in VIEWER_REGIONS.values()], axis=1)
    return [[round(float(x) * voxel_ml, 4) for x in row] for row in per]


def _top(scores: npt.NDArray[np.int64], k: int) -> list[int]:
    """Indices of the ``k`` largest positive scores, largest first (ties: lower index)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [int(i) for i in order if scores[i] > 0]


def _check(inp: ViewerInput) -> None:
    shape = inp.pred.shape
    if inp.pred.ndim != 3:
        raise DataError(f"volume {inp.volume}: predicted labels must be (D, H, W), got {shape}")
    if inp.truth is not None and inp.truth.shape != shape:
        raise DataError(f"volume {inp.volume}: truth {inp.truth.shape} does not match the prediction {shape}")
    if inp.image is not None and (inp.image.ndim != 4 or inp.image.shape[0] != shape[0] or inp.image.shape[2:] != shape[1:]):
        raise DataError(f"volume {inp.volume}: image {inp.image.shape} does not match the prediction {shape}")
    for name, m in inp.uncertainty.items():
        if m.shape != shape:
            raise DataError(f"volume {inp.volume}: uncertainty {name} {m.shape} does not match the prediction {shape}")


def _extent(inp: ViewerInput, brain: npt.NDArray[np.bool_] | None, margin: int) -> tuple[int, int, int, int, int, int]:
    """``(z0, z1, y0, y1, x0, x1)``: slices and box (half-open) of brain and labels."""
    d, h, w = inp.pred.shape
    fg: npt.NDArray[np.bool_] = np.asarray(inp.pred > 0)
    if inp.truth is not None:
        fg = fg | (inp.truth > 0)
    if brain is not None:
        fg = fg | brain
    zs = np.flatnonzero(fg.any(axis=(1, 2)))
    box = box_of(np.asarray(fg.any(axis=0)))
    if zs.size == 0 or box is None or brain is None:
        # Without an image there is no brain to bound: the whole volume is shown.
        return 0, d, 0, h, 0, w
    y0, y1, x0, x1 = box
    return (int(zs[0]), int(zs[-1]) + 1, max(y0 - margin, 0), min(y1 + margin, h),
            max(x0 - margin, 0), min(x1 + margin, w))


def volume_payload(inp: ViewerInput, options: ViewerOptions | None = None) -> dict[str, object]:
    """Encode one volume for the viewer.

    Args:
        inp: The volume's arrays.
        options: Encoding options.

    Returns:
        A JSON-ready dict: ``volume``, ``name``, ``depth``, ``z0`` (first slice shown),
        ``n`` (slices shown), ``box`` ``[y0, y1, x0, x1]``, ``h``/``w`` (box size),
        ``th``/``tw`` (tile size), ``cols`` (tiles a sprite row), ``modalities``
        (``[{name, src}]``), ``pred`` and ``truth`` (run-length codes, truth may be
        None), ``unc`` (``[{name, src, max}]``), ``ml`` (``{pred, truth}``: per slice
        ``[WT, TC, ET]`` mL), ``jump`` (``{tumour, error}``: slice offsets) and
        ``quality`` (the lossy quality used).

    Raises:
        DataError: The arrays' shapes do not match, or a label is not a class index.
    """
    opts = options or ViewerOptions()
    _check(inp)
    image = None if inp.image is None else np.asarray(inp.image)
    brain = brain_mask(image) if image is not None else None
    z0, z1, y0, y1, x0, x1 = _extent(inp, brain, opts.margin)
    n, h, w = z1 - z0, y1 - y0, x1 - x0
    th, tw = -(-h // _TILE) * _TILE, -(-w // _TILE) * _TILE
    cols = max(1, min(math.ceil(math.sqrt(n * th / tw)), _MAX_SPRITE_SIDE // tw))
    if -(-n // cols) * th > _MAX_SPRITE_SIDE:
        raise DataError(f"volume {inp.volume}: {n} slices of {h}x{w} do not fit one image")

    def tiles(plane: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        out = np.zeros((n, th, tw), dtype=np.uint8)
        out[:, :h, :w] = plane[z0:z1, y0:y1, x0:x1]
        return out

    sprites = [] if image is None or brain is None else [
        (MODALITY_NAMES[key], _sprite(tiles(_window(image[:, c], brain)), cols)) for c, key in enumerate(IMAGE_CHANNELS)
    ]
    unc: list[dict[str, object]] = []
    for name, m in sorted(inp.uncertainty.items()):
        values = np.nan_to_num(np.asarray(m, dtype=np.float32), nan=0.0)
        top = float(values.max(initial=0.0))
        scaled = np.rint(np.clip(values / top, 0, 1) * 255).astype(np.uint8) if top > 0 else np.zeros(values.shape, np.uint8)
        unc.append({"name": name, "src": _data_uri(_sprite(tiles(scaled), cols), "PNG", optimize=True), "max": top})

    voxel_ml = float(np.prod(inp.spacing)) / 1000.0
    pred = np.ascontiguousarray(inp.pred[z0:z1, y0:y1, x0:x1])
    truth = None if inp.truth is None else np.ascontiguousarray(inp.truth[z0:z1, y0:y1, x0:x1])
    ref = truth if truth is not None and truth.any() else pred
    jump: dict[str, list[int]] = {"tumour": _top((ref > 0).sum(axis=(1, 2)), opts.jump_slices), "error": []}
    if truth is not None:
        jump["error"] = _top((truth != pred).sum(axis=(1, 2)), opts.jump_slices)
    payload: dict[str, object] = {
        "volume": inp.volume,
        "name": inp.name,
        "depth": int(inp.pred.shape[0]),
        "z0": z0,
        "n": n,
        "box": [y0, y1, x0, x1],
        "h": h,
        "w": w,
        "th": th,
        "tw": tw,
        "cols": cols,
        "modalities": [],
        "pred": encode_runs(pred),
        "truth": None if truth is None else encode_runs(truth),
        "unc": unc,
        "ml": {"pred": _counts(pred, voxel_ml), "truth": None if truth is None else _counts(truth, voxel_ml)},
        "jump": jump,
    }
    rest = len(json.dumps(payload, separators=(",", ":")))
    fmt = _format(opts)
    quality = opts.quality
    while True:
        modalities = [{"name": name, "src": _lossy_uri(img, fmt, quality)} for name, img in sprites]
        size = rest + sum(len(str(m["src"])) + 32 for m in modalities)
        if size <= opts.max_bytes or quality <= _MIN_QUALITY:
            break
        logger.info("volume %d: %d bytes at quality %d; encoding again", inp.volume, size, quality)
        quality = max(quality - 10, _MIN_QUALITY)
    payload["modalities"] = modalities
    payload["quality"] = quality
    return payload


def _lossy_uri(img: Image.Image, fmt: ImageFormat, quality: int) -> str:
    if fmt is ImageFormat.WEBP:
        return _data_uri(img, "WEBP", quality=quality, method=4)
    return _data_uri(img, "JPEG", quality=quality, optimize=True)
