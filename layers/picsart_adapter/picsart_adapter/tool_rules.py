"""What Picsart's spec states only in prose, for the tool models generated from it (`make tool-models`).

Hand-written, and the only hand-written part of the models. `local/picsart_local/toolgen.py` reads the three
tables below when it generates `tool_models/`: `REQUIRED` and `BOUNDS` become part of the fields, and each
name in `CHECKS` becomes a validator of the tool's model that calls the function of that name here. The
generator refuses an entry that restates the spec or names a field or tool the spec does not have, and
tests/unit/test_tool_models.py allows exactly these differences between the models and the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from picsart_adapter.tool_models.removebg import RemoveBackgroundParameters

#: Fields the spec leaves optional that a call cannot do without. Each of these tools works on a second image
#: given as a file, a URL or an id ("If this parameter is present, the other ... source parameters must be
#: empty"); the models keep only the URL (no file bytes, no deprecated ids), so the URL is the one source left.
REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "color-transfer": ("reference_image_url",),  # "transfers the color style from a reference image"
    "styletransfer": ("reference_image_url",),  # "transfers a style from a reference image"
    "surfacemap": ("mask_url", "sticker_url"),  # "Using a mask, ... maps the sticker pixels"
    "watermark": ("watermark_url",),  # "Add watermark to your image"
    "blend": ("overlay_image_url",),  # "combine a base image with another visual layer"
}

#: Bounds the spec states in a description, or values Picsart cannot mean where it states none (a 0-pixel
#: background, an empty color), as JSON Schema keywords.
BOUNDS: Final[dict[str, dict[str, dict[str, Any]]]] = {
    "removebg": {
        "bg_width": {"minimum": 1},
        "bg_height": {"minimum": 1},
        "bg_color": {"minLength": 1},
        "stroke_color": {"minLength": 1},
    },
    "effects-previews": {"effect_names": {"maxItems": 10}},  # "Select up to 10 effects"
    "masks-previews": {
        "mask": {"maxItems": 10},  # "Select up to 10 mask types"
        "preview_size": {"maximum": 240},  # "The max value is 240px"
    },
}

#: Rules between fields, by tool: each name is a function below, called by the generated model's validator.
CHECKS: Final[dict[str, tuple[str, ...]]] = {
    "removebg": ("one_background_only", "custom_shadow_needs_both_offsets"),
}


def one_background_only(parameters: RemoveBackgroundParameters) -> None:
    """Spec (bg_color): "If this parameter is present, the other bg_ parameters must be empty" (else 422)."""
    if parameters.bg_color is not None and parameters.bg_image_url is not None:
        raise ValueError("bg_color and bg_image_url exclude each other: give one background only")


def custom_shadow_needs_both_offsets(parameters: RemoveBackgroundParameters) -> None:
    """Spec (shadow_offset_x/_y): "This is mandatory to specify when shadow=custom"."""
    if parameters.shadow == "custom" and (parameters.shadow_offset_x is None or parameters.shadow_offset_y is None):
        raise ValueError("shadow=custom needs both shadow_offset_x and shadow_offset_y")
