"""BatchNorm folding and fused upsampling for inference, and the survival masks' random poses.

The rewrites must compute the same function as the networks they replace. They are
compared in float64, where they agree to about 1e-10 whatever the CPU's kernels; in
float32 the difference depends on each kernel's accumulation order, which differs
between AVX-512, AVX2 and the default kernels.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from brats_sdk.constants import SURVIVAL_CSV
from brats_sdk.data.clinical import PatientIdMap, read_survival_csv
from brats_sdk.data.cohort import survival_cohort
from brats_sdk.data.datasets import SurvivalDataset, random_pose
from brats_sdk.data.sources import open_source
from brats_sdk.models.segmenter import HeadKind, Segmenter
from brats_sdk.models.survival import SurvivalClassifier, SurvivalConfig
from brats_sdk.predict.accel.batchnorm import fold_batchnorm
from brats_sdk.predict.accel.upsample import PhaseUpsampleBlock, fuse_upsampling
from tests.helpers import randomise_norms

pytestmark = pytest.mark.numerics


def _count_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_folded_segmenter_matches_and_original_is_untouched() -> None:
    torch.manual_seed(0)
    for head in (HeadKind.DEFAULT, HeadKind.PAPER):
        model = Segmenter(head=head).double()
        randomise_norms(model)
        model.eval()
        folded = fold_batchnorm(model)
        assert _count_norms(model) > 20 and _count_norms(folded) == 0
        x = torch.randn(2, 4, 64, 96, dtype=torch.float64)
        with torch.inference_mode():
            a, b = model(x), folded(x)
        torch.testing.assert_close(b, a, atol=1e-9, rtol=1e-9)
        assert torch.equal(a.argmax(1), b.argmax(1))


def test_fused_upsampling_matches_the_folded_decoder() -> None:
    torch.manual_seed(0)
    for head in (HeadKind.DEFAULT, HeadKind.PAPER):
        model = Segmenter(head=head).double()
        randomise_norms(model)
        folded = fold_batchnorm(model)
        fused = fuse_upsampling(fold_batchnorm(model))
        blocks = list(fused.unet.decoder.blocks)
        assert len(blocks) == 5 and all(isinstance(b, PhaseUpsampleBlock) for b in blocks)
        # 64 x 96: every level doubles exactly; 48 x 80 is padded to 64 x 96 by the model;
        # channels-last as the predictor runs it.
        for shape in ((3, 4, 64, 96), (2, 4, 48, 80)):
            x = torch.randn(*shape, dtype=torch.float64)
            with torch.inference_mode():
                a = folded(x)
                b = fused(x)
                c = fused.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
            torch.testing.assert_close(b, a, atol=1e-9, rtol=1e-9)
            torch.testing.assert_close(c, a, atol=1e-9, rtol=1e-9)
            assert torch.equal(a.argmax(1), b.argmax(1))
            fused.to(memory_format=torch.contiguous_format)


def test_fused_block_falls_back_when_the_size_is_not_doubled() -> None:
    torch.manual_seed(0)
    folded = fold_batchnorm(Segmenter())
    unet_folded, unet_fused = folded.unet, fuse_upsampling(fold_batchnorm(folded)).unet
    block, ref = unet_fused.decoder.blocks[1], unet_folded.decoder.blocks[1]
    x, skip = torch.randn(1, 256, 5, 7), torch.randn(1, 128, 11, 13)  # 11 x 13 is not 2 x (5 x 7)
    with torch.inference_mode():
        assert torch.equal(block(x, 11, 13, skip), ref(x, 11, 13, skip))


def test_unfolded_models_are_left_alone() -> None:
    model = Segmenter()
    assert not any(isinstance(m, PhaseUpsampleBlock) for m in fuse_upsampling(model).modules())


def test_folded_survival_classifier_matches() -> None:
    torch.manual_seed(0)
    model = SurvivalClassifier(SurvivalConfig(n_bins=3)).double()
    randomise_norms(model)
    model.train()  # folding works on an eval copy whatever the original's mode
    folded = fold_batchnorm(model)
    assert model.training and not folded.training
    model.eval()
    assert _count_norms(folded) == 0
    x, age = torch.rand(2, 3, 224, 224, dtype=torch.float64), torch.rand(2, 1, dtype=torch.float64)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x, age), model(x, age), atol=1e-9, rtol=1e-9)


def test_random_pose_draws_the_eight_symmetries() -> None:
    image = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    expected = set()
    for k in range(4):
        r = torch.rot90(image, k, dims=(-2, -1))
        expected.add(tuple(r.flatten().tolist()))
        expected.add(tuple(r.flip(-1).flatten().tolist()))
    torch.manual_seed(0)
    seen = {tuple(random_pose(image).flatten().tolist()) for _ in range(200)}
    assert seen == expected and len(seen) == 8
    wide = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
    poses = {tuple(random_pose(wide).flatten().tolist()) for _ in range(100)}
    assert len(poses) == 4 and all(len(p) == 12 for p in poses)
    assert all(random_pose(wide).shape == wide.shape for _ in range(20))


def test_survival_dataset_augments_only_when_asked(tiny_cohort: Path) -> None:
    source = open_source(tiny_cohort)
    cohort = survival_cohort(read_survival_csv(tiny_cohort / SURVIVAL_CSV), sorted({source.slice_key(i)[0] for i in range(len(source))}), PatientIdMap())
    volume = cohort.volumes[0]
    indices = [i for i in range(len(source)) if source.slice_key(i)[0] == volume]
    tumour = next(i for i in indices if source.read_slice(i).mask.any())  # type: ignore[union-attr]  # a labelled cohort: masks are present
    plain = SurvivalDataset(source, [tumour], {volume: 0.5}, {volume: 1})
    augmented = SurvivalDataset(source, [tumour], {volume: 0.5}, {volume: 1}, augment=True)
    base = plain[0]["mask"]
    assert all(torch.equal(plain[0]["mask"], base) for _ in range(3))
    torch.manual_seed(0)
    masks = [augmented[0]["mask"] for _ in range(40)]
    assert any(not torch.equal(m, base) for m in masks)
    assert all(m.sum() == base.sum() and m.shape == base.shape for m in masks)
