"""Arithmetic per case: the multiply-adds each pipeline performs, and the speed-up they allow.

    python benchmarks/bench_arithmetic.py [--data DIR] [--volumes 1,4,7,13]
                                          [--model-dir RUN | --segmenter PATH [--survival PATH]]
                                          [--repeats 2] [--targets 6,10]

A speed-up is the arithmetic saved times the rate at which the rest runs. This script
separates the two. For each case it counts the multiply-adds of the convolutions and matrix
products (torch's ``FlopCounterMode``; oneDNN's direct convolution counted as a
convolution, the Winograd convolutions' products and transforms as the matrix products they
are) of the paper pipeline (``bench_predict.paper_pipeline``) and of ours in fp32 and in
bf16, each split into the U-Net and the survival network. The counts run on one torch
thread, where our predictor does every piece of work in the counting thread; on two the
same pieces run in worker threads.

Then, with torch's default threads and glibc keeping freed memory (as
``bench_predict.py``), it times the paper pipeline and ours (best of ``--repeats``,
alternately) and measures the machine's product rate: the best of a large matrix product
and of a ResNet-50 ``layer3`` convolution (channels-last, oneDNN), per dtype. From these,
per case and dtype:

- ``arithmetic_ratio``: the paper pipeline's multiply-adds over ours;
- ``rate``: multiply-adds per second of each pipeline as timed;
- ``needed_rate``: the rate at which ours must run to be ``--targets`` times faster than
  the paper pipeline as timed (6 for fp32, 10 for bf16), and ``needed_over_peak``, that
  rate over the machine's;
- ``speedup_at_peak``: the speed-up ours would reach with every product at the machine's
  rate and nothing else taking any time, an upper bound for its arithmetic.

bf16 runs only on a CPU with native bf16. Lines are ``name=value``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from bench_predict import (
    AGE,
    DEFAULT_VOLUMES,
    REAL_DATA,
    Best,
    Case,
    models,
    paper_pipeline,
    real_cases,
    use_keep_freed_allocator,
)
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from brats_sdk import CombinedPredictor, Precision, PredictorConfig, Segmenter, SurvivalClassifier
from brats_sdk.device import cpu_has_native_bf16

_G = 1e9


def _mkldnn_conv_flop(
    x_shape: list[int], w_shape: list[int], *args: Any, out_shape: list[int] | None = None, **kwargs: Any
) -> int:
    """``aten.mkldnn_convolution`` (``OneDnnConv2d``) costs what ``aten.convolution`` does."""
    assert out_shape is not None
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


_CUSTOM = {torch.ops.aten.mkldnn_convolution: _mkldnn_conv_flop}


def count_gmac(fn: Callable[[], object]) -> dict[str, float]:
    """Multiply-adds (in G) of ``fn``: ``unet``, ``survival`` and ``total``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # our predictor's workers then run in this (counted) thread
    try:
        counter = FlopCounterMode(display=False, depth=1, custom_mapping=_CUSTOM)
        with counter:
            fn()
    finally:
        torch.set_num_threads(threads)
    per_module = counter.get_flop_counts()
    survival = sum(per_module.get(SurvivalClassifier.__name__, {}).values()) / 2 / _G
    total = counter.get_total_flops() / 2 / _G
    return {"unet": total - survival, "survival": survival, "total": total}


def peak_gmac_s(dtype: torch.dtype, repeats: int = 5) -> dict[str, float]:
    """The machine's product rate in ``dtype`` with torch's threads: a 2048^3 matrix
    product and a ResNet-50 ``layer3`` 3x3 convolution on 28 masks (channels-last)."""
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    x = torch.randn(28, 256, 14, 14).to(dtype=dtype, memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3).to(dtype=dtype, memory_format=torch.channels_last)
    jobs: dict[str, tuple[Callable[[], object], float]] = {
        "matmul": (lambda: torch.mm(a, b), 2048.0**3),
        "conv": (lambda: F.conv2d(x, w, padding=1), 28 * 256 * 14 * 14 * 256 * 9.0),
    }
    rates: dict[str, float] = {}
    with torch.inference_mode():
        for name, (job, macs) in jobs.items():
            job()
            best = Best()
            for _ in range(repeats):
                best.time(job)
            rates[name] = macs / best.seconds / _G
    return rates


