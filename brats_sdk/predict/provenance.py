"""What predictions were made from, recorded per volume for the report to check.

``predictions.json`` lists, under ``inputs``, each predicted volume's name, image shape
``(D, H, W)`` and :func:`~brats_sdk.data.fingerprint.image_fingerprint`, so that
``brats report`` can refuse ground truth of another cohort (whose volume numbers and
shapes may be the same) instead of scoring it.
"""

from __future__ import annotations

from collections.abc import Sequence

from brats_sdk.data.fingerprint import image_fingerprint
from brats_sdk.data.protocols import VolumeSource
from brats_sdk.data.records import VolumeInfo, VolumeRecord

__all__ = ["RecordingSource", "input_record"]


def input_record(rec: VolumeRecord) -> dict[str, object]:
    """``{"name", "shape": [D, H, W], "fingerprint": [...]}`` of a loaded volume."""
    shape = rec.image.shape
    return {"name": rec.info.name, "shape": [int(shape[0]), int(shape[2]), int(shape[3])], "fingerprint": image_fingerprint(rec.image)}


class RecordingSource:
    """A :class:`~brats_sdk.data.protocols.VolumeSource` that records :func:`input_record`
    of every volume it loads; other attributes (``root``, ``data_dirs``,
    ``reference_image``, ...) are the wrapped source's.

    Attributes:
        inputs: Volume number -> its record, for the volumes loaded so far.
    """

    def __init__(self, source: VolumeSource) -> None:
        self.source = source
        self.inputs: dict[int, dict[str, object]] = {}

    def volumes(self) -> Sequence[VolumeInfo]:
        return self.source.volumes()

    def load_volume(self, volume: int) -> VolumeRecord:
        rec = self.source.load_volume(volume)
        self.inputs[volume] = input_record(rec)
        return rec

    def __getattr__(self, name: str) -> object:
        if name == "source":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)
