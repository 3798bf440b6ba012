"""Prediction speed: CombinedPredictor against the paper's pipeline, same weights, same run.

    python benchmarks/bench_predict.py [--model-dir RUN_DIR] [--rss-volumes 10] [--margins 0,8]
                                       [--paper-channels-last]

The baseline (`paper_pipeline` below, not in the library) does what the paper did: every
one of the 155 slices resized to 256x256, the U-Net in batches of 50 in fp32, every mask
resized to 224 and passed to ResNet-50, then the empty-mask filter and the vote.

Figures, one per line: time per volume for both pipelines on the real case in
../shared/data/real (when present) and on a synthetic volume (ours after another volume,
as in `brats predict` over a folder: a process's first volume also pays oneDNN's kernel
builds for its new shapes); the labels that differ
between the two (the resize's interpolation) and between our shortcuts and our own
full-slice run; what the inference rewrites of the networks (folded BatchNorm, fused
upsampling, survival tumour windows) change against the networks as trained (first volume); bf16 speed
and changed labels; with `--margins`, the time and changed labels of other crop margins;
with `--paper-channels-last`, the paper pipeline again with channels-last weights (how
much of the speed-up that one change of ours gives on its own);
peak RSS of `brats predict` on 1 and on N volumes. The last line is `speedup_vs_paper_pipeline=<ratio>` (the smaller of the two
volumes' speed-ups).
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from brats_sdk import (
    AgeScaler,
    CombinedPredictor,
    H5SliceFolder,
    NiftiFolder,
    Precision,
    PredictorConfig,
    Segmenter,
    SurvivalBins,
    SurvivalClassifier,
    SynthConfig,
    make_cohort,
)
from brats_sdk.data.normalise import brain_mask, normalise_volume
from brats_sdk.labels import classes_to_labels, classes_to_one_hot
from brats_sdk.metrics.survival import majority_vote
from brats_sdk.models.survival import prepare_masks

REAL_CASE = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
AGE = 60.0


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


def _models(model_dir: Path | None) -> tuple[Segmenter, SurvivalClassifier, str]:
    if model_dir is not None:
        return (
            Segmenter.from_checkpoint(model_dir / "segmenter.pt"),
            SurvivalClassifier.from_checkpoint(model_dir / "survival.pt"),
            f"trained run {model_dir}",
        )
    torch.manual_seed(0)
    bins = SurvivalBins.brats()
    return Segmenter(), SurvivalClassifier(bins=bins, age_scaler=AgeScaler(20.0, 85.0)), "random initialisation"


def _time(fn, repeat: int = 1) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_volume(
    name: str,
    image: npt.NDArray[np.float32],
    seg: Segmenter,
    surv: SurvivalClassifier,
    ours: CombinedPredictor,
    margins: Sequence[int] = (),
    paper_channels_last: bool = False,
    warm_paper: bool = True,
    as_trained: bool = True,
) -> float:
    """Time both pipelines on ``image``; ``ours`` has predicted another volume before, as
    in ``brats predict`` over a folder (a process's first volume also pays oneDNN's kernel
    builds for each new shape: about 0.5 s here)."""
    seg.eval()
    surv.eval()
    brain = brain_mask(image)
    print(f"{name}_slices={image.shape[0]} {name}_brain_slices={int(brain.any(axis=(1, 2)).sum())}")
    if warm_paper:  # as for ours: oneDNN builds its kernels on first use (later volumes reuse them)
        paper_pipeline(seg, surv, image[:50], AGE)
    t_base, (base_labels, base_bin) = _time(lambda: paper_pipeline(seg, surv, image, AGE))  # type: ignore[misc]
    if paper_channels_last:
        seg_cl = copy.deepcopy(seg).to(memory_format=torch.channels_last)
        surv_cl = copy.deepcopy(surv).to(memory_format=torch.channels_last)
        paper_pipeline(seg_cl, surv_cl, image[:50], AGE)
        t_cl, _ = _time(lambda: paper_pipeline(seg_cl, surv_cl, image, AGE))
        print(f"{name}_paper_pipeline_channels_last_weights_s={t_cl:.2f}")
    t_ours, res = _time(lambda: ours.predict_volume(image, AGE))
    full = CombinedPredictor(segmenter=seg, survival=surv, device="cpu",
                             config=PredictorConfig(skip_empty_slices=False, crop_to_brain=False))
    t_full, res_full = _time(lambda: full.predict_volume(image, AGE))
    # No folded BatchNorm, no fused upsampling, no tumour windows: the networks as trained
    # (on the first volume only: the check is the same on every volume, and it costs 15-20 s).
    t_plain, res_plain = 0.0, None
    if as_trained:
        plain = CombinedPredictor(segmenter=seg, survival=surv, device="cpu",
                                  config=PredictorConfig(skip_empty_slices=False, crop_to_brain=False, fold_batchnorm=False,
                                                         fuse_upsampling=False, tumour_windows=False))
        t_plain, res_plain = _time(lambda: plain.predict_volume(image, AGE))
    bf16 = CombinedPredictor(segmenter=seg, survival=surv, device="cpu", config=PredictorConfig(precision=Precision.BF16))
    t_bf16, res_bf16 = _time(lambda: bf16.predict_volume(image, AGE))
    labels = res.labels  # type: ignore[attr-defined]
    n = labels.size
    print(f"{name}_paper_pipeline_s={t_base:.2f}")
    if res_plain is not None:
        print(f"{name}_ours_full_slices_plain_networks_s={t_plain:.2f}")
    print(f"{name}_ours_full_slices_s={t_full:.2f}")
    print(f"{name}_ours_s={t_ours:.2f}")
    print(f"{name}_ours_bf16_s={t_bf16:.2f}")
    print(f"{name}_speedup_vs_paper_pipeline={t_base / t_ours:.2f}")
    print(f"{name}_speedup_bf16_vs_fp32={t_ours / t_bf16:.2f}")
    print(f"{name}_survival_slices_ours={res.slices_used}")  # type: ignore[attr-defined]
    print(f"{name}_labels_differ_vs_paper_resize={int((labels != base_labels).sum())} of {n}")
    print(f"{name}_labels_differ_shortcuts_vs_full_slices={int((labels != res_full.labels).sum())} of {n}")  # type: ignore[attr-defined]
    print(f"{name}_labels_differ_shortcuts_inside_brain={int(((labels != res_full.labels) & brain).sum())}")  # type: ignore[attr-defined]
    if res_plain is not None:
        print(f"{name}_labels_differ_fused_vs_plain_networks={int((res_full.labels != res_plain.labels).sum())} of {n}")  # type: ignore[attr-defined]
        p_fused, p_plain = res_full.slice_probs, res_plain.slice_probs  # type: ignore[attr-defined]
        if p_fused.shape == p_plain.shape and p_fused.size:
            print(f"{name}_survival_probs_max_diff_fused_vs_plain={float(abs(p_fused - p_plain).max()):.2e}")
    print(f"{name}_labels_differ_bf16_vs_fp32={int((labels != res_bf16.labels).sum())} of {n}")  # type: ignore[attr-defined]
    print(f"{name}_bin_paper={base_bin} {name}_bin_ours={res.predicted_bin} {name}_bin_same={base_bin == res.predicted_bin}")  # type: ignore[attr-defined]
    for margin in margins:
        other = CombinedPredictor(segmenter=seg, survival=surv, device="cpu", config=PredictorConfig(crop_margin=margin))
        t_m, res_m = _time(lambda: other.predict_volume(image, AGE))  # noqa: B023  # called at once
        differ = int(((res_m.labels != res_full.labels) & brain).sum())  # type: ignore[attr-defined]
        print(f"{name}_crop_margin_{margin}_s={t_m:.2f} {name}_crop_margin_{margin}_labels_differ_inside_brain={differ}")
    return t_base / t_ours


def peak_rss_mb(data: Path, model_dir: Path, n: int, workdir: Path) -> tuple[float, float]:
    """Peak RSS of one `brats predict` process after its first volume and after n volumes."""
    out = workdir / f"pred_{n}"
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
        f" '--volumes', {volumes!r}, '--device', 'cpu', '--quiet'], standalone_mode=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    peaks = [int(ln.split()[1]) / 1024 for ln in res.stdout.splitlines() if ln.startswith("RSS_KB")]
    if res.returncode != 0 or len(peaks) != n:
        raise RuntimeError(f"brats predict failed: {res.stderr[-2000:]}")
    return peaks[0], peaks[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="A trained run (default: demo_run/run when `make demo` made it, else random weights).")
    parser.add_argument("--rss-volumes", type=int, default=10, help="Volumes for the peak-RSS figure (0: skip).")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--skip-speed", action="store_true", help="Only the peak-RSS figures.")
    parser.add_argument("--margins", default="", help="Also time these crop margins, e.g. 0,8 (comma-separated).")
    parser.add_argument("--paper-channels-last", action="store_true",
                        help="Also time the paper pipeline with channels-last weights.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    demo = Path(__file__).resolve().parents[1] / "demo_run" / "run"
    model_dir = args.model_dir or (demo if (demo / "survival.pt").exists() else None)
    margins = [int(m) for m in args.margins.split(",") if m.strip()]
    seg, surv, what = _models(model_dir)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}, weights: {what}")
    if model_dir is None:
        # An untrained U-Net labels tumour on every brain slice, so the survival network
        # runs on all of them, on windows as large as the brain: ours' worst case.
        print("note=random weights mark every brain slice as tumour, the worst case for ours; "
              "`make demo` trains the weights that benchmarks/README.md's figures use")
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        n_synth = max(2, args.rss_volumes)
        data = make_cohort(work / "synth", SynthConfig(volumes=n_synth, slices=155, size=240, seed=7))
        synth = H5SliceFolder(data, volumes=[1, 2])
        synthetic, synthetic_2 = synth.load_volume(1).image, synth.load_volume(2).image
        real = NiftiFolder(REAL_CASE).load_volume(1).image if (REAL_CASE / "BraTS-GLI-00001-000").exists() else None
        if not args.skip_speed:
            ours = CombinedPredictor(segmenter=seg, survival=surv, device="cpu")
            ours.predict_volume(synthetic_2, AGE)  # its first volume: untimed
            if real is not None:
                ratios.append(bench_volume("real", real, seg, surv, ours, margins, args.paper_channels_last))
            else:
                print("real_case=absent (../shared/data/real not found)")
            first = real is None
            ratios.append(bench_volume("synthetic", synthetic, seg, surv, ours, margins, args.paper_channels_last,
                                       warm_paper=first, as_trained=first))
        if args.rss_volumes:
            run = work / "run"
            run.mkdir()
            seg.save(run / "segmenter.pt")
            surv.save(run / "survival.pt")
            small, large = peak_rss_mb(data, run, args.rss_volumes, work)
            print(f"predict_peak_rss_mb_1_volume={small:.0f}")
            print(f"predict_peak_rss_mb_{args.rss_volumes}_volumes={large:.0f}")
            print(f"predict_peak_rss_growth_ratio={large / small:.3f}")
    if ratios:
        print(f"speedup_vs_paper_pipeline={min(ratios):.2f}")


if __name__ == "__main__":
    main()