def bench_case(
    case: Case,
    seg: Segmenter,
    surv: SurvivalClassifier,
    ours: dict[str, CombinedPredictor],
    peaks: dict[str, float],
    targets: dict[str, float],
    repeats: int,
    paper_counts: dict[tuple[int, ...], dict[str, float]],
) -> None:
    """Count, time and print one case (see the module). The paper pipeline's arithmetic
    depends only on the volume's shape: ``paper_counts`` keeps it per shape."""
    k, image = case.key, case.image
    if image.shape not in paper_counts:
        paper_counts[image.shape] = count_gmac(lambda: paper_pipeline(seg, surv, image, AGE))
    counts = {"paper": paper_counts[image.shape]}
    for name, predictor in ours.items():
        counts[name] = count_gmac(lambda: predictor.predict_volume(image, AGE))  # noqa: B023  # called at once
    best = {name: Best() for name in counts}
    for _ in range(repeats):
        best["paper"].time(lambda: paper_pipeline(seg, surv, image, AGE))
        for name, predictor in ours.items():
            best[name].time(lambda: predictor.predict_volume(image, AGE))  # noqa: B023  # called at once
    print(f"{k}_name={case.name}")
    t_paper = best["paper"].seconds
    for name, gmac in counts.items():
        t = best[name].seconds
        print(f"{k}_{name}_gmac_unet={gmac['unet']:.1f} {k}_{name}_gmac_survival={gmac['survival']:.1f}"
              f" {k}_{name}_gmac_total={gmac['total']:.1f} {k}_{name}_s={t:.2f} {k}_{name}_rate_gmac_s={gmac['total'] / t:.1f}")
    for name in ours:
        gmac, peak = counts[name]["total"], peaks[name]
        needed = gmac * targets[name] / t_paper
        print(f"{k}_{name}_arithmetic_ratio={counts['paper']['total'] / gmac:.2f} {k}_{name}_speedup={t_paper / best[name].seconds:.2f}"
              f" {k}_{name}_needed_rate_gmac_s_for_{targets[name]:g}x={needed:.1f} {k}_{name}_needed_over_peak={needed / peak:.2f}"
              f" {k}_{name}_speedup_at_peak={t_paper / (gmac / peak):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REAL_DATA if REAL_DATA.exists() else None,
                        help="A data folder of real cases (default: ../shared/data/real-labelled when present).")
    parser.add_argument("--volumes", default=DEFAULT_VOLUMES, help="Volumes of --data (comma-separated).")
    parser.add_argument("--model-dir", type=Path, default=None, help="A trained run.")
    parser.add_argument("--segmenter", type=Path, default=None, help="A segmenter checkpoint (instead of --model-dir).")
    parser.add_argument("--survival", type=Path, default=None,
                        help="A survival checkpoint (default: the run's, else randomly initialised, seed 0).")
    parser.add_argument("--repeats", type=int, default=2, help="Alternating timings per case (the best is kept).")
    parser.add_argument("--targets", default="6,10", help="The fp32 and bf16 speed-up targets.")
    args = parser.parse_args()
    if args.data is None:
        parser.error("no real cases: give --data")
    if args.model_dir is not None and args.segmenter is not None:
        parser.error("give --model-dir or --segmenter, not both")
    use_keep_freed_allocator()
    seg, surv, what = models(args)
    seg.eval()
    surv.eval()
    fp32_target, bf16_target = (float(t) for t in args.targets.split(","))
    ours = {"ours_fp32": CombinedPredictor(segmenter=seg, survival=surv, device="cpu")}
    targets = {"ours_fp32": fp32_target}
    dtypes = {"ours_fp32": torch.float32}
    if cpu_has_native_bf16():
        ours["ours_bf16"] = CombinedPredictor(segmenter=seg, survival=surv, device="cpu", config=PredictorConfig(precision=Precision.BF16))
        targets["ours_bf16"] = bf16_target
        dtypes["ours_bf16"] = torch.bfloat16
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"kernels {torch.backends.cpu.get_cpu_capability()}, native bf16 {cpu_has_native_bf16()}; weights: {what}")
    peaks: dict[str, float] = {}
    for name, dtype in dtypes.items():
        rates = peak_gmac_s(dtype)
        peaks[name] = max(rates.values())
        print(" ".join(f"peak_{str(dtype).removeprefix('torch.')}_{job}_gmac_s={r:.1f}" for job, r in rates.items()))
    cases = real_cases(args.data, args.volumes)
    for predictor in ours.values():  # oneDNN's kernels for the predictor's shapes
        predictor.predict_volume(cases[-1].image, AGE)
    paper_pipeline(seg, surv, cases[0].image[:50], AGE)
    paper_counts: dict[tuple[int, ...], dict[str, float]] = {}
    for case in cases:
        bench_case(case, seg, surv, ours, peaks, targets, max(1, args.repeats), paper_counts)


if __name__ == "__main__":
    main()
