"""CombinedPredictor on real (small, untrained or briefly trained) models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from brats_sdk import (
    AgeScaler,
    CombinedPredictor,
    DataError,
    PredictorConfig,
    Segmenter,
    SegmenterConfig,
    SurvivalBins,
    SurvivalClassifier,
    VolumeFailure,
    VolumePrediction,
)
from brats_sdk.data.crops import box_of
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.normalise import Normalisation, brain_mask, normalise_volume
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.labels import classes_to_labels, classes_to_one_hot
from brats_sdk.metrics.survival import majority_vote
from brats_sdk.predict.results import region_volumes_ml

pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def predictor() -> CombinedPredictor:
    torch.manual_seed(0)
    bins = SurvivalBins.brats().with_observed([100.0, 350.0, 600.0])
    survival = SurvivalClassifier(bins=bins, age_scaler=AgeScaler(30.0, 80.0))
    return CombinedPredictor(segmenter=Segmenter(), survival=survival, device="cpu")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pcohort")
    make_cohort(root, SynthConfig(volumes=2, slices=12, size=64, seed=4))
    return root


def test_region_volumes_in_ml_follow_spacing() -> None:
    classes = np.zeros((2, 10, 10), dtype=np.uint8)
    classes[0, :2, :5] = 1  # 10 NCR
    classes[1, :4, :5] = 2  # 20 ED
    classes[1, 5, :3] = 3  # 3 ET
    got = region_volumes_ml(classes, spacing=(2.0, 1.0, 1.0))
    assert got == pytest.approx({"NCR": 0.02, "ED": 0.04, "ET": 0.006, "WT": 0.066, "TC": 0.026})


def _tumour_everywhere(class_index: int) -> Segmenter:
    """A segmenter whose head votes ``class_index`` on every pixel (its bias dominates)."""
    torch.manual_seed(0)
    seg = Segmenter()
    head = seg.unet.segmentation_head[0]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[class_index] = 10.0
    return seg


def test_predict_volume_outputs(cohort: Path) -> None:
    bins = SurvivalBins.brats().with_observed([100.0, 350.0, 600.0])
    torch.manual_seed(0)
    survival = SurvivalClassifier(bins=bins, age_scaler=AgeScaler(30.0, 80.0))
    predictor = CombinedPredictor(segmenter=_tumour_everywhere(2), survival=survival, device="cpu")
    vol = H5SliceFolder(cohort).load_volume(1)
    result = predictor.predict_volume(vol.image, 55.0, volume=1, name="volume_1", patient_id="P1")
    assert isinstance(result, VolumePrediction)
    assert result.labels.shape == (12, 64, 64) and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) == {0, 2}  # ED (class 2) inside the brain, background outside
    non_empty = [s for s in range(12) if result.labels[s].any()]
    assert non_empty and list(result.slice_indices) == non_empty
    assert result.status == "ok"
    assert result.slice_probs.shape == (len(non_empty), 3)
    np.testing.assert_allclose(result.slice_probs.sum(axis=1), 1.0, rtol=1e-6)
    winner, votes = majority_vote(result.slice_probs)
    assert (result.predicted_bin, result.votes) == (winner, votes)
    assert result.mean_prob_bin == int(result.slice_probs.mean(axis=0).argmax())
    assert result.bin_label == bins.labels[winner]
    # slices without brain stay background
    brainless = ~(vol.image != vol.image.min(axis=(2, 3), keepdims=True)).any(axis=(1, 2, 3))
    assert not result.labels[brainless].any()


def test_predictor_survival_probabilities_equal_predict_proba(predictor: CombinedPredictor, cohort: Path) -> None:
    # The predictor runs its rewritten survival network (tumour windows, folded BatchNorm)
    # through the same probability path as predict_proba: same masks and age, same numbers.
    survival = predictor.survival
    assert survival is not None
    rng = np.random.default_rng(0)
    classes = np.zeros((5, 64, 64), dtype=np.uint8)
    for s in range(5):
        r, c = rng.integers(8, 40, size=2)
        classes[s, r : r + 16, c : c + 12] = rng.integers(1, 4, size=(16, 12))
    got = predictor.survival_probs(classes, 61.5)
    want = survival.predict_proba(classes_to_one_hot(classes), [61.5] * 5)
    assert got.shape == want.shape == (5, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert not np.allclose(want, predictor.survival_probs(classes, 31.0), atol=1e-7)  # the age is used


def test_no_age_and_no_tumour_still_segment(predictor: CombinedPredictor, cohort: Path) -> None:
    vol = H5SliceFolder(cohort).load_volume(2)
    no_age = predictor.predict_volume(vol.image, None)
    assert no_age.status == "no age" and no_age.predicted_bin is None and no_age.votes is None
    assert no_age.labels.shape == (12, 64, 64)
    blank = predictor.predict_volume(np.zeros((3, 4, 64, 64), dtype=np.float32), 60.0)
    assert blank.status == "no tumour predicted" and not blank.labels.any() and blank.slices_used == 0


def test_bad_volume_is_a_data_error(predictor: CombinedPredictor) -> None:
    with pytest.raises(DataError, match="expected a raw volume"):
        predictor.predict_volume(np.zeros((3, 3, 32, 32), dtype=np.float32), 60.0)
    bad = np.zeros((2, 4, 32, 32), dtype=np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        predictor.predict_volume(bad, 60.0)


def test_predict_source_streams_and_reports_failures(predictor: CombinedPredictor, cohort: Path, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    for f in next(cohort.rglob("meta_data.csv")).parent.glob("*.h5"):
        (data / f.name).write_bytes(f.read_bytes())
    (data / "volume_2_slice_3.h5").write_bytes(b"junk")
    results = list(predictor.predict_source(H5SliceFolder(data), {1: 50.0, 2: 60.0}))
    assert [type(r) for r in results] == [VolumePrediction, VolumeFailure]
    failure = results[1]
    assert isinstance(failure, VolumeFailure) and "volume_2_slice_3.h5" in failure.reason
    assert results[0].patient_id == "BraTS20_Training_001"  # type: ignore[union-attr]  # checked a VolumePrediction above


def test_skipping_and_cropping_are_exact_where_the_model_is_local(cohort: Path) -> None:
    """With a network whose every layer sees the whole box the same way the full run
    does (zero input -> zero activations), the shortcut paths equal the full path in
    every slice's brain box; outside it they label background."""
    torch.manual_seed(1)
    seg = Segmenter()
    with torch.no_grad():
        for m in seg.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.bias.zero_()
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.zero_()
    vol = H5SliceFolder(cohort).load_volume(1).image
    full = CombinedPredictor(segmenter=seg, device="cpu", config=PredictorConfig(skip_empty_slices=False, crop_to_brain=False))
    fast = CombinedPredictor(segmenter=seg, device="cpu", config=PredictorConfig(slice_step=1))
    a, b = full.predict_volume(vol).labels, fast.predict_volume(vol).labels
    inside = np.zeros(vol.shape[:1] + vol.shape[2:], dtype=bool)
    for k, brain in enumerate(brain_mask(vol)):
        box = box_of(brain)
        if box is not None:
            inside[k, box[0] : box[1], box[2] : box[3]] = True
    assert inside.any() and not inside.all()
    assert np.array_equal(a[inside], b[inside])
    assert not b[~inside].any()


