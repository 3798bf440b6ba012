"""A run's options, recorded when it starts and compared when it is resumed.

``RUN_DIR/<model>_options.json`` holds the training config a run started with. A
``--resume`` whose options differ (learning rates, seed, input size, loss options, ...)
is refused with every difference listed, instead of training with a mix of two
configurations and recording options the run did not use. Options that only say how
far or where to go on (:data:`MAY_DIFFER`) may change.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Final

from brats_sdk.atomic import atomic_write_text
from brats_sdk.config_checks import refuse_changed_options
from brats_sdk.distributed import DistContext
from brats_sdk.json_files import read_json_object
from brats_sdk.options import config_to_dict

__all__ = ["MAY_DIFFER", "options_file", "record_or_compare_options"]

logger = logging.getLogger(__name__)

#: Fields a resumed run may change: how long it goes on, where it computes, and the
#: resume switch itself. Every other field must match the run's.
MAY_DIFFER: Final[frozenset[str]] = frozenset(
    {"resume", "epochs", "stage_epochs", "time_limit_minutes", "num_workers", "device", "quiet", "workers"}
)


def options_file(out_dir: Path, model: str) -> Path:
    """``out_dir/<model>_options.json``."""
    return Path(out_dir) / f"{model}_options.json"


def record_or_compare_options(
    out_dir: Path, model: str, config: object, *, resume: bool, dist: DistContext | None = None
) -> None:
    """On a resume, refuse options that differ from the run's; otherwise record them.

    Path fields are compared resolved, so ``data`` and ``./data`` are the same folder.

    Args:
        out_dir: The run folder.
        model: ``segmenter`` or ``survival`` (each model's run keeps its own options).
        config: The training config dataclass of this invocation.
        resume: Whether this invocation resumes the run.
        dist: Process group; rank 0 writes.

    Raises:
        ConfigError: A resume with options that differ (one line listing them all).
        DataError: The recorded options file is unreadable.
    """
    path = options_file(out_dir, model)
    given = _resolved(config_to_dict(config, lists=True), config)
    if resume and path.is_file():
        stored = read_json_object(path, hint=" of run options")
        refuse_changed_options(str(Path(out_dir)), stored, given, may_differ=MAY_DIFFER)
        return
    if dist is None or dist.is_main:
        atomic_write_text(path, json.dumps(given, indent=1, sort_keys=True))
        logger.info("%s: recorded the run's options", path)


def _resolved(plain: dict[str, object], config: object) -> dict[str, object]:
    out = dict(plain)
    for name, value in plain.items():
        if isinstance(getattr(config, name, None), Path) and isinstance(value, str):
            out[name] = str(Path(value).resolve())
    return out
