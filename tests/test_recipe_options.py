"""Training options beyond the paper: cosine schedule, time limit, CPU bf16 autocast,
Dice + cross-entropy, augmentation and a capped validation set, with real models on
small inputs through the one training loop."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from brats_sdk.data import augment
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.scan import SliceFacts, scan_source
from brats_sdk.data.sources import open_source
from brats_sdk.errors import ConfigError
from brats_sdk.models.losses import DiceCELoss, DiceLoss
from brats_sdk.training.loop import LAST, FitConfig, fit
from brats_sdk.training.observer import LoggingObserver
from brats_sdk.training.protocols import Batch
from brats_sdk.training.schedule import COSINE_FLOOR, TIME_GRACE, cosine_factor, progress
from brats_sdk.training.segmenter_pipeline import (
    SegmenterTrainConfig,
    _validation_subset,
    train_segmenter,
)
from brats_sdk.training.tasks import SegmentationTask

CPU = torch.device("cpu")


class Constant(Dataset[Batch]):
    """``n`` random 8 x 8 items with random targets (a fixed generator)."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 4, 8, 8, generator=g)
        self.targets = torch.randint(0, 4, (n, 8, 8), generator=g)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> Batch:
        return {"image": self.images[i], "target": self.targets[i]}


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(4, 4, kernel_size=3, padding=1)


def _last_lr(path: Path) -> float:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return float(ckpt["optimizer"]["param_groups"][0]["lr"])


# ------------------------------------------------------------------------------ schedule
def test_cosine_factor_warms_up_then_decays_to_the_floor() -> None:
    assert cosine_factor(0.0, step=0, warmup_steps=4) == pytest.approx(0.25)
    assert cosine_factor(0.0, step=3, warmup_steps=4) == pytest.approx(1.0)
    assert cosine_factor(0.5, step=100, warmup_steps=4) == pytest.approx(COSINE_FLOOR + (1 - COSINE_FLOOR) / 2)
    assert cosine_factor(1.0, step=100, warmup_steps=0) == pytest.approx(COSINE_FLOOR)
    values = [cosine_factor(d / 10, step=100, warmup_steps=0) for d in range(11)]
    assert values == sorted(values, reverse=True)


def test_progress_takes_steps_or_time_whichever_is_further() -> None:
    assert progress(step=5, total_steps=10, elapsed_s=1.0, time_limit_s=None) == 0.5
    # Time counts from the grace on and reaches 1 at the limit.
    assert progress(step=5, total_steps=10, elapsed_s=90.0, time_limit_s=100.0) == pytest.approx((0.9 - TIME_GRACE) / (1 - TIME_GRACE))
    assert progress(step=5, total_steps=10, elapsed_s=100.0, time_limit_s=100.0) == 1.0
    assert progress(step=50, total_steps=10, elapsed_s=500.0, time_limit_s=100.0) == 1.0
    # A slow start (10 s before the 1st of 4,740 steps of a 52-minute run) moves nothing.
    assert progress(step=1, total_steps=4740, elapsed_s=10.0, time_limit_s=3120.0) == 1 / 4740


