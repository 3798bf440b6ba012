"""A prediction folder belongs to one run: what an earlier run wrote goes before a new one.

``brats predict --out OUT`` into a folder an earlier run wrote would otherwise leave that
run's files it does not rewrite (``masks/*.h5`` of volumes it does not predict, or all
of them without ``--save-masks``), and ``brats report`` would score them as new.
:func:`claim_prediction_folder` therefore, for the length of the run:

1. creates ``OUT`` with a one-line error when it cannot (:func:`~brats_sdk.out_dir.prepare_out_dir`);
2. locks it (:class:`~brats_sdk.out_dir.RunLock`): a second run into it stops, naming
   the first;
3. removes the temporary files of writes that were killed
   (:func:`~brats_sdk.atomic.remove_orphan_temps`);
4. removes the earlier run's output set: the files of :data:`OUTPUT_SET` and the report
   files written beside them. Only these names are touched; other files stay.

The run then writes ``predictions.json`` with ``"complete": false`` before its first
volume and ``true`` after its last, so an interrupted run says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from brats_sdk.atomic import remove_orphan_temps
from brats_sdk.distributed import DistContext
from brats_sdk.out_dir import claim_out_dir
from brats_sdk.run_files import (
    ERRORS_CSV,
    FIGURES_DIR,
    MASKS_DIR,
    METRICS_JSON,
    NIFTI_DIR,
    PER_VOLUME_CSV,
    PREDICTIONS_CSV,
    PREDICTIONS_JSON,
    REPORT_HTML,
)

__all__ = ["OUTPUT_SET", "claim_prediction_folder", "clear_output_set"]

logger = logging.getLogger(__name__)

#: (sub)folder -> names a prediction run (and a report into its folder) writes there.
#: A new kind of output adds its pattern here, so that a rerun removes it too.
OUTPUT_SET: Final[dict[str, re.Pattern[str]]] = {
    ".": re.compile(
        "|".join(re.escape(n) for n in (PREDICTIONS_CSV, PREDICTIONS_JSON, ERRORS_CSV, REPORT_HTML, METRICS_JSON, PER_VOLUME_CSV))
    ),
    MASKS_DIR: re.compile(r"volume_\d+_pred\.h5"),
    # Labels, and the maps of --save-probabilities / --save-uncertainty.
    NIFTI_DIR: re.compile(r".+_(pred|probabilities|unc_(whole|core|enhance))\.nii(\.gz)?"),
    FIGURES_DIR: re.compile(r".+\.png"),
}


def clear_output_set(out_dir: Path) -> list[Path]:
    """Remove the files of :data:`OUTPUT_SET` (and orphan temporary files) from ``out_dir``.

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    for sub, pattern in OUTPUT_SET.items():
        folder = out_dir / sub
        removed.extend(remove_orphan_temps(folder))
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if pattern.fullmatch(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


@contextmanager
def claim_prediction_folder(out_dir: Path, *, dist: DistContext | None = None) -> Iterator[Path]:
    """Own ``out_dir`` for one prediction run (see the module docstring).

    Under torchrun rank 0 creates, locks and clears the folder while the other ranks wait.

    Args:
        out_dir: The ``--out`` folder.
        dist: The process group, if any.

    Yields:
        ``out_dir``, created and emptied of the earlier run's outputs.

    Raises:
        DataError: The folder cannot be created or written, or another run holds it.
    """
    main = dist is None or dist.is_main
    with claim_out_dir(out_dir, main=main):
        if main:
            removed = clear_output_set(out_dir)
            if removed:
                logger.info("%s: removed %d files of the earlier run", out_dir, len(removed))
        if dist is not None:
            dist.barrier()
        yield out_dir
