"""One network input whatever the file format, on the real labelled cases.

The same real case as raw NIfTI, as ``brats convert`` output (raw intensities in h5)
and as a Kaggle-style copy (each slice z-scored over its whole frame, float64) must
reach the network as the same input: per-slice normalisation over the brain is
unchanged by a per-slice affine change of intensities, and so are the brain mask and
the predicted labels. Skipped without ``../shared``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from brats_sdk import CombinedPredictor, Segmenter
from brats_sdk.data.convert import convert_nifti_to_h5
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.nifti import NiftiFolder
from brats_sdk.data.normalise import Normalisation, brain_mask, normalise_volume
from tests.helpers import kaggle_style, write_kaggle_volume

# float32 arithmetic on intensities that differ by a per-slice affine map: the inputs
# agree to a few float32 ulps of values of order 1-10.
INPUT_ATOL = 1e-4


@pytest.mark.slow
def test_every_real_case_gets_the_same_input_from_nifti_and_kaggle_style(real_labelled: Path) -> None:
    source = NiftiFolder(real_labelled)
    assert len(source.volumes()) == 14
    for info in source.volumes():
        raw = source.load_volume(info.volume).image
        kaggle = kaggle_style(raw).astype(np.float32)  # the SDK reads h5 images as float32
        brain = brain_mask(raw)
        np.testing.assert_array_equal(brain_mask(kaggle), brain, err_msg=info.name)
        a, b = normalise_volume(raw), normalise_volume(kaggle)
        assert np.abs(a - b).max() < INPUT_ATOL, info.name
        # The rule it replaces is not invariant: the gap this closes, measured per case.
        c, d = normalise_volume(raw, Normalisation.VOLUME), normalise_volume(kaggle, Normalisation.VOLUME)
        assert np.abs(c - d).transpose(1, 0, 2, 3)[:, brain].mean() > 0.1, info.name


@pytest.mark.slow
def test_three_formats_give_the_same_training_items_and_labels(real_labelled: Path, tmp_path: Path) -> None:
    """A real low-grade case as NIfTI, `brats convert` h5 and a Kaggle-style h5 copy feeds
    the same training items (to float tolerance) and a segmenter labels it alike (on the
    40 slices through the tumour's middle, to keep the CPU time short)."""
    nifti = NiftiFolder(real_labelled, volumes=(13,))
    converted = H5SliceFolder(convert_nifti_to_h5(real_labelled, tmp_path / "converted", volumes=(13,)))
    kaggle_dir = tmp_path / "kaggle"
    volumes = {}
    for info in nifti.volumes():
        rec = nifti.load_volume(info.volume)
        assert rec.mask is not None
        write_kaggle_volume(kaggle_dir, info.volume, kaggle_style(rec.image), rec.mask)
        volumes[info.volume] = rec
    kaggle = H5SliceFolder(kaggle_dir)
    for other in (converted, kaggle):
        assert [(i.volume, i.n_slices) for i in other.volumes()] == [(i.volume, i.n_slices) for i in nifti.volumes()]
    # Training items (normalised whole slices and their targets), slice by slice.
    picks = [i for i in range(len(nifti)) if nifti.slice_key(i)[1] in (40, 77, 120)]
    ref = SegmentationDataset(nifti, picks)
    for other in (converted, kaggle):
        got = SegmentationDataset(other, picks)
        for k in range(len(picks)):
            assert torch.equal(got[k]["target"], ref[k]["target"])
            assert float((got[k]["image"] - ref[k]["image"]).abs().max()) < INPUT_ATOL
    # Labels: any segmenter's answer depends on its input only.
    torch.manual_seed(0)
    predictor = CombinedPredictor(segmenter=Segmenter(), device="cpu")
    middle = slice(60, 100)
    for v, rec in volumes.items():
        brain = brain_mask(rec.image[middle])
        labels = predictor.predict_volume(rec.image[middle]).labels
        assert labels[brain].any()
        for other in (converted, kaggle):
            again = predictor.predict_volume(other.load_volume(v).image[middle]).labels
            agree = float((again == labels)[brain].mean())
            assert agree >= 0.995, (v, agree)