class _SlowStart(LoggingObserver):
    """The default observer, holding the first batch up as a machine's start-up does."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def batch_done(self, loss: float, metrics: Mapping[str, float], samples_per_s: float) -> None:
        time.sleep(self.seconds)
        self.seconds = 0.0


def test_a_time_limit_that_ends_nothing_leaves_the_weights_as_without_one(tmp_path: Path) -> None:
    """Same seed, 64 cosine steps: without a limit, and with a 5-second limit on a run whose
    first batch takes 0.3 s longer (then 6 % of the limit against 1.6 % of the steps).
    The limit ends neither run, so the rates and the weights are the same to the bit."""
    weights, lrs = [], []
    for name, limit, observer in (("free", None, None), ("limited", 5.0, _SlowStart(0.3))):
        model = _net()
        config = FitConfig(lr=1e-2, max_epochs=4, batch_size=4, patience=5, amp=False, schedule="cosine",
                           warmup_steps=2, time_limit_s=limit)
        result = fit(model=model, task=SegmentationTask(), train_data=Constant(64), val_data=Constant(4),
                     config=config, device=CPU, checkpoint_dir=tmp_path / name, observer=observer)
        assert result.epochs_run == 4 and not result.out_of_time
        weights.append(model.weight.detach().clone())
        lrs.append([r.lr for r in result.history])
    assert lrs[0] == lrs[1]
    assert torch.equal(weights[0], weights[1])


def test_cosine_schedule_ends_on_the_floor(tmp_path: Path) -> None:
    """16 items in batches of 4, 3 epochs: 12 steps; after the last one the rate is on
    the floor, and epochs record falling rates."""
    config = FitConfig(lr=1e-2, max_epochs=3, batch_size=4, patience=5, amp=False, schedule="cosine", warmup_steps=2)
    result = fit(model=_net(), task=SegmentationTask(), train_data=Constant(16), val_data=Constant(4),
                 config=config, device=CPU, checkpoint_dir=tmp_path)
    assert result.epochs_run == 3
    assert _last_lr(tmp_path / LAST) == pytest.approx(1e-2 * COSINE_FLOOR)
    lrs = [r.lr for r in result.history]
    assert lrs[0] == pytest.approx(1e-2 * cosine_factor(0.0, step=0, warmup_steps=2))
    assert lrs[1] > lrs[2]


def test_step_schedule_is_the_papers_steplr(tmp_path: Path) -> None:
    config = FitConfig(lr=1e-2, max_epochs=3, batch_size=8, patience=5, amp=False, step_size=2, gamma=0.1)
    result = fit(model=_net(), task=SegmentationTask(), train_data=Constant(16), val_data=Constant(4),
                 config=config, device=CPU, checkpoint_dir=tmp_path)
    assert [r.lr for r in result.history] == pytest.approx([1e-2, 1e-2, 1e-3])


# ------------------------------------------------------------------------------ time limit
def test_time_limit_stops_after_validating_and_stays_stopped(tmp_path: Path) -> None:
    config = FitConfig(lr=1e-2, max_epochs=50, batch_size=4, patience=50, amp=False, time_limit_s=1e-6)
    model = _net()
    result = fit(model=model, task=SegmentationTask(), train_data=Constant(16), val_data=Constant(4),
                 config=config, device=CPU, checkpoint_dir=tmp_path)
    assert result.out_of_time and result.epochs_run == 1 and result.best_epoch == 1
    assert math.isfinite(result.history[0].val_loss)
    ckpt = torch.load(tmp_path / LAST, map_location="cpu", weights_only=True)
    assert ckpt["state"]["steps"] == 1 and ckpt["state"]["out_of_time"] is True
    resumed = fit(model=_net(), task=SegmentationTask(), train_data=Constant(16), val_data=Constant(4),
                  config=config, device=CPU, checkpoint_dir=tmp_path, resume=True)
    assert resumed.history == () and resumed.out_of_time


def test_pipeline_time_limit_skips_later_stages(tiny_cohort: Path, tmp_path: Path) -> None:
    config = SegmenterTrainConfig(
        data_dir=tiny_cohort, out_dir=tmp_path / "run", batch_size=8, stage_epochs=(5, 5, 0), max_steps_per_epoch=2,
        device="cpu", amp=False, time_limit_minutes=1e-6,
    )
    result = train_segmenter(config)
    # A stage always gets at least a second, so a fast CPU may fit more than one tiny epoch in it.
    assert len(result.stages) == 1 and result.stages[0].out_of_time and 1 <= result.stages[0].epochs_run < 5
    assert result.model_path.is_file()


# ------------------------------------------------------------------------------ bf16 on a CPU
def test_cpu_bf16_runs_the_network_under_autocast(tmp_path: Path) -> None:
    dtypes: list[torch.dtype] = []
    for flag in (False, True):
        model = _net()
        model.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
        config = FitConfig(lr=1e-2, max_epochs=1, batch_size=4, amp=False, cpu_bf16=flag)
        fit(model=model, task=SegmentationTask(), train_data=Constant(4), val_data=Constant(4),
            config=config, device=CPU, checkpoint_dir=tmp_path / str(flag))
        assert model.weight.dtype == torch.float32  # autocast leaves the weights in fp32
    assert set(dtypes[:2]) == {torch.float32} and set(dtypes[2:]) == {torch.bfloat16}


# ------------------------------------------------------------------------------ loss
def test_dice_ce_loss_is_dice_plus_weighted_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 6, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 6), generator=g)
    dice = DiceLoss(class_weights=(0.25, 1, 1, 1), batch_dice=True)
    got = DiceCELoss(dice, ce_weight=0.5)(logits, target)
    torch.testing.assert_close(got, dice(logits, target) + 0.5 * F.cross_entropy(logits, target))
    one_hot = F.one_hot(target, 4).movedim(-1, 1)
    torch.testing.assert_close(DiceCELoss(dice, ce_weight=0.5)(logits, one_hot), got)
    torch.testing.assert_close(DiceCELoss(dice, ce_weight=0.0)(logits, target), dice(logits, target))
    got.backward()  # type: ignore[no-untyped-call]  # untyped in torch
    assert logits.grad is not None and bool((logits.grad != 0).all())
    with pytest.raises(ConfigError, match="ce_weight"):
        DiceCELoss(dice, ce_weight=-1.0)


# ------------------------------------------------------------------------------ augmentation
def test_augmentation_mirrors_image_and_target_together(tiny_cohort: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without rotation: the target is one of the four mirrorings of the plain item's, the
    image the same mirroring of the plain image with each channel's brain affinely jittered."""
    monkeypatch.setattr(augment, "SPATIAL_PROB", 0.0)
    source = open_source(tiny_cohort, volumes=(1,))
    scan = scan_source(source)
    tumour = next(i for i, f in enumerate(scan.slices) if f.has_tumour and f.brain_pixels > 200)
    plain = SegmentationDataset(source, [tumour])[0]
    brain = plain["image"].ne(0).any(0)
    augmented = SegmentationDataset(source, [tumour], augment=True)
    seen: set[tuple[bool, bool]] = set()
    torch.manual_seed(0)
    for _ in range(24):
        item = augmented[0]
        matches = [(fr, fc) for fr in (False, True) for fc in (False, True)
                   if torch.equal(item["target"], _flip(plain["target"], fr, fc))]
        assert len(matches) >= 1
        fr, fc = matches[0]
        seen.add((fr, fc))
        ref, inside = _flip(plain["image"], fr, fc), _flip(brain, fr, fc)
        assert bool((item["image"][:, ~inside] == 0).all())  # background stays 0
        for c in range(ref.shape[0]):  # inside the brain, an affine change per channel
            x, y = ref[c][inside].double(), item["image"][c][inside].double()
            slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
            assert 0.9 - 1e-4 <= slope <= 1.1 + 1e-4
            torch.testing.assert_close(y, slope * x + (y.mean() - slope * x.mean()), atol=1e-4, rtol=1e-4)
    assert len(seen) == 4


