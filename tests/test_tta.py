"""Test-time augmentation, class probabilities and uncertainty maps of CombinedPredictor."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import h5py
import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
import torch
from click.testing import CliRunner
from scipy import ndimage

from brats_sdk import CombinedPredictor, ConfigError, PredictorConfig, Segmenter
from brats_sdk.bins import SurvivalBins
from brats_sdk.data.age_scaling import AgeScaler
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.normalise import Normalisation, brain_mask, normalise_volume
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.options import TTA, UncertaintyMethod
from brats_sdk.predict.tta import softmax
from brats_sdk.predict.uncertainty import UNCERTAINTY_NAMES, uncertainty_maps
from cli.main import cli

pytestmark = pytest.mark.numerics

_T = TypeVar("_T")
_R = TypeVar("_R")


class _Cpu:
    type = "cpu"


class ShiftNetworks:
    """A real (tiny) convolutional network as the predictor's adapter: one 5x5 convolution
    whose only weight sits off-centre, so its output is the input shifted by (2, 1) pixels:
    not symmetric under any mirroring. Bright FLAIR -> ET, else background."""

    in_channels = 4
    normalisation = Normalisation.SLICE
    resizes = False
    bins: SurvivalBins | None = None
    age_scaler: AgeScaler | None = None
    has_survival = False
    n_bins = 0
    device = _Cpu()
    workers = 1

    def __init__(self) -> None:
        self.conv = torch.nn.Conv2d(4, 4, 5, padding=2, bias=True)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[3, 0, 4, 3] = 8.0  # ET logit reads FLAIR 2 rows down, 1 column right
            self.conv.bias.copy_(torch.tensor([0.0, -20.0, -20.0, -4.0]))

    def map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        return [fn(i) for i in items]

    def unet_slice_logits(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            out: npt.NDArray[np.float32] = self.conv(torch.from_numpy(np.ascontiguousarray(images))).numpy()
            return out

    def unet_logits(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> npt.NDArray[np.float32]:
        return self.unet_slice_logits(images)[..., rows[0] : rows[1], cols[0] : cols[1]]

    def unet_labels(self, images: npt.NDArray[np.float32], rows: tuple[int, int], cols: tuple[int, int]) -> npt.NDArray[np.uint8]:
        return self.unet_logits(images, rows, cols).argmax(axis=1).astype(np.uint8)

    def unet_classes(self, images: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        return self.unet_slice_logits(images).argmax(axis=1).astype(np.uint8)

    def survival_chunk(self, classes: npt.NDArray[np.uint8], scaled_age: float) -> npt.NDArray[np.float64]:
        raise AssertionError("no survival network")

    def metadata(self) -> Mapping[str, object]:
        return {"segmenter": {}, "survival": None}


def _asymmetric_volume() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """A raw volume (6, 4, 64, 64): a brain disc with an L-shaped bright 'tumour' off-centre."""
    d, n = 6, 64
    yy, xx = np.mgrid[:n, :n]
    brain = (yy - 32) ** 2 + (xx - 30) ** 2 < 26**2
    tumour = np.zeros((n, n), dtype=bool)
    tumour[14:30, 12:20] = True
    tumour[24:30, 12:34] = True  # an L: no mirror maps it onto itself
    rng = np.random.default_rng(0)
    img = np.zeros((d, 4, n, n), dtype=np.float32)
    for s in range(d):
        img[s, :, brain] = 100.0 + rng.normal(0, 1, (int(brain.sum()), 4))
        img[s, 0, tumour] += 400.0
    return img, np.broadcast_to(tumour, (d, n, n))


def test_flips_are_mapped_back_before_averaging() -> None:
    image, tumour = _asymmetric_volume()
    plain = CombinedPredictor.from_networks(ShiftNetworks(), config=PredictorConfig(slice_step=1))
    flips = CombinedPredictor.from_networks(ShiftNetworks(), config=PredictorConfig(slice_step=1, tta="flips", probabilities=True))
    a, b = plain.predict_volume(image), flips.predict_volume(image)
    # Plain labels: the tumour shifted by (-2, -1); each flip shifts it the other way along
    # its axes, so the average is the tumour's core. Far (> 3 px) from the tumour's
    # boundary, all agree with each other and with the truth.
    far_in = ndimage.binary_erosion(tumour, np.ones((1, 7, 7), bool))
    far_out = ~ndimage.binary_dilation(tumour, np.ones((1, 7, 7), bool))
    for labels in (a.labels, b.labels):
        assert (labels[far_in] == 4).all() and (labels[far_out] == 0).all()
    # The plain map is not symmetric: a member left mirrored would move tumour far outside.
    assert not np.array_equal(a.labels, a.labels[:, :, ::-1])
    assert b.probabilities is not None and b.probabilities.dtype == np.float16
    assert np.allclose(b.probabilities.astype(np.float32).sum(axis=1), 1.0, atol=2e-3)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("tta_cohort"), SynthConfig(volumes=2, slices=10, size=64, seed=3))


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    torch.manual_seed(1)
    return Segmenter()


def test_tta_none_labels_stay_those_of_the_plain_pipeline(cohort: Path, segmenter: Segmenter) -> None:
    image = H5SliceFolder(cohort).load_volume(1).image
    base = CombinedPredictor(segmenter=segmenter, device="cpu").predict_volume(image)
    for config in (
        PredictorConfig(tta="none", probabilities=True, uncertainty="margin"),
        PredictorConfig(tta="none", probabilities=True, crop_to_brain=False, skip_empty_slices=False),
    ):
        other = CombinedPredictor(segmenter=segmenter, device="cpu", config=config).predict_volume(image)
        if config.crop_to_brain:
            np.testing.assert_array_equal(other.labels, base.labels)
        assert other.probabilities is not None
        np.testing.assert_allclose(other.probabilities.astype(np.float32).sum(axis=1), 1.0, atol=2e-3)
    assert base.probabilities is None and base.uncertainty is None


def test_flips_on_the_segmenter_are_the_mean_of_mirrored_softmaxes(cohort: Path, segmenter: Segmenter) -> None:
    image = H5SliceFolder(cohort).load_volume(2).image
    whole = PredictorConfig(tta="flips", probabilities=True, crop_to_brain=False, skip_empty_slices=False)
    got = CombinedPredictor(segmenter=segmenter, device="cpu", config=whole).predict_volume(image)
    brain = brain_mask(image)
    normed = torch.from_numpy(normalise_volume(image, segmenter.config.normalisation, brain=brain))
    segmenter.eval()
    with torch.inference_mode():
        members = [torch.flip(torch.softmax(segmenter(torch.flip(normed, a)), dim=1), a) if a else torch.softmax(segmenter(normed), dim=1)
                   for a in ((), (3,), (2,), (2, 3))]
    want = torch.stack(members).mean(dim=0).numpy()
    assert got.probabilities is not None
    np.testing.assert_allclose(got.probabilities.astype(np.float32), want, atol=2e-3)
    # Brain boxes, skipped slices and the rewritten networks: the same up to float rounding
    # inside the brain (the U-Net runs on the same 32-aligned crops, mirrored).
    boxes = CombinedPredictor(segmenter=segmenter, device="cpu", tta="flips", config=PredictorConfig(probabilities=True, slice_step=1))
    crop = boxes.predict_volume(image)
    assert crop.probabilities is not None
    inside = crop.probabilities.astype(np.float32).transpose(0, 2, 3, 1)[brain]
    np.testing.assert_allclose(inside, want.transpose(0, 2, 3, 1)[brain], atol=5e-3)
    bf16 = CombinedPredictor(segmenter=segmenter, device="cpu",
                             config=PredictorConfig(precision="bf16", tta="flips", uncertainty="spread")).predict_volume(image)
    assert bf16.uncertainty is not None and set(bf16.uncertainty) == set(UNCERTAINTY_NAMES.values())


def test_uncertainty_formulas_and_format() -> None:
    p_wt = np.array([0.5, 1.0, 0.75, 0.0], dtype=np.float32)
    probs = np.zeros((1, 4, 1, 4), dtype=np.float32)
    probs[0, 0, 0] = 1 - p_wt
    probs[0, 2, 0] = p_wt  # all tumour is ED: TC and ET are certain background
    margin = uncertainty_maps(probs, "margin")
    assert margin["whole"][0, 0].tolist() == [100, 0, 50, 0]
    assert margin["core"].max() == 0 and margin["enhance"].max() == 0
    entropy = uncertainty_maps(probs, UncertaintyMethod.ENTROPY)
    assert entropy["whole"][0, 0].tolist() == [100, 0, 81, 0]  # H(0.75) = 0.811 bits
    assert all(m.dtype == np.uint8 and m.shape == (1, 1, 4) for m in entropy.values())
    # missed: the entropy where the voxel is predicted outside WT (p < 0.5), 0 inside it
    # (p = 0.5 ties go to background, the first class, as the labels' argmax does).
    missed = uncertainty_maps(probs, UncertaintyMethod.MISSED)
    assert missed["whole"][0, 0].tolist() == [100, 0, 0, 0]
    probs_low = probs.copy()
    probs_low[0, 0, 0, 2], probs_low[0, 2, 0, 2] = 0.75, 0.25  # p = 0.25: predicted outside
    assert uncertainty_maps(probs_low, "missed")["whole"][0, 0].tolist() == [100, 0, 81, 0]
    with pytest.raises(ConfigError, match="tta='flips'"):
        uncertainty_maps(probs, "spread")
    with pytest.raises(ConfigError, match="tta='flips'"):
        PredictorConfig(uncertainty="spread")
    with pytest.raises(ConfigError, match="supported: none, flips"):
        PredictorConfig(tta="mirror")
    assert softmax(np.zeros((1, 4, 1, 1))).sum() == pytest.approx(1.0)
    assert TTA.parse("flips") is TTA.FLIPS


def _nifti_case(root: Path, image: npt.NDArray[np.float32], affine: npt.NDArray[np.float64]) -> Path:
    case = root / "CaseA"
    case.mkdir(parents=True)
    for c, name in enumerate(("flair", "t1", "t1ce", "t2")):
        nib.save(nib.Nifti1Image(np.ascontiguousarray(np.moveaxis(image[:, c], 0, 2)), affine), case / f"CaseA_{name}.nii.gz")
    return case


def test_cli_writes_probabilities_and_uncertainty_on_nifti_input(tmp_path: Path, cohort: Path, segmenter: Segmenter) -> None:
    image = H5SliceFolder(cohort).load_volume(1).image.astype(np.float32)
    affine = np.array([[-1.0, 0, 0, 90], [0, -1.0, 0, 120], [0, 0, 1.0, -70], [0, 0, 0, 1]])
    _nifti_case(tmp_path / "in", image, affine)
    seg = tmp_path / "segmenter.pt"
    segmenter.save(seg)
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "in"), "--segmenter", str(seg), "--out", str(out), "--device", "cpu", "--quiet"]
    bad = CliRunner().invoke(cli, [*args, "--save-uncertainty"])
    assert bad.exit_code == 1 and "--save-masks or --save-nifti" in bad.output and len(bad.output.strip().splitlines()) == 1
    res = CliRunner().invoke(cli, [*args, "--tta", "flips", "--save-masks", "--save-nifti", "--save-probabilities",
                                   "--save-uncertainty", "--uncertainty", "spread"])
    assert res.exit_code == 0, res.output
    d, _, h, w = image.shape
    for name in UNCERTAINTY_NAMES.values():
        img = nib.load(out / "nifti" / f"CaseA_unc_{name}.nii.gz")
        data = np.asarray(img.dataobj)
        assert data.dtype == np.uint8 and data.shape == (h, w, d) and data.max() <= 100
        np.testing.assert_allclose(img.affine, affine)
    probs_img = nib.load(out / "nifti" / "CaseA_probabilities.nii.gz")
    assert probs_img.shape == (h, w, d, 4)
    np.testing.assert_allclose(probs_img.affine, affine)
    with h5py.File(out / "masks" / "volume_1_pred.h5") as f:
        probs = f["probabilities"][()]
        assert probs.dtype == np.float16 and probs.shape == (d, 4, h, w)
        assert f["probabilities"].attrs["channels"] == "background,NCR,ED,ET"
        np.testing.assert_array_equal(probs.astype(np.float32).argmax(axis=1) > 0, f["labels"][()] > 0)
        for name in UNCERTAINTY_NAMES.values():
            m = f[f"unc_{name}"][()]
            assert m.dtype == np.uint8 and m.shape == (d, h, w) and m.max() <= 100
            # The NIfTI map is the h5 map in the file's axis order.
            np.testing.assert_array_equal(np.moveaxis(np.asarray(nib.load(out / "nifti" / f"CaseA_unc_{name}.nii.gz").dataobj), 2, 0), m)
