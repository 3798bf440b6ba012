"""Winograd against the direct convolution, per layer shape of the two networks, same run.

    python benchmarks/bench_winograd.py [--threads 1] [--repeats 5]

For each 3x3 'same' convolution shape that prediction runs (the U-Net's encoder and coarse
decoder on a batch of 8 brain crops of 192 x 224, ResNet-50's layer2 to layer4 on a chunk
of 13 tumour masks and on one tumour window), the best of ``--repeats`` timings of
oneDNN's direct convolution (channels-last, float32, as the predictor runs it) and of
:class:`~brats_sdk.predict.accel.winograd.WinogradConv2d`'s computation at the tile size it picks, and
the largest difference from a float64 reference relative to the output's largest value.
The predictor swaps only layers with ``MIN_CHANNELS`` (128) channels or more; the 64- and
32-channel rows show why. One worker runs on one torch thread, so ``--threads 1`` is the
default. Lines are ``name=value``; the last is ``winograd_speedup_min_swapped=<smallest
ratio among the swapped shapes>``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brats_sdk.predict.accel.winograd import (
    supports_winograd,
    tile_size,
    transform_kernel,
    winograd_conv,
)

# (N, C, H, W, K) and where the shape runs.
SHAPES = [
    (8, 32, 96, 112, 32, "U-Net decoder block 3 (narrow: kept direct)"),
    (8, 64, 48, 56, 64, "U-Net encoder layer1 (narrow: kept direct)"),
    (8, 128, 24, 28, 128, "U-Net encoder layer2, decoder block 1"),
    (8, 256, 12, 14, 256, "U-Net encoder layer3, decoder block 0"),
    (8, 512, 6, 7, 512, "U-Net encoder layer4"),
    (1, 128, 20, 20, 128, "ResNet-50 layer2 on one tumour window"),
    (13, 256, 14, 14, 256, "ResNet-50 layer3"),
    (13, 512, 7, 7, 512, "ResNet-50 layer4"),
]


def _best(fn: Callable[[Tensor], Tensor], x: Tensor, repeats: int) -> float:
    with torch.inference_mode():
        fn(x)
        fn(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a prediction worker has one).")
    parser.add_argument("--repeats", type=int, default=5, help="Timings per shape and method (the best is kept).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"machine: torch {torch.__version__}, threads {torch.get_num_threads()}, kernels {torch.backends.cpu.get_cpu_capability()}")
    ratios = []
    for n, c, h, w, k, where in SHAPES:
        conv = nn.Conv2d(c, k, 3, padding=1).to(memory_format=torch.channels_last)
        x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
        m = tile_size(h, w)
        kernel = transform_kernel(conv.weight, m)  # what WinogradConv2d caches

        def wino(x: Tensor, kernel: Tensor = kernel, conv: nn.Conv2d = conv, m: int = m) -> Tensor:
            return winograd_conv(x, kernel, conv.bias, m)

        t_direct, t_wino = _best(conv, x, args.repeats), _best(wino, x, args.repeats)
        with torch.inference_mode():
            exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double() if conv.bias is not None else None, padding=1)
            top = float(exact.abs().max())
            err_direct = float((conv(x).double() - exact).abs().max()) / top
            err_wino = float((wino(x).double() - exact).abs().max()) / top
        swapped = supports_winograd(conv)
        key = f"{n}x{c}x{h}x{w}_to_{k}"
        print(f"{key}_where={where.replace(' ', '_')} {key}_swapped={swapped} {key}_tile={m}")
        print(f"{key}_direct_ms={1e3 * t_direct:.2f} {key}_winograd_ms={1e3 * t_wino:.2f} {key}_speedup={t_direct / t_wino:.2f}"
              f" {key}_rel_err_direct={err_direct:.1e} {key}_rel_err_winograd={err_wino:.1e}")
        if swapped:
            ratios.append(t_direct / t_wino)
    print(f"winograd_speedup_min_swapped={min(ratios):.2f}")


if __name__ == "__main__":
    main()