def _flip(t: torch.Tensor, rows: bool, cols: bool) -> torch.Tensor:
    if rows:
        t = t.flip(-2)
    if cols:
        t = t.flip(-1)
    return t


@pytest.mark.parametrize(("h", "w"), [(12, 12), (8, 16)])
def test_rotation_and_zoom_move_image_and_target_alike(h: int, w: int) -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.randn(4, h, w, generator=g)
    target = torch.randint(0, 4, (h, w), generator=g).to(torch.uint8)
    # No rotation, no zoom: the identity (samples fall on pixel centres).
    a, t = image.clone(), target.clone()
    augment._rotate_zoom(a, t, 0.0, 1.0)
    torch.testing.assert_close(a, image, atol=1e-5, rtol=0)
    assert torch.equal(t, target)
    if h == w:  # a quarter turn of a square is a permutation of its pixels
        a, t = image.clone(), target.clone()
        augment._rotate_zoom(a, t, math.pi / 2, 1.0)
        turned = [torch.rot90(image, k, dims=(-2, -1)) for k in (1, -1)]
        k = 0 if torch.allclose(a, turned[0], atol=1e-4) else 1
        torch.testing.assert_close(a, turned[k], atol=1e-4, rtol=0)
        assert torch.equal(t, torch.rot90(target, 1 if k == 0 else -1, dims=(-2, -1)))
    # Zooming out brings background (0) in at the borders, in image and target alike.
    a, t = image.clone(), target.clone() + 1
    augment._rotate_zoom(a, t, 0.0, 0.5)
    assert bool((a[:, 0, :] == 0).all()) and bool((t[0, :] == 0).all()) and bool(t[h // 2, w // 2] > 0)


def _oedema_item() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 60x60 item: brain in rows 2..57, a core (NCR left, ET right) in a ring of oedema."""
    g = torch.Generator().manual_seed(1)
    brain = torch.zeros(60, 60, dtype=torch.bool)
    brain[2:58, 2:58] = True
    target = torch.zeros(60, 60, dtype=torch.uint8)
    target[10:50, 10:50] = 2
    target[26:34, 26:30] = 1
    target[26:34, 30:34] = 3
    image = 0.2 * torch.randn(4, 60, 60, generator=g) + torch.tensor([1.0, -0.5, 0.3, 2.0]).view(4, 1, 1) * (target == 2)
    image[:, 26:34, 26:34] += 3.0
    return image * brain, target, brain


def test_fading_pulls_oedema_towards_healthy_brain_and_keeps_the_rest() -> None:
    image, target, brain = _oedema_item()
    healthy = brain & (target == 0)
    deep = torch.zeros_like(brain)  # oedema beyond the soft edge's reach: the full factor applies
    deep[13:47, 13:47] = True
    deep[23:37, 23:37] = False
    for factor in (0.0, 0.4, 1.0):
        x = image.clone()
        augment.fade_oedema(x, target, brain, factor)
        ref = image[:, healthy].median(dim=1).values.view(4, 1)
        torch.testing.assert_close(x[:, deep], ref + factor * (image[:, deep] - ref))
        core = (target == 1) | (target == 3)
        assert torch.equal(x[:, core], image[:, core]) and torch.equal(x[:, ~brain], image[:, ~brain])
        far = healthy.clone()
        far[5:55, 5:55] = False  # healthy brain out of the edge's reach
        assert torch.equal(x[:, far], image[:, far])
    # Nothing to fade, or nothing to fade towards: the item is left as it is.
    for t in (torch.zeros_like(target), torch.where(brain, torch.full_like(target, 2), target)):
        x = image.clone()
        augment.fade_oedema(x, t, brain, 0.0)
        assert torch.equal(x, image)


def test_fading_happens_only_when_asked_with_a_factor_per_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(augment, "SPATIAL_PROB", 0.0)
    monkeypatch.setattr(augment, "INTENSITY_JITTER", 0.0)
    monkeypatch.setattr(augment, "OEDEMA_PROB", 1.0)
    image, target, brain = _oedema_item()

    def contrast(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # mirroring moves the oedema with the target: measure it where the target says
        return x[:, t == 2].mean(dim=1) - x[:, brain & (t == 0)].median(dim=1).values

    plain = contrast(image, target)
    for per_channel in (True, False):
        monkeypatch.setattr(augment, "OEDEMA_PER_CHANNEL", per_channel)
        ratios = []
        for seed in range(8):
            torch.manual_seed(seed)
            x, t = image.clone(), target.clone()
            augment.augment_item(x, t, brain, oedema_contrast_min=1.0)
            torch.testing.assert_close(contrast(x, t), plain)  # 1: off
            torch.manual_seed(seed)
            x, t = image.clone(), target.clone()
            augment.augment_item(x, t, brain, oedema_contrast_min=0.3)
            ratios.append(contrast(x, t) / plain)
        r = torch.stack(ratios)  # (seeds, channels)
        assert bool((r > 0.3 - 0.05).all()) and bool((r < 1.0 + 1e-4).all()) and float(r.min()) < 0.6
        spread = float((r.max(dim=1).values - r.min(dim=1).values).max())
        assert spread > 0.2 if per_channel else spread < 0.05


def test_oedema_contrast_min_must_be_a_factor(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="oedema_contrast_min"):
        SegmenterTrainConfig(data_dir=tmp_path, out_dir=tmp_path, oedema_contrast_min=1.5)


# ------------------------------------------------------------------------------ validation cap
def test_validation_subset_takes_tumour_slices_first_and_spreads_them() -> None:
    facts = [SliceFacts(1, i, 100, (1, 0, 0) if i % 3 == 0 else (0, 0, 0)) for i in range(30)]
    indices = list(range(30))
    assert _validation_subset(indices, facts, None) == indices
    assert _validation_subset(indices, facts, 40) == indices
    got = _validation_subset(indices, facts, 12)
    assert len(got) == 12 and got == sorted(got)
    tumour = [i for i in indices if facts[i].has_tumour]
    assert set(tumour) <= set(got)
    assert _validation_subset(indices, facts, 12) == got  # the same subset every time
    small = _validation_subset(indices, facts, 5)
    assert all(facts[i].has_tumour for i in small) and np.diff(small).min() >= 3


# ------------------------------------------------------------------------------ final weights
def test_keep_last_ends_on_the_last_epochs_weights(tmp_path: Path) -> None:
    """Training wants class 1 everywhere, validation class 0: validation loss rises every
    epoch, so the best epoch is the first; keep_best=False still ends on the last."""
    images = torch.ones(16, 4, 8, 8)

    class Fixed(Dataset[Batch]):
        def __init__(self, target: int) -> None:
            self.target = target

        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> Batch:
            return {"image": images[i], "target": torch.full((8, 8), self.target, dtype=torch.int64)}

    finals = {}
    for keep in (True, False):
        torch.manual_seed(0)
        model = nn.Conv2d(4, 2, kernel_size=1)
        config = FitConfig(lr=1e-2, max_epochs=3, batch_size=4, patience=5, amp=False, keep_best=keep)
        result = fit(model=model, task=SegmentationTask(loss=nn.CrossEntropyLoss()), train_data=Fixed(1), val_data=Fixed(0),
                     config=config, device=CPU, checkpoint_dir=tmp_path / str(keep))
        assert result.best_epoch == 1 and result.epochs_run == 3
        assert result.last_metrics == result.history[-1].metrics
        last = torch.load(tmp_path / str(keep) / LAST, map_location="cpu", weights_only=True)["model"]
        finals[keep] = torch.equal(model.weight, last["weight"])
    assert finals == {True: False, False: True}
