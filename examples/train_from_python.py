"""Train both models from Python, exactly as `brats train all` does.

    python examples/train_from_python.py DATA_DIR RUN_DIR [--epochs 2] [--max-volumes 10]

DATA_DIR is a folder in the Kaggle h5 layout (or `brats synth` output); its
survival_info.csv is used for the survival classifier.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from brats_sdk import (
    SegmenterTrainConfig,
    SurvivalTrainConfig,
    train_segmenter,
    train_survival,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-volumes", type=int, default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    seg = train_segmenter(
        SegmenterTrainConfig(
            data_dir=args.data_dir, out_dir=args.run_dir, epochs=args.epochs, batch_size=args.batch_size,
            max_volumes=args.max_volumes, max_steps_per_epoch=args.max_steps, device=args.device,
        )
    )
    print(f"segmenter: {seg.model_path}  test Dice {seg.test_metrics}")
    surv = train_survival(
        SurvivalTrainConfig(
            # survival_csv=None: the survival_info.csv beside the data
            data_dir=args.data_dir, survival_csv=None, out_dir=args.run_dir, epochs=args.epochs,
            batch_size=args.batch_size, max_volumes=args.max_volumes, max_steps_per_epoch=args.max_steps,
            device=args.device,
        )
    )
    print(f"survival: {surv.model_path}  test accuracies {surv.levels.headline()}")


if __name__ == "__main__":
    main()
