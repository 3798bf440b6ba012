"""brats_sdk.training."""