@pytest.mark.parametrize(("fold", "precision"), [(True, "fp32"), (False, "fp32"), (True, "bf16")])
def test_the_models_passed_in_are_left_as_they_are(cohort: Path, fold: bool, precision: str) -> None:
    """Mode, memory layout and weights of the caller's models survive building and using a predictor.

    The predictor once turned them channels-last and eval in place, which changed the speed
    of everything else that ran them.
    """
    torch.manual_seed(0)
    segmenter = Segmenter().train()
    survival = SurvivalClassifier(bins=SurvivalBins.brats(), age_scaler=AgeScaler(30.0, 80.0)).train()
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in (("seg", segmenter), ("surv", survival))}
    predictor = CombinedPredictor(segmenter=segmenter, survival=survival, device="cpu",
                                  config=PredictorConfig(fold_batchnorm=fold, channels_last=True, precision=precision))
    predictor.predict_volume(H5SliceFolder(cohort).load_volume(1).image, 55.0)
    for name, model in (("seg", segmenter), ("surv", survival)):
        assert model.training, name
        convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(w.is_contiguous() and w.dtype == torch.float32 for w in convs), name
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in before[name].items()), name
    assert predictor.segmenter is segmenter and predictor.survival is survival


def test_the_predictor_applies_the_segmenters_normalisation(cohort: Path) -> None:
    """Per-slice normalisation makes the input, and so the labels, independent of how each
    slice was scaled; a per-volume model gets per-volume statistics."""
    vol = H5SliceFolder(cohort).load_volume(1).image
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.01, 20.0, size=(vol.shape[0], vol.shape[1], 1, 1))
    shift = rng.uniform(-50.0, 50.0, size=(vol.shape[0], vol.shape[1], 1, 1))
    rescaled = (vol.astype(np.float64) * scale + shift).astype(np.float32)
    torch.manual_seed(2)
    for rule in Normalisation:
        seg = Segmenter(SegmenterConfig(normalisation=rule))
        plain = PredictorConfig(fold_batchnorm=False, skip_empty_slices=False, crop_to_brain=False, channels_last=False)
        predictor = CombinedPredictor(segmenter=seg, device="cpu", config=plain)
        normed = normalise_volume(vol, rule)
        np.testing.assert_array_equal(predictor.predict_volume(vol).labels, seg.predict_labels(normed, batch_size=plain.batch_size))
    slice_model = CombinedPredictor(segmenter=Segmenter(SegmenterConfig(normalisation="slice")), device="cpu")
    a, b = slice_model.predict_volume(vol).labels, slice_model.predict_volume(rescaled).labels
    assert (a != b).mean() < 1e-4


