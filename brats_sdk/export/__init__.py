"""ONNX export of a trained run (the torch side).

- :mod:`~brats_sdk.export.write`: ``brats export``: both networks to ONNX, checked with
  ``onnx.checker`` and against PyTorch, written atomically.
- :mod:`~brats_sdk.export.parity`: ONNX Runtime against PyTorch on whole volumes.

Prediction from an export needs no torch and lives below this package, in the predict
layer: ``export.json`` is read and checked by :mod:`brats_sdk.predict.export_manifest`,
and the graphs run as ONNX Runtime sessions in :mod:`brats_sdk.predict.onnx_networks`
behind :meth:`CombinedPredictor.from_export
<brats_sdk.predict.predictor.CombinedPredictor.from_export>`.
"""
