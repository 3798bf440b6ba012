"""Predict a folder of volumes with a `brats export` folder, in a process that never imports torch.

    brats export RUN_DIR --out EXPORT_DIR          # once, where PyTorch is installed
    python examples/predict_with_onnx.py EXPORT_DIR DATA_DIR OUT_DIR [--age-csv CSV] [--providers CUDAExecutionProvider,CPUExecutionProvider]

Needs only brats-sdk's numpy side and `pip install "brats-sdk[onnx]"`: the export's
`export.json` carries the normalisation, label map, bins and age scaling, the `.onnx`
files the networks. Writes predictions.csv / predictions.json like `brats predict`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from brats_sdk import CombinedPredictor, open_source, read_age_table
from brats_sdk.predict.batch import run_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--age-csv", type=Path, default=None, help="Brats20ID,Age or volume,age (else segmentation only).")
    parser.add_argument("--providers", default=None, help="ONNX Runtime providers, comma-separated, in order of preference.")
    args = parser.parse_args()

    providers = args.providers.split(",") if args.providers else None
    predictor = CombinedPredictor.from_export(args.export_dir, providers=providers)
    ages = read_age_table(args.age_csv) if args.age_csv is not None else None
    summary = run_batch(predictor, open_source(args.data_dir, require_mask=False), args.out_dir, ages=ages)

    for row in summary.rows:
        print(f"{row.get('patient_id')}: WT {row.get('WT_ml', '-')} mL, class {row.get('bin_label') or '-'}, {row.get('status')}")
    print(f"{summary.predictions} volume(s) in {summary.seconds:.1f} s on {predictor.device}; torch imported: {'torch' in sys.modules}")


if __name__ == "__main__":
    main()