@pytest.mark.parametrize("rule", list(Normalisation))
def test_brain_boxes_normalised_in_place_give_the_labels_of_the_normalised_volume(cohort: Path, rule: Normalisation) -> None:
    """predict_volume normalises each brain box into its crop; segment_normalised copies
    boxes of a volume normalised first: the same inputs, so the same labels."""
    vol = H5SliceFolder(cohort).load_volume(1).image
    torch.manual_seed(3)
    predictor = CombinedPredictor(segmenter=Segmenter(SegmenterConfig(normalisation=rule)), device="cpu")
    brain = brain_mask(vol)
    want = classes_to_labels(predictor.segment_normalised(normalise_volume(vol, rule, brain=brain), brain))
    np.testing.assert_array_equal(predictor.predict_volume(vol).labels, want)


def test_predictions_do_not_depend_on_the_workers(cohort: Path) -> None:
    """One torch thread (everything in the caller's thread) or two (batches and chunks on two
    workers): the same labels, probabilities equal up to float rounding."""
    vol = H5SliceFolder(cohort).load_volume(1).image
    torch.manual_seed(0)
    survival = SurvivalClassifier(bins=SurvivalBins.brats(), age_scaler=AgeScaler(30.0, 80.0))
    predictor = CombinedPredictor(segmenter=Segmenter(), survival=survival, device="cpu", config=PredictorConfig(batch_size=2))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(predictor.predict_volume(vol, 55.0))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    one, two = results
    np.testing.assert_array_equal(one.labels, two.labels)
    assert one.slice_indices == two.slice_indices
    np.testing.assert_allclose(one.slice_probs, two.slice_probs, atol=1e-5)


def test_bf16_runs_bf16_copies_of_the_networks(cohort: Path) -> None:
    vol = H5SliceFolder(cohort).load_volume(1).image
    torch.manual_seed(0)
    survival = SurvivalClassifier(bins=SurvivalBins.brats(), age_scaler=AgeScaler(30.0, 80.0))
    predictor = CombinedPredictor(
        segmenter=_tumour_everywhere(2), survival=survival, device="cpu", config=PredictorConfig(precision="bf16")
    )
    assert {p.dtype for p in predictor.networks._seg_net.parameters()} == {torch.bfloat16}
    assert predictor.networks._surv_net is not None and {p.dtype for p in predictor.networks._surv_net.parameters()} == {torch.bfloat16}
    result = predictor.predict_volume(vol, 55.0)
    assert result.labels.shape == vol.shape[:1] + vol.shape[2:] and result.labels.dtype == np.uint8
    assert result.status == "ok"
    np.testing.assert_allclose(result.slice_probs.sum(axis=1), 1.0, rtol=1e-6)
