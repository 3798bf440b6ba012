"""Run under torchrun by tests/test_distributed.py: train a tiny segmenter with DDP and
save what this rank holds, so the test can compare every rank with rank 0's checkpoint."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from brats_sdk.training.segmenter_pipeline import SegmenterTrainConfig, train_segmenter


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    result = train_segmenter(
        SegmenterTrainConfig(
            data_dir=data, out_dir=out, batch_size=4, stage_epochs=(2, 1, 0), lrs=(1e-3, 1e-3, 1e-5),
            max_steps_per_epoch=2, device="cpu", seed=3,
        )
    )
    rank = int(os.environ["RANK"])
    torch.save({k: v.detach().cpu() for k, v in result.model.state_dict().items()}, out / f"rank{rank}_state.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
