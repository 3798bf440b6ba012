"""The slice viewer as HTML: a fragment for ``report.html`` and a page of its own.

The script and style ship with the package (``viewer_assets/viewer.js`` and
``viewer.css``) and are inlined, so the page needs no network and works from ``file://``.
Each volume's payload (:func:`~brats_sdk.report.viewer_data.volume_payload`) sits in its
own ``<script type="application/json">``; the browser parses one only when it is shown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from html import escape
from importlib.resources import files

from brats_sdk.report.figures import CLASS_COLOURS
from brats_sdk.report.viewer_data import VIEWER_REGIONS

__all__ = ["ERROR_COLOURS", "UNCERTAINTY_COLOUR", "viewer_config", "viewer_fragment", "viewer_page"]

#: False-positive and false-negative colours of each region in the error view: warm for
#: voxels predicted but not true, cold for voxels true but missed, none a class colour.
ERROR_COLOURS: dict[str, dict[str, str]] = {
    "WT": {"fp": "#ff00ff", "fn": "#00e5ff"},
    "TC": {"fp": "#ff8c00", "fn": "#2962ff"},
    "ET": {"fp": "#ff80ab", "fn": "#7c4dff"},
}
UNCERTAINTY_COLOUR = "#ff6d00"
_CLASS_NAMES = {"NCR": "NCR/NET (1)", "ED": "ED (2)", "ET": "ET (4)"}


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


@cache
def _asset(name: str) -> str:
    return (files("brats_sdk.report") / "viewer_assets" / name).read_text(encoding="utf-8")


def viewer_config() -> dict[str, object]:
    """Colours and regions the script draws with: the report's BraTS label colours
    (:data:`~brats_sdk.report.figures.CLASS_COLOURS`), :data:`ERROR_COLOURS`, and the
    class indices of each region."""
    return {
        "classes": [{"name": _CLASS_NAMES[k], "colour": _hex(c)} for k, c in CLASS_COLOURS.items()],
        "errors": ERROR_COLOURS,
        "regions": {k: list(v) for k, v in VIEWER_REGIONS.items()},
        "uncertainty": UNCERTAINTY_COLOUR,
    }


def _json_script(payload: object, cls: str, attrs: str = "") -> str:
    # "</" would end the script element early; "<\/" is the same JSON string.
    text = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" class="{cls}"{attrs}>{text}</script>'


def _label(payload: dict[str, object]) -> str:
    name = str(payload.get("name") or "")
    return f"volume {payload['volume']}" + (f": {name}" if name and name != f"volume_{payload['volume']}" else "")


def viewer_fragment(payloads: Sequence[dict[str, object]]) -> str:
    """The viewer of ``payloads`` (one per volume, in selector order) as an HTML fragment.

    Returns:
        Style, the viewer's ``<div class="bv">`` with its data, and the script; an empty
        string when there is no volume.
    """
    if not payloads:
        return ""
    script = _asset("viewer.js")
    if "</script" in script.lower():
        raise RuntimeError("viewer.js must not contain '</script'")
    volumes = "".join(
        _json_script(p, "bv-vol", f' data-volume="{escape(str(p["volume"]))}" data-label="{escape(_label(p))}"') for p in payloads
    )
    return "".join([
        f"<style>{_asset('viewer.css')}</style>",
        '<div class="bv" role="region" aria-label="slice viewer">',
        _json_script(viewer_config(), "bv-config"),
        volumes,
        '<noscript><p class="bv-note">The slice viewer needs JavaScript; the figures below show the same data.</p></noscript>',
        "</div>",
        f"<script>{script}</script>",
    ])


def viewer_page(payloads: Sequence[dict[str, object]], *, title: str, subtitle: str = "") -> str:
    """A self-contained page holding only the viewer.

    Args:
        payloads: One per volume.
        title: Page title and heading.
        subtitle: A line under the heading (inputs, counts).

    Returns:
        The HTML text.
    """
    body = viewer_fragment(payloads) or "<p>No volume to show.</p>"
    return "".join([
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        "<style>body{margin:0;font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1d1d1f}"
        "main{max-width:1200px;margin:0 auto;padding:16px}h1{font-size:1.4em;margin:.2em 0}"
        ".meta{color:#5f6368;font-size:.9em}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(subtitle)}</p>' if subtitle else "",
        body,
        "</main></body></html>\n",
    ])
