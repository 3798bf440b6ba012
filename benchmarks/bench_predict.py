"""Prediction speed: CombinedPredictor against the paper's pipeline, same weights, same run.

    python benchmarks/bench_predict.py [--data DIR] [--volumes 1,4,7,13]
                                       [--model-dir RUN | --segmenter PATH [--survival PATH]]
                                       [--repeats 1] [--synthetic] [--margins 0,8]
                                       [--rss-volumes 10] [--paper-channels-last] [--threads N]
                                       [--onnx] [--tta]

The baseline (`paper_pipeline` below, not in the library) does what the paper did: every
one of the 155 slices resized to 256x256, the U-Net in batches of 50 in fp32, every mask
resized to 224 and passed to ResNet-50, then the empty-mask filter and the vote.

By default the volumes are the real cases 1, 4, 7 and 13 of ../shared/data/real-labelled
(BraTS 2018 cases the project's real-data runs hold out). Weights: a trained run
(`--model-dir`), or a segmenter checkpoint (`--segmenter`) with a survival checkpoint
(`--survival`) or, as BraTS 2018 has no survival table, a randomly initialised survival
network (seed 0: its cost depends only on how many slices hold predicted tumour). Without
weights, randomly initialised networks: they mark tumour on every brain slice, ours' worst
case, not what a trained segmenter does.

Figures, one `name=value` per line, per case (the paper pipeline, ours in fp32 and ours in
bf16 timed alternately, `--repeats` times, the best of each kept; ours after another
volume, as in `brats predict` over a folder: a process's first volume also pays oneDNN's
kernel builds for its new shapes): the times and the speed-ups; the labels that our
shortcuts (slices skipped, brain crops) change against our own full-slice run, as a share
of the case's brain voxels, and those they change with crops padded with zeros instead of
background (`crop_padding="zeros"`); the labels bf16 changes; the volume's bin from each pipeline.
bf16 runs only on a CPU with native bf16 (else a `bf16=skipped` line). On the first case,
what the inference rewrites of the networks (folded BatchNorm, fused upsampling, survival
tumour windows, Winograd and oneDNN convolutions) change against the networks as trained. Then the smallest and median
speed-ups over the cases; with `--margins`, the time and changed labels of other crop
margins; with `--paper-channels-last`, the paper pipeline with channels-last weights (how
much that one change of ours gives on its own); the peak RSS of `brats predict` after 1
and after N volumes. With `--onnx`, the same weights also go through `brats export` (fp32)
and the export's ONNX Runtime pipeline (CPU provider) is timed in the same alternation,
with its labels against ours (share of brain voxels) and its bin. With `--tta`, ours with
`tta="flips"` (fp32, and bf16 where native) is timed in the same alternation, with the
labels TTA changes (share of brain voxels), and the peak-RSS figure is taken again with
`--tta flips --save-masks --save-probabilities --save-uncertainty`; its last line is
`speedup_tta_vs_paper_pipeline=<smallest fp32 speed-up of flips>`. The last line is
`speedup_vs_paper_pipeline=<smallest fp32 speed-up>`.

Memory: by default both pipelines run with glibc's allocator keeping freed memory for
reuse (`GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=...`, set by
re-running the script). The paper pipeline's batches of 50 whole slices allocate tensors
of hundreds of MB; with glibc's defaults each goes back to the kernel when freed and the
next is mapped and zeroed afresh in 4 KB pages, millions of page faults a volume: a cost
of the allocator and of the machine's page settings, not of the method, and one a user
of either pipeline avoids with that setting. `--allocator system` measures with the
defaults. Each timed pipeline's minor page faults and kernel time (of its fastest run)
are printed with its time. The peak-RSS runs of `brats predict` use the defaults, as users
run it.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from brats_sdk import (
    TTA,
    AgeScaler,
    CombinedPredictor,
    CropPadding,
    H5SliceFolder,
    Precision,
    PredictorConfig,
    Segmenter,
    SurvivalBins,
    SurvivalClassifier,
    SynthConfig,
    make_cohort,
)
from brats_sdk.data.normalise import brain_mask, normalise_volume
from brats_sdk.data.sources import open_source
from brats_sdk.device import cpu_has_native_bf16
from brats_sdk.labels import classes_to_labels, classes_to_one_hot
from brats_sdk.metrics.survival import majority_vote
from brats_sdk.models.survival import prepare_masks
from brats_sdk.predict.results import VolumePrediction

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-labelled"
DEFAULT_VOLUMES = "1,4,7,13"
AGE = 60.0
# glibc reads its tunables at process start: hence set by re-running the script. No mmap
# for large blocks (they come from the heap) and no trimming below 64 GiB: freed memory
# stays mapped for the next allocation.
_TUNABLES = "GLIBC_TUNABLES"
_KEEP_FREED = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"

_R = TypeVar("_R")


def paper_pipeline(
    seg: Segmenter, surv: SurvivalClassifier, image: npt.NDArray[np.float32], age: float
) -> tuple[npt.NDArray[np.uint8], int | None]:
    """The paper's inference: resize to 256, U-Net on all slices in batches of 50, masks
    to 224, ResNet-50 on every slice, drop empty masks, majority vote.

    Returns labels (D, H, W) in BraTS labels (argmax of the logits resized back to H x W)
    and the volume's bin (None when every mask is empty).
    """
    d, _, h, w = image.shape
    normed = torch.from_numpy(normalise_volume(image, seg.config.normalisation))
    if surv.age_scaler is None:
        raise SystemExit("the survival model has no age scaling")
    classes_256: list[torch.Tensor] = []
    classes_full: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, d, 50):
            x = F.interpolate(normed[start : start + 50], size=(256, 256), mode="bilinear", align_corners=False)
            logits = seg.unet(x)
            classes_256.append(logits.argmax(1))
            back = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            classes_full.append(back.argmax(1))
        c256 = torch.cat(classes_256)
        probs: list[torch.Tensor] = []
        age_t = torch.full((1, 1), surv.age_scaler.transform(age))
        for start in range(0, d, 50):
            one_hot = torch.from_numpy(classes_to_one_hot(c256[start : start + 50].numpy().astype(np.uint8)))
            x = prepare_masks(one_hot)
            probs.append(torch.softmax(surv(x, age_t.expand(x.shape[0], 1)), 1))
        p = torch.cat(probs).double().numpy()
    nonempty = c256.reshape(d, -1).any(1).numpy()
    labels = classes_to_labels(torch.cat(classes_full).numpy().astype(np.uint8))
    return labels, (majority_vote(p[nonempty])[0] if nonempty.any() else None)


@dataclass(frozen=True)
class Case:
    """One benchmarked volume."""

    key: str
    name: str
    image: npt.NDArray[np.float32]


@dataclass
class CaseResult:
    """What the summary needs of one case."""

    speedup_fp32: float
    speedup_bf16: float | None
    changed_share: float
    speedup_onnx: float | None = None
    speedup_tta: float | None = None


def use_keep_freed_allocator() -> None:
    """Re-run this script with glibc keeping freed memory for reuse (see the module), unless
    it already does: glibc reads its tunables only at process start."""
    tunables = os.environ.get(_TUNABLES, "")
    if _KEEP_FREED not in tunables:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, _TUNABLES: ":".join(filter(None, (tunables, _KEEP_FREED)))})


def real_cases(data: Path, volumes: str) -> list[Case]:
    """The volumes ``volumes`` (comma-separated numbers) of the data folder ``data``."""
    wanted = [int(v) for v in volumes.split(",") if v.strip()]
    source = open_source(data, volumes=wanted, require_mask=False)
    return [Case(f"case{info.volume}", info.name, source.load_volume(info.volume).image) for info in source.volumes()]


def _random_survival() -> SurvivalClassifier:
    torch.manual_seed(0)
    return SurvivalClassifier(bins=SurvivalBins.brats(), age_scaler=AgeScaler(20.0, 85.0))


def models(args: argparse.Namespace) -> tuple[Segmenter, SurvivalClassifier, str]:
    model_dir: Path | None = args.model_dir
    if model_dir is None and args.segmenter is None:
        demo = Path(__file__).resolve().parents[1] / "demo_run" / "run"
        model_dir = demo if (demo / "segmenter.pt").exists() else None
    seg_path = model_dir / "segmenter.pt" if model_dir is not None else args.segmenter
    surv_path = args.survival or (model_dir / "survival.pt" if model_dir is not None else None)
    if seg_path is None:
        torch.manual_seed(0)
        return Segmenter(), _random_survival(), "random initialisation"
    seg = Segmenter.from_checkpoint(seg_path)
    if surv_path is not None and surv_path.exists():
        return seg, SurvivalClassifier.from_checkpoint(surv_path), f"segmenter {seg_path}, survival {surv_path}"
    return seg, _random_survival(), f"segmenter {seg_path}, survival randomly initialised (seed 0)"


@dataclass
class Best:
    """The fastest of a pipeline's timed runs: its seconds, and the minor page faults and
    kernel (system) seconds the process spent during it."""

    seconds: float = float("inf")
    page_faults: int = 0
    kernel_s: float = 0.0

    def time(self, fn: Callable[[], _R]) -> _R:
        """Run ``fn`` once; keep its figures if it is the fastest so far."""
        before = resource.getrusage(resource.RUSAGE_SELF)
        seconds, out = _timed(fn)
        after = resource.getrusage(resource.RUSAGE_SELF)
        if seconds < self.seconds:
            self.seconds = seconds
            self.page_faults = after.ru_minflt - before.ru_minflt
            self.kernel_s = after.ru_stime - before.ru_stime
        return out

    def memory(self, name: str) -> str:
        """``<name>_page_faults=... <name>_kernel_s=...``."""
        return f"{name}_page_faults={self.page_faults} {name}_kernel_s={self.kernel_s:.2f}"


def _timed(fn: Callable[[], _R]) -> tuple[float, _R]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _pct(count: int, brain_voxels: int) -> str:
    return f"{100.0 * count / max(brain_voxels, 1):.4f}"


def bench_case(
    case: Case,
    seg: Segmenter,
    surv: SurvivalClassifier,
    ours: CombinedPredictor,
    ours_bf16: CombinedPredictor | None,
    *,
    repeats: int,
    as_trained: bool,
    margins: Sequence[int],
    ours_onnx: CombinedPredictor | None = None,
    ours_tta: Sequence[CombinedPredictor] = (),
) -> CaseResult:
    """Time the paper pipeline, ours and ours in bf16 on one case, alternately, and compare
    the labels with our own full-slice run."""
    k, image = case.key, case.image
    brain = brain_mask(image)
    n_brain = int(brain.sum())
    print(f"{k}_name={case.name} {k}_slices={image.shape[0]} {k}_brain_slices={int(brain.any(axis=(1, 2)).sum())}"
          f" {k}_brain_voxels={n_brain}")
    paper, fp32, bf16, onnx = Best(), Best(), Best(), Best()
    res: VolumePrediction | None = None
    res_bf16: VolumePrediction | None = None
    res_onnx: VolumePrediction | None = None
    base_bin: int | None = None
    tta = [Best() for _ in ours_tta]
    res_tta: list[VolumePrediction | None] = [None] * len(ours_tta)
    for _ in range(repeats):
        _, base_bin = paper.time(lambda: paper_pipeline(seg, surv, image, AGE))
        res = fp32.time(lambda: ours.predict_volume(image, AGE))
        if ours_bf16 is not None:
            res_bf16 = bf16.time(lambda: ours_bf16.predict_volume(image, AGE))
        if ours_onnx is not None:
            res_onnx = onnx.time(lambda: ours_onnx.predict_volume(image, AGE))
        for j, p in enumerate(ours_tta):
            res_tta[j] = tta[j].time(lambda: p.predict_volume(image, AGE))  # noqa: B023  # called at once
    assert res is not None  # repeats >= 1
    t_paper, t_ours, t_bf16, t_onnx = paper.seconds, fp32.seconds, bf16.seconds, onnx.seconds
    full_cfg = PredictorConfig(skip_empty_slices=False, crop_to_brain=False)
    full = CombinedPredictor(segmenter=seg, survival=surv, device="cpu", config=full_cfg).predict_volume(image, AGE)
    changed = res.labels != full.labels
    inside, outside = int((changed & brain).sum()), int((changed & ~brain).sum())
    print(f"{k}_paper_pipeline_s={t_paper:.2f} {paper.memory(f'{k}_paper_pipeline')}")
    print(f"{k}_ours_fp32_s={t_ours:.2f} {k}_speedup_fp32={t_paper / t_ours:.2f} {fp32.memory(f'{k}_ours_fp32')}")
    if res_bf16 is not None:
        print(f"{k}_ours_bf16_s={t_bf16:.2f} {k}_speedup_bf16={t_paper / t_bf16:.2f} {k}_bf16_vs_fp32={t_ours / t_bf16:.2f}"
              f" {bf16.memory(f'{k}_ours_bf16')}")
    else:
        print(f"{k}_bf16=skipped (no native bf16 on this CPU)")
    if res_onnx is not None:
        differ = int((res_onnx.labels[brain] != res.labels[brain]).sum())
        print(f"{k}_onnxruntime_fp32_s={t_onnx:.2f} {k}_speedup_onnx={t_paper / t_onnx:.2f} {k}_ours_vs_onnx={t_onnx / t_ours:.2f}")
        print(f"{k}_labels_differ_onnx_vs_ours={differ} {k}_labels_agree_onnx_vs_ours_pct_of_brain={100 - float(_pct(differ, n_brain)):.4f}"
              f" {k}_bin_onnx={res_onnx.predicted_bin}")
    for p, t, r in zip(ours_tta, (b.seconds for b in tta), res_tta, strict=True):
        prec = p.config.precision.value
        base = res if prec == "fp32" else res_bf16
        tta_differ = "" if base is None or r is None else (
            f" {k}_labels_changed_tta_vs_none_{prec}_pct_of_brain={_pct(int((r.labels != base.labels).sum()), n_brain)}")
        ref = t_ours if prec == "fp32" else t_bf16
        print(f"{k}_ours_tta_flips_{prec}_s={t:.2f} {k}_speedup_tta_{prec}={t_paper / t:.2f} {k}_tta_vs_none_{prec}={t / ref:.2f}{tta_differ}")
    print(f"{k}_survival_slices_ours={res.slices_used} {k}_survival_slices_full={full.slices_used}")
    print(f"{k}_labels_changed_by_shortcuts={inside + outside} {k}_labels_changed_by_shortcuts_pct_of_brain={_pct(inside + outside, n_brain)}"
          f" {k}_of_them_outside_brain={outside}")
    zero_cfg = PredictorConfig(crop_padding=CropPadding.ZEROS)
    zero = CombinedPredictor(segmenter=seg, survival=surv, device="cpu", config=zero_cfg).predict_volume(image, AGE)
    zero_changed = int((zero.labels != full.labels).sum())
    print(f"{k}_labels_changed_by_shortcuts_zero_crop_padding={zero_changed}"
          f" {k}_labels_changed_by_shortcuts_zero_crop_padding_pct_of_brain={_pct(zero_changed, n_brain)}")
    if res_bf16 is not None:
        bf16_vs_fp32 = int((res_bf16.labels != res.labels).sum())
        bf16_vs_full = int((res_bf16.labels != full.labels).sum())
        print(f"{k}_labels_changed_bf16_vs_fp32={bf16_vs_fp32} {k}_labels_changed_bf16_vs_fp32_pct_of_brain={_pct(bf16_vs_fp32, n_brain)}"
              f" {k}_labels_changed_bf16_vs_full_slices_pct_of_brain={_pct(bf16_vs_full, n_brain)}")
    bins = f"{k}_bin_paper={base_bin} {k}_bin_ours={res.predicted_bin} {k}_bin_full_slices={full.predicted_bin}"
    if res_bf16 is not None:
        bins += f" {k}_bin_bf16={res_bf16.predicted_bin}"
    same = base_bin == res.predicted_bin == full.predicted_bin and (res_bf16 is None or res_bf16.predicted_bin == base_bin)
    print(f"{bins} {k}_bins_agree={same}")
    if as_trained:
        # No folded BatchNorm, no fused upsampling, no tumour windows, no Winograd or oneDNN
        # swaps: the networks as trained, on full slices (once: the check is the same on
        # every case).
        plain_cfg = PredictorConfig(skip_empty_slices=False, crop_to_brain=False, fold_batchnorm=False,
                                    fuse_upsampling=False, tumour_windows=False, fast_convolutions=False)
        t_plain, plain = _timed(lambda: CombinedPredictor(segmenter=seg, survival=surv, device="cpu",
                                                          config=plain_cfg).predict_volume(image, AGE))
        print(f"{k}_ours_full_slices_plain_networks_s={t_plain:.2f}")
        print(f"{k}_labels_differ_fused_vs_plain_networks={int((full.labels != plain.labels).sum())}")
        if full.slice_probs.shape == plain.slice_probs.shape and full.slice_probs.size:
            print(f"{k}_survival_probs_max_diff_fused_vs_plain={float(abs(full.slice_probs - plain.slice_probs).max()):.2e}")
    for margin in margins:
        other = CombinedPredictor(segmenter=seg, survival=surv, device="cpu", config=PredictorConfig(crop_margin=margin))
        other.predict_volume(image, AGE)  # its new crop shapes' kernels
        t_m, res_m = _timed(lambda: other.predict_volume(image, AGE))  # noqa: B023  # called at once
        differ = int((res_m.labels != full.labels).sum())
        print(f"{k}_crop_margin_{margin}_s={t_m:.2f} {k}_crop_margin_{margin}_labels_changed_pct_of_brain={_pct(differ, n_brain)}")
    return CaseResult(
        speedup_fp32=t_paper / t_ours,
        speedup_bf16=t_paper / t_bf16 if res_bf16 is not None else None,
        changed_share=(inside + outside) / max(n_brain, 1),
        speedup_onnx=t_paper / t_onnx if res_onnx is not None else None,
        speedup_tta=t_paper / tta[0].seconds if ours_tta else None,
    )


def peak_rss_mb(data: Path, model_dir: Path, n: int, workdir: Path, extra: Sequence[str] = ()) -> tuple[float, float]:
    """Peak RSS of one `brats predict` process (with the ``extra`` options) after its first
    volume and after n volumes."""
    out = workdir / f"pred_{n}_{len(extra)}"
    volumes = ",".join(str(v) for v in range(1, n + 1))
    # VmHWM (not ru_maxrss): ru_maxrss survives fork+exec, so the child would report
    # this benchmark's own peak; VmHWM belongs to the new process image alone. It is read
    # after each volume by wrapping predict_volume; the CLI runs as it always does.
    code = (
        "from brats_sdk.predict.predictor import CombinedPredictor\n"
        "from cli.main import cli\n"
        "def hwm():\n"
        "    return [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "plain = CombinedPredictor.predict_volume\n"
        "def traced(self, *a, **k):\n"
        "    result = plain(self, *a, **k)\n"
        "    print('RSS_KB', hwm(), flush=True)\n"
        "    return result\n"
        "CombinedPredictor.predict_volume = traced\n"
        f"cli(['predict', {str(data)!r}, '--model-dir', {str(model_dir)!r}, '--out', {str(out)!r},"
        f" '--volumes', {volumes!r}, '--device', 'cpu', '--quiet', *{list(extra)!r}], standalone_mode=False)\n"
    )
    env = {**_without_keep_freed(dict(os.environ)), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    peaks = [int(ln.split()[1]) / 1024 for ln in res.stdout.splitlines() if ln.startswith("RSS_KB")]
    if res.returncode != 0 or len(peaks) != n:
        raise RuntimeError(f"brats predict failed: {res.stderr[-2000:]}")
    return peaks[0], peaks[-1]


def _onnx_predictor(seg: Segmenter, surv: SurvivalClassifier, work: Path) -> CombinedPredictor:
    """The weights through `brats export` (fp32), predicting with ONNX Runtime's CPU provider."""
    from brats_sdk.export.write import export_run

    run = work / "onnx_run"
    run.mkdir()
    seg.save(run / "segmenter.pt")
    surv.save(run / "survival.pt")
    t, result = _timed(lambda: export_run(run, work / "onnx_export"))
    print(f"onnx_export_s={t:.1f} onnx_export_label_agreement={result.manifest.parity and result.manifest.parity['label_agreement']}")
    return CombinedPredictor.from_export(work / "onnx_export", providers=["CPUExecutionProvider"])


