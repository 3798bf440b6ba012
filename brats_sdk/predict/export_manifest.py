"""``export.json``: everything besides the networks that prediction from an export needs.

An export folder holds ``segmenter.onnx``, ``survival.onnx`` (when the run trained one)
and ``export.json``: the SDK version and format version that wrote it, the image channel
order, the normalisation rule, the label map, the survival bins with their day ranges,
the age scaling, the run's split summary, each network's input and output names and
shapes, the opset, the SHA-256 of each model file, and the parity measured against
PyTorch when it was written. Reading it checks the versions and the hashes, so a
tampered or half-copied model never runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from brats_sdk._version import __version__
from brats_sdk.atomic import atomic_write_text
from brats_sdk.bins import SurvivalBins
from brats_sdk.data.age_scaling import AgeScaler
from brats_sdk.data.normalise import Normalisation
from brats_sdk.errors import CheckpointError, ConfigError
from brats_sdk.json_files import read_json_object

__all__ = [
    "EXPORT_FILE",
    "EXPORT_FORMAT_VERSION",
    "SEGMENTER_ONNX",
    "SURVIVAL_ONNX",
    "ExportManifest",
    "NetworkEntry",
    "TensorSpec",
    "is_export_dir",
    "read_manifest",
    "sha256_of",
    "write_manifest",
]

EXPORT_FILE: Final[str] = "export.json"
SEGMENTER_ONNX: Final[str] = "segmenter.onnx"
SURVIVAL_ONNX: Final[str] = "survival.onnx"
EXPORT_FORMAT_VERSION: Final[int] = 1
"""Layout of ``export.json`` this brats_sdk writes and reads."""

_FORMAT_NAME: Final[str] = "brats-sdk-onnx-export"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A network input or output: name, shape (ints, or names of dynamic axes) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TensorSpec:
        shape = data["shape"]
        if not isinstance(shape, list):
            raise TypeError("shape is not a list")
        return cls(str(data["name"]), tuple(d if isinstance(d, int) else str(d) for d in shape), str(data["dtype"]))


@dataclass(frozen=True, slots=True)
class NetworkEntry:
    """One ``.onnx`` file of an export.

    Attributes:
        file: File name inside the export folder.
        sha256: Hex digest of the file.
        inputs, outputs: The graph's inputs and outputs.
        config: The PyTorch model's config (plain data).
        metadata: What the checkpoint recorded (epoch, metrics, ...).
    """

    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    config: Mapping[str, object] = field(default_factory=dict)
    metadata: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "config": dict(self.config),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> NetworkEntry:
        inputs, outputs = data["inputs"], data["outputs"]
        config, metadata = data.get("config", {}), data.get("metadata", {})
        if not (isinstance(inputs, list) and isinstance(outputs, list) and isinstance(config, dict) and isinstance(metadata, dict)):
            raise TypeError("inputs/outputs must be lists, config/metadata objects")
        return cls(
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            inputs=tuple(TensorSpec.from_dict(t) for t in inputs),
            outputs=tuple(TensorSpec.from_dict(t) for t in outputs),
            config=config,
            metadata=metadata,
        )


@dataclass(frozen=True)
class ExportManifest:
    """The contents of ``export.json``.

    Attributes:
        sdk_version: brats_sdk version that wrote the export.
        opset: ONNX opset of both graphs.
        precision: ``fp32`` or ``fp16`` (the graphs' inputs and outputs are float32 either way).
        image_channels: Channel order of the segmenter's input (``flair, t1, t1ce, t2``).
        normalisation: The intensity normalisation the segmenter's input gets.
        class_labels: BraTS label of each segmenter class index (``0, 1, 2, 4``).
        mask_channels: Tumour regions of classes 1.. (``NCR, ED, ET``): the survival
            network's one-hot input channels.
        segmenter: The segmenter graph: ``image (B, C, H, W)`` normalised, ``H, W``
            multiples of 32 -> ``logits (B, classes, H, W)``.
        survival: The survival graph, or None: ``masks (B, 3, H, W)`` one-hot float and
            ``age (B, 1)`` scaled -> ``logits (B, n_bins)`` (resize and ImageNet
            normalisation of the masks happen in the graph).
        bins: The survival bins (None without a survival network).
        age_scaler: The age scaling (None without a survival network).
        split: Summary of the run's split (None when the run has no ``split.csv``).
        source_run: The run folder it was exported from.
        created: ISO time of the export.
        parity: ONNX Runtime against PyTorch, as measured by ``brats export``.
    """

    sdk_version: str
    opset: int
    precision: str
    image_channels: tuple[str, ...]
    normalisation: Normalisation
    class_labels: tuple[int, ...]
    mask_channels: tuple[str, ...]
    segmenter: NetworkEntry
    survival: NetworkEntry | None
    bins: SurvivalBins | None
    age_scaler: AgeScaler | None
    split: Mapping[str, object] | None = None
    source_run: str = ""
    created: str = ""
    parity: Mapping[str, object] | None = None

    def networks(self) -> tuple[NetworkEntry, ...]:
        return (self.segmenter,) if self.survival is None else (self.segmenter, self.survival)

    def to_dict(self) -> dict[str, object]:
        bins = self.bins
        return {
            "format": _FORMAT_NAME,
            "format_version": EXPORT_FORMAT_VERSION,
            "sdk_version": self.sdk_version,
            "created": self.created,
            "source_run": self.source_run,
            "opset": self.opset,
            "precision": self.precision,
            "image_channels": list(self.image_channels),
            "normalisation": {"rule": self.normalisation.value, "description": self.normalisation.description},
            "labels": {"class_labels": list(self.class_labels), "mask_channels": list(self.mask_channels)},
            "segmenter": self.segmenter.to_dict(),
            "survival": None if self.survival is None else self.survival.to_dict(),
            "bins": None if bins is None else bins.to_dict(),
            "bin_ranges": None if bins is None else [bins.range_text(b) for b in range(bins.n_bins)],
            "age_scaling": None if self.age_scaler is None else self.age_scaler.to_dict(),
            "split": None if self.split is None else dict(self.split),
            "parity": None if self.parity is None else dict(self.parity),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ExportManifest:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError, ConfigError: A missing or malformed field
                (:func:`read_manifest` turns them into one :class:`CheckpointError`).
        """
        norm, labels = data["normalisation"], data["labels"]
        bins, scaler, survival = data.get("bins"), data.get("age_scaling"), data.get("survival")
        seg, split, parity = data["segmenter"], data.get("split"), data.get("parity")
        channels, opset = data["image_channels"], data["opset"]
        if not (isinstance(norm, dict) and isinstance(labels, dict) and isinstance(seg, dict) and isinstance(channels, list)):
            raise TypeError("normalisation, labels and segmenter must be objects, image_channels a list")
        if not isinstance(opset, int):
            raise TypeError("opset is not an int")
        return cls(
            sdk_version=str(data["sdk_version"]),
            opset=opset,
            precision=str(data["precision"]),
            image_channels=tuple(str(c) for c in channels),
            normalisation=Normalisation.parse(str(norm["rule"])),
            class_labels=tuple(int(v) for v in labels["class_labels"]),
            mask_channels=tuple(str(c) for c in labels["mask_channels"]),
            segmenter=NetworkEntry.from_dict(seg),
            survival=NetworkEntry.from_dict(survival) if isinstance(survival, dict) else None,
            bins=SurvivalBins.from_dict(bins) if isinstance(bins, dict) else None,
            age_scaler=AgeScaler.from_dict(scaler) if isinstance(scaler, dict) else None,
            split=split if isinstance(split, dict) else None,
            source_run=str(data.get("source_run", "")),
            created=str(data.get("created", "")),
            parity=parity if isinstance(parity, dict) else None,
        )


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_export_dir(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``export.json``."""
    return (Path(path) / EXPORT_FILE).is_file()


def write_manifest(export_dir: Path, manifest: ExportManifest) -> None:
    """Write ``export_dir/export.json`` atomically."""
    atomic_write_text(Path(export_dir) / EXPORT_FILE, json.dumps(manifest.to_dict(), indent=2) + "\n")


def read_manifest(export_dir: Path, *, verify: bool = True) -> ExportManifest:
    """Read and check ``export_dir/export.json``.

    Args:
        export_dir: An export folder.
        verify: Check each model file's SHA-256 against the manifest.

    Returns:
        The manifest.

    Raises:
        CheckpointError: No ``export.json``, an unreadable or malformed one, another format
            version, an export written by a newer brats_sdk, or a model file that is
            missing or whose hash does not match.
    """
    folder = Path(export_dir)
    path = folder / EXPORT_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {EXPORT_FILE}; not a `brats export` folder")
    data = read_json_object(path, error=CheckpointError)
    if data.get("format") != _FORMAT_NAME:
        raise CheckpointError(f"{path}: not a brats_sdk export manifest")
    written_by = str(data.get("sdk_version", ""))
    if _version_key(written_by) > _version_key(__version__):
        raise CheckpointError(f"{path}: written by brats_sdk {written_by}, newer than this one ({__version__}); upgrade brats-sdk")
    if data.get("format_version") != EXPORT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: export format version {data.get('format_version')!r}; this brats_sdk reads version {EXPORT_FORMAT_VERSION}"
        )
    try:
        manifest = ExportManifest.from_dict(data)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from exc
    if verify:
        for entry in manifest.networks():
            model = folder / entry.file
            if not model.is_file():
                raise CheckpointError(f"{folder}: {entry.file} is missing")
            if sha256_of(model) != entry.sha256:
                raise CheckpointError(f"{model}: SHA-256 does not match {EXPORT_FILE}; the file was changed after export")
    return manifest


def _version_key(version: str) -> tuple[int, ...]:
    """``"1.2.3rc1"`` -> ``(1, 2, 3)``: the numeric release parts."""
    parts: list[int] = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    return tuple(parts)
