"""brats_sdk: BraTS 2020 tumour segmentation and overall-survival classification.

The public API::

    from brats_sdk import CombinedPredictor, Segmenter, SurvivalClassifier, DiceLoss
    from brats_sdk import H5SliceFolder, NiftiFolder, open_source

Everything here is typed; errors raised on purpose are :class:`BratsError` subclasses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from brats_sdk._version import __version__

if TYPE_CHECKING:
    from brats_sdk.bins import BinMethod, SurvivalBins
    from brats_sdk.data.clinical import AgeTable, PatientIdMap, read_age_table, read_survival_csv
    from brats_sdk.data.convert import convert_nifti_to_h5
    from brats_sdk.data.h5_folder import H5SliceFolder
    from brats_sdk.data.nifti import NiftiFolder
    from brats_sdk.data.normalise import Normalisation, normalise_volume
    from brats_sdk.data.packed import ImageDtype, PackedFolder
    from brats_sdk.data.packed_writer import pack_folder
    from brats_sdk.data.protocols import DataSource, SliceSource, VolumeSource
    from brats_sdk.data.records import SliceRecord, VolumeInfo, VolumeRecord
    from brats_sdk.data.sources import DataFormat, open_source
    from brats_sdk.data.splits import Split, SplitMode
    from brats_sdk.data.synth import SynthConfig, make_cohort
    from brats_sdk.device import resolve_device
    from brats_sdk.distributed import is_main_process
    from brats_sdk.errors import (
        BratsError,
        CheckpointError,
        ConfigError,
        DataError,
        DeviceError,
        WeightsUnavailableError,
    )
    from brats_sdk.metrics.segmentation import HD95Method
    from brats_sdk.models.losses import DiceLoss
    from brats_sdk.models.segmenter import HeadKind, Segmenter, SegmenterConfig
    from brats_sdk.models.survival import AgeScaler, SurvivalClassifier, SurvivalConfig
    from brats_sdk.options import TTA, UncertaintyMethod
    from brats_sdk.predict.batch import BatchOptions, BatchSummary, run_batch
    from brats_sdk.predict.config import CropPadding
    from brats_sdk.predict.predictor import CombinedPredictor, Precision, PredictorConfig
    from brats_sdk.predict.results import VolumeFailure, VolumePrediction
    from brats_sdk.report.build import write_report
    from brats_sdk.report.folder import read_prediction_folder
    from brats_sdk.training.run_config import TrainRunConfig
    from brats_sdk.training.segmenter_pipeline import (
        SegmenterTrainConfig,
        SegmenterTrainResult,
        train_segmenter,
    )
    from brats_sdk.training.survival_pipeline import (
        SurvivalTrainConfig,
        SurvivalTrainResult,
        train_survival,
    )

# Attribute -> defining module. Imported on first use, so that `import brats_sdk.errors`
# (the CLI start-up) does not pay for torch and segmentation-models-pytorch.
_LAZY: dict[str, str] = {
    "AgeScaler": "brats_sdk.models.survival",
    "AgeTable": "brats_sdk.data.clinical",
    "BatchOptions": "brats_sdk.predict.batch",
    "BatchSummary": "brats_sdk.predict.batch",
    "BinMethod": "brats_sdk.bins",
    "BratsError": "brats_sdk.errors",
    "CheckpointError": "brats_sdk.errors",
    "CombinedPredictor": "brats_sdk.predict.predictor",
    "ConfigError": "brats_sdk.errors",
    "CropPadding": "brats_sdk.predict.config",
    "DataError": "brats_sdk.errors",
    "DataFormat": "brats_sdk.data.sources",
    "DataSource": "brats_sdk.data.protocols",
    "DeviceError": "brats_sdk.errors",
    "DiceLoss": "brats_sdk.models.losses",
    "H5SliceFolder": "brats_sdk.data.h5_folder",
    "HD95Method": "brats_sdk.metrics.segmentation",
    "HeadKind": "brats_sdk.models.segmenter",
    "ImageDtype": "brats_sdk.data.packed",
    "NiftiFolder": "brats_sdk.data.nifti",
    "Normalisation": "brats_sdk.data.normalise",
    "PackedFolder": "brats_sdk.data.packed",
    "PatientIdMap": "brats_sdk.data.clinical",
    "Precision": "brats_sdk.predict.predictor",
    "PredictorConfig": "brats_sdk.predict.predictor",
    "Segmenter": "brats_sdk.models.segmenter",
    "SegmenterConfig": "brats_sdk.models.segmenter",
    "SegmenterTrainConfig": "brats_sdk.training.segmenter_pipeline",
    "SegmenterTrainResult": "brats_sdk.training.segmenter_pipeline",
    "SliceRecord": "brats_sdk.data.records",
    "SliceSource": "brats_sdk.data.protocols",
    "Split": "brats_sdk.data.splits",
    "SplitMode": "brats_sdk.data.splits",
    "SurvivalBins": "brats_sdk.bins",
    "SurvivalClassifier": "brats_sdk.models.survival",
    "SurvivalConfig": "brats_sdk.models.survival",
    "SurvivalTrainConfig": "brats_sdk.training.survival_pipeline",
    "TTA": "brats_sdk.options",
    "UncertaintyMethod": "brats_sdk.options",
    "SurvivalTrainResult": "brats_sdk.training.survival_pipeline",
    "SynthConfig": "brats_sdk.data.synth",
    "TrainRunConfig": "brats_sdk.training.run_config",
    "VolumeFailure": "brats_sdk.predict.results",
    "VolumeInfo": "brats_sdk.data.records",
    "VolumePrediction": "brats_sdk.predict.results",
    "VolumeRecord": "brats_sdk.data.records",
    "VolumeSource": "brats_sdk.data.protocols",
    "WeightsUnavailableError": "brats_sdk.errors",
    "convert_nifti_to_h5": "brats_sdk.data.convert",
    "is_main_process": "brats_sdk.distributed",
    "make_cohort": "brats_sdk.data.synth",
    "normalise_volume": "brats_sdk.data.normalise",
    "open_source": "brats_sdk.data.sources",
    "pack_folder": "brats_sdk.data.packed_writer",
    "read_age_table": "brats_sdk.data.clinical",
    "read_prediction_folder": "brats_sdk.report.folder",
    "read_survival_csv": "brats_sdk.data.clinical",
    "resolve_device": "brats_sdk.device",
    "run_batch": "brats_sdk.predict.batch",
    "train_segmenter": "brats_sdk.training.segmenter_pipeline",
    "train_survival": "brats_sdk.training.survival_pipeline",
    "write_report": "brats_sdk.report.build",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brats_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "TTA",
    "AgeScaler",
    "AgeTable",
    "BatchOptions",
    "BatchSummary",
    "BinMethod",
    "BratsError",
    "CheckpointError",
    "CombinedPredictor",
    "ConfigError",
    "CropPadding",
    "DataError",
    "DataFormat",
    "DataSource",
    "DeviceError",
    "DiceLoss",
    "H5SliceFolder",
    "HD95Method",
    "HeadKind",
    "ImageDtype",
    "NiftiFolder",
    "Normalisation",
    "PackedFolder",
    "PatientIdMap",
    "Precision",
    "PredictorConfig",
    "Segmenter",
    "SegmenterConfig",
    "SegmenterTrainConfig",
    "SegmenterTrainResult",
    "SliceRecord",
    "SliceSource",
    "Split",
    "SplitMode",
    "SurvivalBins",
    "SurvivalClassifier",
    "SurvivalConfig",
    "SurvivalTrainConfig",
    "SurvivalTrainResult",
    "SynthConfig",
    "TrainRunConfig",
    "UncertaintyMethod",
    "VolumeFailure",
    "VolumeInfo",
    "VolumePrediction",
    "VolumeRecord",
    "VolumeSource",
    "WeightsUnavailableError",
    "__version__",
    "convert_nifti_to_h5",
    "is_main_process",
    "make_cohort",
    "normalise_volume",
    "open_source",
    "pack_folder",
    "read_age_table",
    "read_prediction_folder",
    "read_survival_csv",
    "resolve_device",
    "run_batch",
    "train_segmenter",
    "train_survival",
    "write_report",
]
