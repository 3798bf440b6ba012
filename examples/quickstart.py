"""Load a trained run folder and predict one volume.

    python examples/quickstart.py RUN_DIR DATA_DIR [--volume 1] [--age 61]

RUN_DIR is what `brats train all` (or examples/train_from_python.py) wrote;
DATA_DIR any folder `brats predict` reads (Kaggle h5 layout or NIfTI cases).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from brats_sdk import CombinedPredictor, open_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--volume", type=int, default=None, help="Volume number (default: the first).")
    parser.add_argument("--age", type=float, default=60.0, help="Age in years.")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    predictor = CombinedPredictor.from_run_dir(args.run_dir, device=args.device)
    source = open_source(args.data_dir, require_mask=False)
    volume = args.volume if args.volume is not None else source.volumes()[0].volume
    record = source.load_volume(volume)  # raw (D, 4, H, W): the predictor normalises
    result = predictor.predict_volume(record.image, age=args.age, spacing=record.info.spacing, volume=volume, name=record.info.name)

    print(f"volume {volume} ({record.info.name}): status {result.status}")
    print("tumour volumes (mL): " + ", ".join(f"{k} {v:.1f}" for k, v in result.region_ml.items()))
    if result.predicted_bin is not None:
        print(f"survival class: {result.bin_label} ({result.bin_days} days), votes {result.votes}, "
              f"from {result.slices_used} slices; mean-probability class {result.mean_prob_bin}")


if __name__ == "__main__":
    main()
