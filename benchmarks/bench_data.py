"""Slices per second of the training DataLoader: Kaggle per-slice h5 layout vs packed layout.

Data, in order of precedence: ``--data`` (an existing Kaggle-layout folder), ``--real``
(a folder of labelled BraTS NIfTI cases, by default ``../shared/data/real-labelled``
beside the repository when it exists; ``--synthetic`` skips it), else a synthetic
cohort. Real cases are converted to the per-slice layout with
:func:`brats_sdk.data.convert.convert_nifti_to_h5` (uncompressed, as the Kaggle release
is) into a temporary folder: that is the baseline. The script packs the baseline with
:func:`brats_sdk.data.packed_writer.pack_folder` (``--dtype``), and for each worker count times training's
loader (:func:`brats_sdk.training.batches.make_loader`, a torch DataLoader whose workers
write batches into reused shared memory) over
:class:`~brats_sdk.data.datasets.SegmentationDataset` on both layouts, in the same
shuffled slice order. It also times the same with torch's own collate and transfer
(``torch_collate_``, what training used before) and over the bare reader
(``read_slice`` only, no normalisation), which is the part the layout changes.

Each figure is the best of ``--repeats`` runs, the two layouts measured alternately
so that load from other processes hits both alike. A run stops after ``--seconds``
seconds or ``--max-batches`` batches; the first batch (worker start-up) is not timed.
By default files come from the page cache (the cohort was just written): the
per-file cost measured is the open, the float64 read and conversion and the
validation. ``--cold`` drops both layouts' files from the page cache before each
measurement, as when the release (105 GB of per-slice files) does not fit in memory.

It ends with the rate of a dataset that reads nothing (``transfer_ceiling``, and
``torch_collate_transfer_ceiling`` for torch's transfer): with worker processes, moving
each sample between processes alone caps what any layout can reach.

Output, one line per figure::

    packed_mb_per_volume min=... mean=... max=...
    per_slice_h5 workers=0 slices_per_s=...
    packed workers=0 slices_per_s=...
    ratio workers=0 =...
    ...
    speedup_packed_vs_per_slice=<min training ratio over worker counts>

The main process runs with one torch thread (``--torch-threads``), as DataLoader
workers do: with two OpenMP threads on a busy 2-core machine, ``torch.stack`` in the
collate of ``workers=0`` took 200 ms per batch instead of 2 ms.

Run: ``python benchmarks/bench_data.py`` (the real cases when present, else 20 synthetic
volumes x 155 slices x 240^2; batch 16, workers 0,1,2; under 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from brats_sdk.data.convert import convert_nifti_to_h5
from brats_sdk.data.datasets import SegmentationDataset
from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.packed import PackedFolder
from brats_sdk.data.packed_writer import pack_folder
from brats_sdk.data.protocols import SliceSource
from brats_sdk.data.scan import scan_source
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.training.batches import make_loader

Sample = dict[str, torch.Tensor]

REAL_LABELLED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-labelled"
"""Real labelled BraTS cases beside the repository (development machines and CI only)."""


class ReadOnlyDataset(Dataset[Sample]):
    """The bare reader: ``read_slice`` as tensors, without normalisation or targets."""

    def __init__(self, source: SliceSource, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        rec = self.source.read_slice(self.indices[i])
        if rec.mask is None:
            raise RuntimeError(
                f"volume {rec.volume} has no masks; the benchmark needs a labelled cohort"
            )
        return {"image": torch.from_numpy(rec.image), "mask": torch.from_numpy(rec.mask)}


class ConstantDataset(Dataset[Sample]):
    """Samples shaped like training's, made without reading anything: its rate with
    workers is what moving samples between processes alone allows (the ceiling no layout
    can pass)."""

    def __init__(self, like: Sample, n: int) -> None:
        self.like = like
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        return {k: v.clone() for k, v in self.like.items()}


def measure(
    ds: Dataset[Sample], *, workers: int, batch_size: int, seconds: float, max_batches: int, ring: bool = True
) -> float:
    """Slices per second of one pass of training's loader (``make_loader``; ``ring``
    False: torch's own collate and transfer), from the end of the first batch."""
    loader = make_loader(ds, batch_size=batch_size, num_workers=workers, shared_ring=ring)
    it = iter(loader)
    next(it)  # worker start-up and first fetch are not timed
    n = 0
    t0 = time.perf_counter()
    for batches, batch in enumerate(it, start=1):
        n += int(next(iter(batch.values())).shape[0])
        if time.perf_counter() - t0 >= seconds or batches >= max_batches:
            break
    dt = time.perf_counter() - t0
    del it  # shuts the workers down
    return n / dt if dt > 0 else float("nan")


