"""ONNX export of a trained run, and prediction from it without PyTorch.

- :mod:`~brats_sdk.export.write`: ``brats export`` (torch side): both networks to ONNX,
  checked with ``onnx.checker`` and against PyTorch, written atomically.
- :mod:`~brats_sdk.export.manifest`: ``export.json``, its versions and model hashes.
- :mod:`~brats_sdk.export.runtime`: the graphs as ONNX Runtime sessions behind
  :meth:`CombinedPredictor.from_export <brats_sdk.predict.predictor.CombinedPredictor.from_export>`;
  no torch import.

Nothing is imported here, so that the runtime stays free of torch.
"""
