"""One prepared GPU check: device choice, AMP training throughput of both models, the
shared training loop on CUDA, and prediction volumes/s. Run where a GPU is present:

    python benchmarks/bench_gpu.py [--steps 10] [--quick]

Prints one `name=value` line per figure. On a CPU-only machine it says so and stops
(use --quick to exercise the script on the CPU with tiny sizes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from brats_sdk import (
    AgeScaler,
    CombinedPredictor,
    H5SliceFolder,
    PredictorConfig,
    Segmenter,
    SurvivalBins,
    SurvivalClassifier,
    SynthConfig,
    make_cohort,
    resolve_device,
)
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.scan import scan_source
from brats_sdk.models.losses import DiceLoss
from brats_sdk.training.loop import FitConfig, fit
from brats_sdk.training.tasks import SegmentationTask


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(
    step: Callable[[], torch.Tensor], params: list[torch.nn.Parameter], device: torch.device, amp: bool, steps: int, batch: int
) -> float:
    """Slices/s of forward + backward + Adam on tensors already on the device."""
    opt = torch.optim.Adam(params, lr=1e-4)
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    for i in range(steps + 3):
        if i == 3:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = step()
        loss.backward()  # type: ignore[no-untyped-call]  # torch.Tensor.backward is untyped
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (to try the script on a CPU)")
    args = parser.parse_args()
    device = resolve_device("auto")
    print(f"device_auto={device}")
    if device.type != "cuda" and not args.quick:
        print("no CUDA device: nothing to measure")
        return
    if device.type == "cuda":
        print(f"gpu={torch.cuda.get_device_name(device)} torch={torch.__version__} bf16={torch.cuda.is_bf16_supported()}")
        torch.backends.cudnn.benchmark = True
    size, seg_batch, surv_batch, slices = (64, 4, 4, 16) if args.quick else (240, 32, 64, 155)

    seg = Segmenter().to(device)
    loss_fn = DiceLoss()
    x = torch.randn(seg_batch, 4, size, size, device=device)
    y = torch.randint(0, 4, (seg_batch, size, size), device=device)
    for amp in (False, True):
        rate = train_throughput(lambda: loss_fn(seg(x).float(), y), list(seg.parameters()), device, amp, args.steps, seg_batch)
        print(f"segmenter_train_slices_per_s_amp_{'on' if amp else 'off'}={rate:.1f}")

    surv = SurvivalClassifier(bins=SurvivalBins.brats(), age_scaler=AgeScaler(20.0, 85.0)).to(device)
    m = torch.randn(surv_batch, 3, 224, 224, device=device)
    a = torch.rand(surv_batch, 1, device=device)
    t = torch.randint(0, 3, (surv_batch,), device=device)
    for amp in (False, True):
        rate = train_throughput(lambda: F.cross_entropy(surv(m, a).float(), t), list(surv.parameters()), device, amp, args.steps, surv_batch)
        print(f"survival_train_slices_per_s_amp_{'on' if amp else 'off'}={rate:.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        data = make_cohort(Path(tmp) / "c", SynthConfig(volumes=2, slices=slices, size=size, seed=0))
        source = H5SliceFolder(data)
        scan = scan_source(source)
        ds = SegmentationDataset(source, list(range(len(source))), scan.stats)
        t0 = time.perf_counter()
        result = fit(
            model=Segmenter().to(device), task=SegmentationTask(), train_data=ds, val_data=ds,
            config=FitConfig(lr=1e-3, max_epochs=1, batch_size=16, max_steps_per_epoch=8, num_workers=4, amp=True),
            device=device, checkpoint_dir=Path(tmp) / "ckpt", stage="gpu",
        )
        print(f"fit_loop_amp_ok={result.epochs_run == 1} fit_loop_seconds={time.perf_counter() - t0:.1f} "
              f"fit_loop_slices_per_s={result.history[0].samples_per_s:.1f}")

        image = source.load_volume(1).image
        for precision in ("fp32", "bf16"):
            predictor = CombinedPredictor(segmenter=seg, survival=surv, device=device,
                                          config=PredictorConfig(precision=precision, batch_size=32, survival_batch_size=64))
            predictor.predict_volume(image, 60.0)  # warm-up (cudnn autotune)
            _sync(device)
            t0 = time.perf_counter()
            n = 3
            for _ in range(n):
                predictor.predict_volume(image, 60.0)
            _sync(device)
            print(f"predict_volumes_per_s_{precision}={n / (time.perf_counter() - t0):.2f}")
    if device.type == "cuda":
        print(f"max_memory_allocated_gb={torch.cuda.max_memory_allocated(device) / 2**30:.2f}")


if __name__ == "__main__":
    main()
