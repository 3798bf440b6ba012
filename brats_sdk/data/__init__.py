"""brats_sdk.data."""
