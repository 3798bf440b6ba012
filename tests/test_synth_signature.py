"""`SynthConfig.patient_signature`: a per-patient tumour outline that says nothing of survival."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brats_sdk.constants import SURVIVAL_CSV
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.errors import ConfigError


def _elongation(mask: np.ndarray) -> float:
    """Ratio of the principal axes of the largest tumour cross-section ``(D, 3, H, W)``."""
    area = mask.any(axis=1).reshape(mask.shape[0], -1).sum(axis=1)
    ys, xs = np.nonzero(mask[int(area.argmax())].any(axis=0))
    cov = np.cov(np.stack([ys, xs]).astype(np.float64))
    ev = np.linalg.eigvalsh(cov)
    return float(np.sqrt(ev[-1] / max(ev[0], 1e-9)))


def test_signature_changes_outlines_not_survival(tmp_path: Path) -> None:
    plain = make_cohort(tmp_path / "plain", SynthConfig(volumes=4, slices=16, size=64, seed=3))
    signed = make_cohort(tmp_path / "signed", SynthConfig(volumes=4, slices=16, size=64, seed=3, patient_signature=True))
    assert (plain / SURVIVAL_CSV).read_bytes() == (signed / SURVIVAL_CSV).read_bytes()
    a, b = H5SliceFolder(plain), H5SliceFolder(signed)
    stretched = 0
    for v in range(1, 5):
        ma, mb = a.load_volume(v).mask, b.load_volume(v).mask
        assert ma is not None and mb is not None
        assert not np.array_equal(ma, mb)
        # Images and masks agree: the image carries the same tumour.
        stretched += _elongation(mb) > _elongation(ma) + 0.2
    assert stretched >= 3
    with pytest.raises(ConfigError, match="patient_signature"):
        SynthConfig(patient_signature=1)  # type: ignore[arg-type]  # the check under test
