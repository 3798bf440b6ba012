"""Size, build time and first paint of the slice viewer (``brats view``).

- ``--pred-dir P --ground-truth G``: the viewer of every volume of a real prediction
  folder, one volume at a time: bytes per volume (the payload in the page), slices and
  brain box, the lossy quality used, seconds to build.
- ``--synthetic N`` (default 10): a synthetic cohort of N volumes of 155 slices of
  240 x 240 (``brats synth``), predictions = truth with the ED of every other slice
  erased, timed as ``brats view`` runs it (reading the h5 slices, encoding, writing).
- Wall time and the process's CPU time (user + system) of each build: on a shared
  machine the wall time measures the neighbours too.
- First paint: each page opened from ``file://`` in headless Chromium (Selenium and the
  system's chromedriver), the time from navigation start to the viewer's first drawn
  slice (the ``bv-first-paint`` performance mark), best of ``--repeats``.

Output, one ``name=value`` line per figure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from brats_sdk.data.h5_folder import H5SliceFolder
from brats_sdk.data.synth import SynthConfig, make_cohort
from brats_sdk.labels import one_hot_to_classes
from brats_sdk.report import write_viewer


def _first_paint_ms(page: Path, repeats: int) -> float | None:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        print("first_paint skipped: selenium is not installed")
        return None
    browser, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver_bin is None:
        print("first_paint skipped: chromium or chromedriver not found")
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(driver_bin), options=options)
    best = float("inf")
    try:
        for _ in range(repeats):
            d.get("about:blank")
            d.get(page.as_uri())
            WebDriverWait(d, 60).until(lambda x: x.execute_script(
                "return document.querySelector('div.bv').getAttribute('data-ready')"))
            best = min(best, float(d.execute_script("return performance.getEntriesByName('bv-first-paint')[0].startTime")))
    finally:
        d.quit()
    return best


def _synthetic(root: Path, n: int) -> tuple[Path, Path]:
    # The tests' writer of prediction folders (the predict writers, segmentation only).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.helpers import write_prediction_folder

    data = make_cohort(root / "data", SynthConfig(volumes=n, slices=155, size=240, seed=0))
    source = H5SliceFolder(data)
    pred = {}
    for info in source.volumes():
        mask = source.load_volume(info.volume).mask
        assert mask is not None
        classes = one_hot_to_classes(mask, channel_axis=1)
        every_other = classes[::2]
        every_other[every_other == 2] = 0
        pred[info.volume] = classes
    return data, write_prediction_folder(root / "pred", pred)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pred-dir", type=Path, default=None)
    ap.add_argument("--ground-truth", type=Path, default=None)
    ap.add_argument("--synthetic", type=int, default=10, help="synthetic volumes to time (0: none)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="keep the pages here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    out = args.out or tmp
    out.mkdir(parents=True, exist_ok=True)
    try:
        if args.pred_dir is not None:
            page = out / "real.html"
            t0, c0 = time.perf_counter(), time.process_time()
            build = write_viewer(args.pred_dir, page, ground_truth=args.ground_truth, max_volumes=1000)
            print(f"real_build_seconds={time.perf_counter() - t0:.2f} cpu_seconds={time.process_time() - c0:.2f} "
                  f"volumes={len(build.volumes)}")
            for v in build.volumes:
                print(f"real_volume={v.volume} name={v.name} slices={v.slices}/{v.depth} box={v.height}x{v.width} "
                      f"quality={v.quality} bytes={v.bytes}")
            sizes = np.array([v.bytes for v in build.volumes])
            print(f"real_bytes_per_volume min={sizes.min()} mean={sizes.mean():.0f} max={sizes.max()}")
            print(f"real_page_bytes={page.stat().st_size}")
            paint = _first_paint_ms(page, args.repeats)
            if paint is not None:
                print(f"real_first_paint_ms={paint:.0f}")
        if args.synthetic > 0:
            t0 = time.perf_counter()
            data, pred = _synthetic(tmp / "synthetic", args.synthetic)
            print(f"synthetic_cohort_seconds={time.perf_counter() - t0:.1f}")
            page = out / "synthetic.html"
            t0, c0 = time.perf_counter(), time.process_time()
            build = write_viewer(pred, page, ground_truth=data, max_volumes=args.synthetic)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            sizes = np.array([v.bytes for v in build.volumes])
            print(f"synthetic_build_seconds={seconds:.2f} cpu_seconds={cpu:.2f} volumes={len(build.volumes)} "
                  f"per_volume={seconds / max(len(build.volumes), 1):.2f}")
            print(f"synthetic_bytes_per_volume min={sizes.min()} mean={sizes.mean():.0f} max={sizes.max()}")
            print(f"synthetic_page_bytes={page.stat().st_size}")
            paint = _first_paint_ms(page, args.repeats)
            if paint is not None:
                print(f"synthetic_first_paint_ms={paint:.0f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