def evict_page_cache(paths: Sequence[Path]) -> None:
    """Drop the page-cache pages of ``paths`` (Linux ``posix_fadvise``; no root needed)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _dir_bytes(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--volumes", type=int, default=20)
    p.add_argument("--slices", type=int, default=155)
    p.add_argument("--size", type=int, default=240)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    p.add_argument("--seconds", type=float, default=3.0, help="time limit of one measurement")
    p.add_argument("--max-batches", type=int, default=10_000, help="batch limit of one measurement")
    p.add_argument("--repeats", type=int, default=2, help="runs per figure (the best counts)")
    p.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="packed image dtype"
    )
    p.add_argument(
        "--data", type=Path, default=None, help="existing Kaggle-layout folder (skips synthesis)"
    )
    p.add_argument(
        "--real",
        type=Path,
        default=REAL_LABELLED if REAL_LABELLED.is_dir() else None,
        help="folder of labelled BraTS NIfTI cases, converted to the per-slice layout as the "
        f"baseline (default: {REAL_LABELLED} when it exists)",
    )
    p.add_argument(
        "--synthetic", action="store_true", help="use a synthetic cohort even where --real has a default"
    )
    p.add_argument("--no-read-only", action="store_true", help="skip the bare-reader figures")
    p.add_argument(
        "--no-torch-collate", action="store_true", help="skip the figures with torch's own collate and transfer"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cold",
        action="store_true",
        help="drop both layouts' files from the page cache before each measurement (Linux)",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="intra-op threads of the main process (workers always use 1); on a small, busy "
        "machine more than 1 makes the collate of workers=0 spin on OpenMP barriers",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    t_start = time.perf_counter()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"# machine: {os.cpu_count()} CPUs, torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, load average {load}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="brats_bench_data_"))
    try:
        t0 = time.perf_counter()
        if args.data is not None:
            data = args.data
            print(f"# data: {data}")
        elif args.real is not None and not args.synthetic:
            data = convert_nifti_to_h5(args.real, tmp / "kaggle", compress=False)
            print(
                f"# data: real cases of {args.real}, converted to uncompressed per-slice h5 "
                f"in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        else:
            data = make_cohort(
                tmp / "kaggle",
                SynthConfig(volumes=args.volumes, slices=args.slices, size=args.size),
            )
            print(
                f"# data: synthetic cohort {args.volumes}x{args.slices}x{args.size}^2 in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        per_slice = H5SliceFolder(data)
        t0 = time.perf_counter()
        result = pack_folder(per_slice, tmp / "packed", image_dtype=args.dtype)
        if not result.ok:
            print(f"# pack failed: {result.failed}", file=sys.stderr)
            return 2
        packed = PackedFolder(tmp / "packed")
        print(
            f"# packed {len(result.packed)} volumes ({args.dtype}) in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        n_vol = len(per_slice.volumes())
        src_bytes = _dir_bytes(
            [f for v in per_slice.volumes() for f in per_slice.volume_files(v.volume)]
        )
        sizes = [packed.volume_path(v.volume).stat().st_size / 1e6 for v in packed.volumes()]
        print(
            f"# {len(per_slice)} slices in {n_vol} volumes; per-slice files {src_bytes / 1e9:.2f} GB, "
            f"packed {sum(sizes) / 1e3:.2f} GB"
        )
        print(
            f"packed_mb_per_volume min={min(sizes):.1f} mean={sum(sizes) / len(sizes):.1f} max={max(sizes):.1f}"
        )
        keys = [per_slice.slice_key(i) for i in range(len(per_slice))]
        if keys != [packed.slice_key(i) for i in range(len(packed))]:
            print("# the layouts list different slices", file=sys.stderr)
            return 1
        t0 = time.perf_counter()
        stats = scan_source(per_slice).stats
        print(
            f"# normalisation statistics (scan_source) in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

        order = np.random.default_rng(args.seed).permutation(len(per_slice)).tolist()
        sources: dict[str, SliceSource] = {"per_slice_h5": per_slice, "packed": packed}
        train = {name: SegmentationDataset(src, order, stats) for name, src in sources.items()}
        # Same samples from both layouts: bit-identical for float32 packing; for float16 the
        # same targets and images within float16 rounding (tests/test_packed.py bounds it).
        largest = 0.0
        checked = range(0, len(order), max(1, len(order) // 16))
        for i in checked:
            a, b = train["per_slice_h5"][i], train["packed"][i]
            exact = args.dtype == "float32"
            same = all(torch.equal(a[k], b[k]) for k in a if exact or k != "image")
            largest = max(largest, float((a["image"] - b["image"]).abs().max()))
            if not same:
                print(f"# sample {i} differs between layouts", file=sys.stderr)
                return 1
        print(f"# largest input difference between layouts ({len(checked)} samples): {largest:.3g}")
        # (prefix, datasets, shared ring): the first is what training iterates.
        modes: list[tuple[str, dict[str, Dataset[Sample]], bool]] = [("", dict(train), True)]
        if not args.no_torch_collate:
            modes.append(("torch_collate_", dict(train), False))
        if not args.no_read_only:
            modes.append(
                ("read_only_", {name: ReadOnlyDataset(src, order) for name, src in sources.items()}, True)
            )

        all_files = [f for v in per_slice.volumes() for f in per_slice.volume_files(v.volume)]
        all_files += [packed.volume_path(v.volume) for v in packed.volumes()]
        if args.cold:
            print("# cold: page cache dropped before each measurement")
        ratios: list[float] = []
        for prefix, datasets, ring in modes:
            for w in workers:
                best = dict.fromkeys(datasets, 0.0)
                for _ in range(args.repeats):
                    for name, ds in datasets.items():
                        if args.cold:
                            evict_page_cache(all_files)
                        rate = measure(
                            ds,
                            workers=w,
                            batch_size=args.batch_size,
                            seconds=args.seconds,
                            max_batches=args.max_batches,
                            ring=ring,
                        )
                        best[name] = max(best[name], rate)
                for name, rate in best.items():
                    print(f"{prefix}{name} workers={w} slices_per_s={rate:.1f}", flush=True)
                ratio = best["packed"] / best["per_slice_h5"]
                print(f"{prefix}ratio workers={w} ={ratio:.2f}", flush=True)
                if not prefix:
                    ratios.append(ratio)
        constant = ConstantDataset(train["packed"][0], len(order))
        for w in workers:
            for ring, name in ((True, "transfer_ceiling"), (False, "torch_collate_transfer_ceiling")):
                rate = max(
                    measure(constant, workers=w, batch_size=args.batch_size, seconds=args.seconds,
                            max_batches=args.max_batches, ring=ring)
                    for _ in range(args.repeats)
                )
                print(f"{name} workers={w} slices_per_s={rate:.1f}", flush=True)
        print(f"# total {time.perf_counter() - t_start:.0f} s")
        print(f"speedup_packed_vs_per_slice={min(ratios):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
