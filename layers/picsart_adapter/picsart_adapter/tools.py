"""The Picsart tools this adapter calls, and their parameters as Picsart's OpenAPI spec defines them.

Every tool of the Image API that takes an image is in the generated catalogue (`tool_catalog.py`), with a
model generated from the spec (`tool_models/`, `make tool-models`; docs/picsart-api.md, "The tool catalogue"):
the spec's types, ranges and enums, so a value Picsart would answer 422 to is refused here first, naming the
field. Input parameters (`image`, `image_url`, `image_id`) are not tool parameters: the adapter always sends
exactly one input, `image_url`. A model is imported when its tool is first used, never all of them at once.

`TOOLS` holds the tools a deployment can choose today (`PICSART_TOOL`); `tool(name)` finds any catalogued one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, get_args

from picsart_adapter.tool_base import Tool, ToolParameters
from picsart_adapter.tool_catalog import CATALOG

if TYPE_CHECKING:
    from picsart_adapter.tool_models.removebg import RemoveBackgroundParameters as RemoveBackgroundParameters
    from picsart_adapter.tool_models.ultra_upscale import UpscaleUltraParameters as UpscaleUltraParameters
    from picsart_adapter.tool_models.upscale import UpscaleParameters as UpscaleParameters

__all__ = [
    "FORMAT_MEDIA",
    "TOOLS",
    "ImageFormat",
    "RemoveBackgroundParameters",
    "Tool",
    "ToolName",
    "ToolParameters",
    "UpscaleParameters",
    "UpscaleUltraParameters",
    "tool",
]

ImageFormat = Literal["JPG", "PNG", "WEBP"]
ToolName = Literal["removebg", "upscale", "ultra-upscale"]

#: Content type and file extension of each output format (SVG: the laser engraving effect's).
FORMAT_MEDIA: dict[str, tuple[str, str]] = {
    "JPG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
    "SVG": ("image/svg+xml", "svg"),
}

TOOLS: dict[str, Tool] = {name: CATALOG[name] for name in get_args(ToolName)}

#: The models this module has always named, loaded from their tool's module when first asked for.
_NAMED_MODELS: Final = {
    "RemoveBackgroundParameters": "removebg",
    "UpscaleParameters": "upscale",
    "UpscaleUltraParameters": "ultra-upscale",
}


def tool(name: str) -> Tool:
    """The catalogued tool of that name (kebab-case, e.g. `removebg`, `upscale-enhance`, `tags`)."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a Picsart tool; the catalogue has: {', '.join(CATALOG)}") from None


def __getattr__(name: str) -> type[ToolParameters]:
    # PEP 562: `from picsart_adapter.tools import UpscaleParameters` imports that tool's model only.
    if name in _NAMED_MODELS:
        return CATALOG[_NAMED_MODELS[name]].parameters_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
