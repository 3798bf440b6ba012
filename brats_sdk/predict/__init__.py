"""Prediction: the combined segmenter + survival predictor and batch jobs."""
