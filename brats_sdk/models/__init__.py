"""brats_sdk.models."""
