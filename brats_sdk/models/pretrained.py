"""ImageNet weights: use the local cache, download with bounded waits, or fail fast.

Where the weights come from:

- segmentation-models-pytorch 0.6 encoders (``smp.Unet(encoder_weights="imagenet")``)
  fetch ``config.json`` and ``model.safetensors`` from the Hugging Face Hub repo
  ``smp-hub/<encoder>.imagenet`` at a pinned commit with ``huggingface_hub.hf_hub_download``.
  Without network, that call retries five times with back-off (about 23 s here) before
  failing, and on a network that drops packets each try waits out a 10 s timeout.
- torchvision's ``ResNet50_Weights`` download ``https://download.pytorch.org/...`` with
  ``torch.hub.load_state_dict_from_url`` (urllib, no timeout at all: it can hang).

So this module first looks for the files in the local caches (the Hugging Face cache,
``torch.hub.get_dir()/checkpoints``). Only when they are missing does it try the
network: a TCP probe of the server (or of the HTTPS proxy) in a helper thread, bounded
by ``timeout_s``, then the download itself. A failure at any step raises
:class:`~brats_sdk.errors.WeightsUnavailableError` with the reason. No environment
variable or global setting is left changed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import torch
from torch import Tensor

from brats_sdk.errors import ConfigError, WeightsUnavailableError
from brats_sdk.options import OptionEnum

__all__ = [
    "ENCODER_WEIGHTS_CHOICES",
    "IMAGENET",
    "EncoderWeights",
    "check_encoder_weights",
    "ensure_smp_encoder_weights",
    "resnet50_imagenet_state_dict",
]

logger = logging.getLogger(__name__)

IMAGENET: Final[str] = "imagenet"
ENCODER_WEIGHTS_CHOICES: Final[tuple[str | None, ...]] = (None, IMAGENET)
"""Valid ``encoder_weights`` values: None (random initialisation) or ``"imagenet"``."""


class EncoderWeights(OptionEnum):
    """Initial encoder weights as an option (``--encoder-weights``): ``none`` or ``imagenet``."""

    NONE = "none"
    IMAGENET = "imagenet"

    @property
    def config_value(self) -> str | None:
        """The configs' ``encoder_weights`` value: None or ``"imagenet"``."""
        return None if self is EncoderWeights.NONE else self.value

DEFAULT_TIMEOUT_S: Final[float] = 5.0
_SMP_FILES: Final[tuple[str, ...]] = ("config.json", "model.safetensors")
_CACHE_HINT: Final[str] = (
    "use encoder_weights=None or place the weights in the torch/huggingface cache"
)


def check_encoder_weights(encoder_weights: str | None) -> str | None:
    """Validate an ``encoder_weights`` value.

    Args:
        encoder_weights: None or ``"imagenet"``.

    Returns:
        The value, unchanged.

    Raises:
        ConfigError: Any other value; the message lists the valid ones.
    """
    if encoder_weights not in ENCODER_WEIGHTS_CHOICES:
        raise ConfigError(
            f"unknown encoder_weights {encoder_weights!r}; valid values: None, {IMAGENET!r}"
        )
    return encoder_weights


def _unavailable(encoder: str, reason: str) -> WeightsUnavailableError:
    reason = " ".join(reason.split())  # one line
    return WeightsUnavailableError(
        f"ImageNet weights for {encoder} could not be downloaded ({reason}); {_CACHE_HINT}"
    )


def _probe_target(url: str) -> tuple[str, int]:
    """Host and port a connection to ``url`` goes to first: the HTTPS proxy if one is set."""
    parsed = urllib.parse.urlparse(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme) if parsed.hostname else None
    if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return host, port


