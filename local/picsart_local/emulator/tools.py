"""The emulator's tools and routes, each at its path in Picsart's spec, with its own copy of the spec's tables.

The tables are kept here rather than imported from the adapter's generated models, so that the emulator stays
an independent oracle of the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from . import imaging
from .editing import EDIT
from .effects import EFFECTS_TOOL, effect_names_payload
from .errors import ApiError
from .retouch import ADJUST, ENHANCE_FACE
from .tagging import TAGS
from .toolkit import Tool, ToolCall, ToolOutput
from .validation import FORMAT, PERCENT, Checked, Colour, Param, image_source

# --- removebg ------------------------------------------------------------------------------------

_OFFSET = Param("int", -100, 100, nullable=True)
_MODELS_FORM = (
    "urn:air:picsart:model:picsart:sod@8.2",
    "urn:air:picsart:model:picsart:sod@10",
    "urn:air:picsart:model:picsart:sod@10.1",
    "urn:air:picsart:model:picsart:sod@11",
)
_MODELS_JSON = ("urn:air:picsart:model:picsart:sod@10",)
_SHADOWS = (
    "disabled",
    "custom",
    "bottom-right",
    "bottom",
    "bottom-left",
    "left",
    "right",
    "top-left",
    "top",
    "top-right",
)

# RemoveBackgroundParameters (multipart) from the spec, in its order.
REMOVEBG_PARAMS: dict[str, Param] = {
    "output_type": Param("enum", choices=("mask", "cutout")),
    "bg_image": Param("file", nullable=True),
    "bg_image_url": Param("url", nullable=True),
    "bg_image_id": Param("str", nullable=True),
    "bg_color": Param("colour", nullable=True),
    "bg_blur": Param("int", 0, 100),
    # Sizes in pixels with no bounds in the spec; the emulator checks them but does not render them.
    "bg_width": Param("int"),
    "bg_height": Param("int"),
    "scale": Param("enum", choices=("fit", "fill")),
    "auto_center": Param("bool"),
    "stroke_size": PERCENT,
    "stroke_color": Param("colour", nullable=True),
    "stroke_opacity": PERCENT,
    "shadow": Param("enum", choices=_SHADOWS),
    "shadow_opacity": PERCENT,
    "shadow_blur": PERCENT,
    "shadow_offset_x": _OFFSET,
    "shadow_offset_y": _OFFSET,
    "model": Param("enum", choices=_MODELS_FORM, nullable=True),
    "format": FORMAT,
}

# RemoveBackgroundParametersJSON: no file parts, and a single model.
REMOVEBG_JSON_PARAMS: dict[str, Param] = {
    name: (Param("enum", choices=_MODELS_JSON, nullable=True) if name == "model" else spec)
    for name, spec in REMOVEBG_PARAMS.items()
    if name not in ("bg_image", "bg_image_id")
}


def _removebg_rules(checked: Checked) -> None:
    """The spec's rules between removebg's parameters, stated in its descriptions."""
    values = checked.values
    bg_image = image_source(values, "bg_image", "bg_image_url", "bg_image_id", required=False)
    if "bg_color" in values and bg_image is not None:
        raise ApiError(422, "bg_color: must be empty when a bg_image, bg_image_url or bg_image_id is given")
    if values.get("shadow") == "custom":
        for name in ("shadow_offset_x", "shadow_offset_y"):
            if name not in values:
                raise ApiError(422, f"{name}: required when shadow=custom")


def _removebg(call: ToolCall) -> ToolOutput:
    image = call.image()
    bg_source = image_source(call.checked.values, "bg_image", "bg_image_url", "bg_image_id", required=False)
    bg_image = call.load("bg_image", bg_source) if bg_source is not None else None
    output_type: Literal["mask", "cutout"] = call.get("output_type", "cutout")
    bg_color: Colour | None = call.get("bg_color", None)
    result = imaging.remove_background(image, output_type=output_type, bg_color=bg_color, bg_image=bg_image)
    return imaging.encode(result, call.format)


# --- upscale, ultra upscale ----------------------------------------------------------------------

UPSCALE_PARAMS: dict[str, Param] = {
    "upscale_factor": Param("enum", choices=(2, 4, 6, 8), required=True),
    "format": FORMAT,
}

_IMAGE_TYPES = ("product", "portrait", "nature", "graphics")
# UpscaleUltraParameters: upscale_factor 2-16 (default 2); product_type and mode are deprecated but accepted.
ULTRA_UPSCALE_PARAMS: dict[str, Param] = {
    "upscale_factor": Param("enum", choices=tuple(range(2, 17))),
    "product_type": Param("enum", choices=_IMAGE_TYPES, nullable=True),
    "image_type": Param("enum", choices=_IMAGE_TYPES, nullable=True),
    "mode": Param("enum", choices=("sync", "async", "auto")),
    "format": FORMAT,
}


def _upscale(call: ToolCall) -> ToolOutput:
    """Upscale inputs are limited in pixels (413 above ``max_upscale_input_pixels``)."""
    image = call.image(max_pixels=call.settings.max_upscale_input_pixels)
    factor: int = call.get("upscale_factor", 2)
    return imaging.encode(imaging.upscale(image, factor), call.format)


# --- the registry --------------------------------------------------------------------------------

_ALL: tuple[Tool, ...] = (
    Tool(
        "removebg",
        "/removebg",
        REMOVEBG_PARAMS,
        _removebg,
        default_format="PNG",
        json_params=REMOVEBG_JSON_PARAMS,
        cross_check=_removebg_rules,
    ),
    Tool("upscale", "/upscale", UPSCALE_PARAMS, _upscale),
    Tool("ultra-upscale", "/upscale/ultra", ULTRA_UPSCALE_PARAMS, _upscale, asynchronous=True),
    ENHANCE_FACE,
    EDIT,
    TAGS,
    ADJUST,
    EFFECTS_TOOL,
)

#: Tool name -> tool.
TOOLS: Mapping[str, Tool] = {tool.name: tool for tool in _ALL}


@dataclass(frozen=True)
class FreeCall:
    """A call that is not a tool: it takes no body and costs no credit (it still counts against the quota)."""

    name: str
    path: str
    #: The 200 answer's body, given the credits left.
    answer: Callable[[int], object]


_FREE: tuple[FreeCall, ...] = (
    FreeCall("balance", "/balance", lambda credits: {"credits": credits}),
    FreeCall("effect-names", "/effects", effect_names_payload),
)
#: Free call name -> free call.
FREE_CALLS: Mapping[str, FreeCall] = {call.name: call for call in _FREE}


def _routes() -> dict[str, dict[str, str]]:
    routes: dict[str, dict[str, str]] = {}
    for tool in _ALL:
        routes.setdefault(tool.path, {})["POST"] = tool.name
    for free in _FREE:
        routes.setdefault(free.path, {})["GET"] = free.name
    return routes


#: Path under /tools/1.0 -> method -> the name recorded for the call (a tool's name, or a free call's).
ROUTES: Mapping[str, Mapping[str, str]] = _routes()