def _summary(results: Sequence[CaseResult]) -> None:
    fp32 = [r.speedup_fp32 for r in results]
    print(f"speedup_fp32_min={min(fp32):.2f} speedup_fp32_median={statistics.median(fp32):.2f}")
    bf16 = [r.speedup_bf16 for r in results if r.speedup_bf16 is not None]
    if bf16:
        print(f"speedup_bf16_min={min(bf16):.2f} speedup_bf16_median={statistics.median(bf16):.2f}")
    onnx = [r.speedup_onnx for r in results if r.speedup_onnx is not None]
    if onnx:
        print(f"speedup_onnx_min={min(onnx):.2f} speedup_onnx_median={statistics.median(onnx):.2f}")
    print(f"labels_changed_by_shortcuts_max_pct_of_brain={100.0 * max(r.changed_share for r in results):.4f}")


def _without_keep_freed(env: dict[str, str]) -> dict[str, str]:
    """``env`` with glibc's tunables as they were before this script added its own."""
    rest = ":".join(t for t in env.get(_TUNABLES, "").split(":") if t and t not in _KEEP_FREED.split(":"))
    out = {k: v for k, v in env.items() if k != _TUNABLES}
    return {**out, _TUNABLES: rest} if rest else out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REAL_DATA if REAL_DATA.exists() else None,
                        help="A data folder of real cases (default: ../shared/data/real-labelled when present).")
    parser.add_argument("--volumes", default=DEFAULT_VOLUMES, help="Volumes of --data to time (comma-separated).")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="A trained run (default: demo_run/run when `make demo` made it, else random weights).")
    parser.add_argument("--segmenter", type=Path, default=None, help="A segmenter checkpoint (instead of --model-dir).")
    parser.add_argument("--survival", type=Path, default=None,
                        help="A survival checkpoint (default: the run's, else randomly initialised, seed 0).")
    parser.add_argument("--repeats", type=int, default=1, help="Alternating timings per case (the best is kept).")
    parser.add_argument("--synthetic", action="store_true", help="Also time a synthetic volume.")
    parser.add_argument("--rss-volumes", type=int, default=10, help="Volumes for the peak-RSS figure (0: skip).")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--skip-speed", action="store_true", help="Only the peak-RSS figures.")
    parser.add_argument("--margins", default="", help="Also time these crop margins, e.g. 0,8 (comma-separated).")
    parser.add_argument("--paper-channels-last", action="store_true",
                        help="Also time the paper pipeline with channels-last weights (first case).")
    parser.add_argument("--tta", action="store_true", help="Also time tta='flips' and its peak RSS with maps saved.")
    parser.add_argument("--onnx", action="store_true",
                        help="Also time the weights exported with `brats export` through ONNX Runtime (CPU, fp32).")
    parser.add_argument("--allocator", choices=("keep-freed", "system"), default="keep-freed",
                        help="glibc keeps freed memory for reuse (default), or its defaults (see above).")
    args = parser.parse_args()
    if args.model_dir is not None and args.segmenter is not None:
        parser.error("give --model-dir or --segmenter, not both")
    if args.allocator == "keep-freed":
        use_keep_freed_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    margins = [int(m) for m in args.margins.split(",") if m.strip()]
    seg, surv, what = models(args)
    seg.eval()
    surv.eval()
    native_bf16 = cpu_has_native_bf16()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"kernels {torch.backends.cpu.get_cpu_capability()}, native bf16 {native_bf16}; weights: {what}")
    print(f"allocator: {args.allocator} ({_TUNABLES}={os.environ.get(_TUNABLES, '')})")
    if what == "random initialisation":
        print("note=random weights mark every brain slice as tumour, the worst case for ours; "
              "give --segmenter or --model-dir for a trained segmenter's figures")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth_data = work / "synth"
        cases: list[Case] = []
        data: Path | None = args.data
        if data is not None:
            cases.extend(real_cases(data, args.volumes))
        else:
            print("real_cases=absent (../shared/data/real-labelled not found; give --data)")
        if args.synthetic or not cases or (args.rss_volumes and data is None):
            make_cohort(synth_data, SynthConfig(volumes=max(2, args.rss_volumes), slices=155, size=240, seed=7))
        if args.synthetic or not cases:
            cases.append(Case("synthetic", "synthetic volume 1", H5SliceFolder(synth_data, volumes=[1]).load_volume(1).image))
        if not args.skip_speed:
            ours = CombinedPredictor(segmenter=seg, survival=surv, device="cpu")
            ours_bf16 = (CombinedPredictor(segmenter=seg, survival=surv, device="cpu", config=PredictorConfig(precision=Precision.BF16))
                         if native_bf16 else None)
            ours_onnx = _onnx_predictor(seg, surv, work) if args.onnx else None
            ours_tta = [CombinedPredictor(segmenter=seg, survival=surv, device="cpu", config=PredictorConfig(tta=TTA.FLIPS, precision=p))
                        for p in ((Precision.FP32, Precision.BF16) if native_bf16 else (Precision.FP32,))] if args.tta else []
            for p in ours_tta:
                p.predict_volume(cases[-1].image, AGE)
            # Each pipeline's first run builds oneDNN's kernels for its shapes; later volumes reuse them.
            ours.predict_volume(cases[-1].image, AGE)
            if ours_onnx is not None:
                ours_onnx.predict_volume(cases[-1].image, AGE)
            if ours_bf16 is not None:
                ours_bf16.predict_volume(cases[-1].image, AGE)
            paper_pipeline(seg, surv, cases[0].image[:50], AGE)
            if args.paper_channels_last:
                seg_cl = copy.deepcopy(seg).to(memory_format=torch.channels_last)
                surv_cl = copy.deepcopy(surv).to(memory_format=torch.channels_last)
                paper_pipeline(seg_cl, surv_cl, cases[0].image[:50], AGE)
                t_cl, _ = _timed(lambda: paper_pipeline(seg_cl, surv_cl, cases[0].image, AGE))
                print(f"{cases[0].key}_paper_pipeline_channels_last_weights_s={t_cl:.2f}")
            results = [
                bench_case(case, seg, surv, ours, ours_bf16, repeats=max(1, args.repeats), as_trained=i == 0, margins=margins,
                           ours_onnx=ours_onnx, ours_tta=ours_tta)
                for i, case in enumerate(cases)
            ]
            _summary(results)
        if args.rss_volumes:
            run = work / "run"
            run.mkdir()
            seg.save(run / "segmenter.pt")
            surv.save(run / "survival.pt")
            rss_data = data if data is not None else synth_data
            small, large = peak_rss_mb(rss_data, run, args.rss_volumes, work)
            print(f"predict_peak_rss_mb_1_volume={small:.0f}")
            print(f"predict_peak_rss_mb_{args.rss_volumes}_volumes={large:.0f}")
            print(f"predict_peak_rss_growth_ratio={large / small:.3f}")
            if args.tta:
                extra = ("--tta", "flips", "--save-masks", "--save-probabilities", "--save-uncertainty")
                small, large = peak_rss_mb(rss_data, run, args.rss_volumes, work, extra)
                print(f"predict_tta_maps_peak_rss_mb_1_volume={small:.0f}")
                print(f"predict_tta_maps_peak_rss_mb_{args.rss_volumes}_volumes={large:.0f}")
                print(f"predict_tta_maps_peak_rss_growth_ratio={large / small:.3f}")
        if not args.skip_speed:
            tta = [r.speedup_tta for r in results if r.speedup_tta is not None]
            if tta:
                print(f"speedup_tta_vs_paper_pipeline={min(tta):.2f}")
            print(f"speedup_vs_paper_pipeline={min(r.speedup_fp32 for r in results):.2f}")


if __name__ == "__main__":
    main()