def _unreachable_reason(url: str, timeout_s: float) -> str | None:
    """Why the server of ``url`` cannot be reached within ``timeout_s``, or None if it can.

    Runs in a daemon thread so that a slow DNS lookup (which ignores socket timeouts)
    cannot block the caller for longer than ``timeout_s``.
    """
    host, port = _probe_target(url)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot connect to {host}:{port}: {exc}")

    thread = threading.Thread(target=probe, name="brats-weights-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        return f"no answer from {host}:{port} within {timeout_s:g} s"
    return outcome[0]


def ensure_smp_encoder_weights(
    encoder_name: str, encoder_weights: str | None, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> None:
    """Make sure an smp encoder's pretrained weights are in the Hugging Face cache.

    Afterwards ``smp.Unet(encoder_name, encoder_weights=...)`` loads them from the cache
    without touching the network (smp pins a commit, which huggingface_hub resolves
    locally). Does nothing for ``encoder_weights=None``.

    Args:
        encoder_name: An smp encoder name such as ``"resnet18"``.
        encoder_weights: None or ``"imagenet"``.
        timeout_s: Bound on the connectivity probe and on each network wait.

    Raises:
        ConfigError: ``encoder_weights`` is invalid, or the encoder has no ImageNet
            weights in smp (timm ``tu-`` encoders are not supported here).
        WeightsUnavailableError: The weights are not cached and cannot be downloaded.
    """
    if check_encoder_weights(encoder_weights) is None:
        return
    from huggingface_hub import constants as hf_constants
    from huggingface_hub import hf_hub_download
    from segmentation_models_pytorch.encoders import encoders as smp_encoders

    settings = smp_encoders.get(encoder_name, {}).get("pretrained_settings", {})
    if encoder_weights not in settings:
        raise ConfigError(
            f"encoder {encoder_name!r} has no {encoder_weights!r} weights in "
            "segmentation-models-pytorch; use encoder_weights=None"
        )
    repo_id = str(settings[encoder_weights]["repo_id"])
    revision = str(settings[encoder_weights]["revision"])

    missing: list[str] = []
    for filename in _SMP_FILES:
        try:
            hf_hub_download(repo_id, filename, revision=revision, local_files_only=True)
        except Exception:  # LocalEntryNotFoundError and friends: not cached
            missing.append(filename)
    if not missing:
        logger.debug("ImageNet weights for %s found in the Hugging Face cache", encoder_name)
        return
    if hf_constants.is_offline_mode():
        raise _unavailable(encoder_name, "HF_HUB_OFFLINE is set and they are not cached")
    reason = _unreachable_reason(hf_constants.ENDPOINT, timeout_s)
    if reason is not None:
        raise _unavailable(encoder_name, reason)
    logger.info("downloading ImageNet weights for %s from %s", encoder_name, repo_id)
    for filename in missing:
        try:
            hf_hub_download(repo_id, filename, revision=revision, etag_timeout=timeout_s)
        except Exception as exc:  # network, HTTP and file-system errors alike
            raise _unavailable(encoder_name, f"{type(exc).__name__}: {exc}") from exc


@contextmanager
def _socket_default_timeout(seconds: float) -> Iterator[None]:
    """Bound every blocking socket read (urllib has no timeout of its own) for one block."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def resnet50_imagenet_state_dict(*, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Tensor]:
    """torchvision's ResNet-50 ImageNet weights (``ResNet50_Weights.IMAGENET1K_V1``).

    ``IMAGENET1K_V1`` is what ``resnet50(pretrained=True)`` gave, as the paper used.
    Loaded from ``torch.hub.get_dir()/checkpoints`` when cached, else downloaded there.

    Args:
        timeout_s: Bound on the connectivity probe. During a download each socket read
            waits at most ``max(timeout_s, 30)`` s: the process-wide default socket timeout
            is set for the download only and restored afterwards.

    Returns:
        The state dict of a 1000-class torchvision ResNet-50.

    Raises:
        WeightsUnavailableError: Not cached and cannot be downloaded, or the file is corrupt.
    """
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.IMAGENET1K_V1
    url = str(weights.url)
    cached = (
        Path(torch.hub.get_dir())
        / "checkpoints"
        / os.path.basename(urllib.parse.urlparse(url).path)
    )
    if not cached.is_file():
        reason = _unreachable_reason(url, timeout_s)
        if reason is not None:
            raise _unavailable("resnet50", reason)
        logger.info("downloading ImageNet weights for resnet50 from %s", url)
    try:
        if cached.is_file():
            state: dict[str, Tensor] = weights.get_state_dict(progress=False)
        else:
            with _socket_default_timeout(max(timeout_s, 30.0)):
                state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # urllib, hash and unpickling errors alike
        raise _unavailable("resnet50", f"{type(exc).__name__}: {exc}") from exc
    return state
