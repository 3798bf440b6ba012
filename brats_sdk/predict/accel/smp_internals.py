"""The one module that reads segmentation-models-pytorch internals.

The inference rewrites replace smp's U-Net decoder blocks and run its decoder piece by
piece, so they depend on more than smp's public ``Unet``: the decoder classes, their
attribute names and the decoder block's call signature. Everything of that kind is
imported or named here, and :func:`check_smp_internals` says loudly what changed when a
new smp release moves it (a test runs it, so such a release fails CI instead of
making prediction silently slower).
"""

from __future__ import annotations

import inspect

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder, UnetDecoderBlock

__all__ = ["BLOCK_FORWARD_PARAMETERS", "Unet", "UnetDecoder", "UnetDecoderBlock", "check_smp_internals"]

Unet = smp.Unet

# The decoder block's call, as the rewrites call it and as PhaseUpsampleBlock mirrors it.
BLOCK_FORWARD_PARAMETERS: tuple[str, ...] = ("feature_map", "target_height", "target_width", "skip_connection")
_BLOCK_ATTRIBUTES = ("conv1", "conv2", "attention1", "attention2", "interpolation_mode")
_DECODER_ATTRIBUTES = ("center", "blocks")
_UNET_ATTRIBUTES = ("encoder", "decoder", "segmentation_head")


def check_smp_internals() -> None:
    """Check that smp's U-Net still has the internals the rewrites read.

    Raises:
        RuntimeError: Naming the installed smp version and what is missing or changed.
    """
    problems: list[str] = []
    params = tuple(inspect.signature(UnetDecoderBlock.forward).parameters)[1:]
    if params != BLOCK_FORWARD_PARAMETERS:
        problems.append(f"UnetDecoderBlock.forward{params} (expected {BLOCK_FORWARD_PARAMETERS})")
    unet = Unet(encoder_name="resnet18", encoder_weights=None, encoder_depth=5, classes=2)
    missing = [f"Unet.{a}" for a in _UNET_ATTRIBUTES if not hasattr(unet, a)]
    decoder = getattr(unet, "decoder", None)
    if not isinstance(decoder, UnetDecoder):
        missing.append("Unet.decoder as UnetDecoder")
    else:
        missing += [f"UnetDecoder.{a}" for a in _DECODER_ATTRIBUTES if not hasattr(decoder, a)]
        block = decoder.blocks[0] if len(decoder.blocks) else None
        if not isinstance(block, UnetDecoderBlock):
            missing.append("UnetDecoder.blocks of UnetDecoderBlock")
        else:
            missing += [f"UnetDecoderBlock.{a}" for a in _BLOCK_ATTRIBUTES if not hasattr(block, a)]
    if not hasattr(unet.encoder, "out_channels"):
        missing.append("Unet.encoder.out_channels")
    problems += [f"missing {m}" for m in missing]
    if problems:
        raise RuntimeError(
            f"segmentation-models-pytorch {smp.__version__} changed the internals brats_sdk's "
            f"inference rewrites read: {'; '.join(problems)}"
        )
