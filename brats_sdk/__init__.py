"""brats_sdk: BraTS 2020 segmentation and survival classification."""

from brats_sdk._version import __version__

__all__ = ["__version__"]
