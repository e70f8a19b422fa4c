"""The Picsart tools this adapter calls, and their parameters as Picsart's OpenAPI spec defines them.

Each model follows the spec's types, ranges and enums (`image-tools-openapi.yml`, components/schemas), so a
value Picsart would answer 422 to is refused here first, naming the field. Input parameters (`image`,
`image_url`, `image_id`) are not tool parameters: the adapter always sends exactly one input, `image_url`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ImageFormat = Literal["JPG", "PNG", "WEBP"]
ToolName = Literal["removebg", "upscale", "ultra-upscale"]

#: Content type and file extension of each output format.
FORMAT_MEDIA: dict[str, tuple[str, str]] = {
    "JPG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}


class ToolParameters(BaseModel):
    """Base of the tool parameter models: unknown fields and loose types are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def form_fields(self) -> dict[str, str]:
        """The parameters as multipart form fields: only those set, booleans as `true`/`false`."""
        fields: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            fields[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return fields


Percent = Field(default=None, ge=0, le=100)
Offset = Field(default=None, ge=-100, le=100)
Url = Field(default=None, min_length=1, max_length=2083, pattern=r"^https?://")


class RemoveBackgroundParameters(ToolParameters):
    """`POST /removebg` (schema RemoveBackgroundParameters). The binary and deprecated id variants of the
    background image are left out: the adapter sends no file bytes and no deprecated ids."""

    output_type: Literal["mask", "cutout"] | None = None
    bg_image_url: str | None = Url
    bg_color: str | None = Field(default=None, min_length=1)
    bg_blur: int | None = Percent
    bg_width: int | None = Field(default=None, ge=1)
    bg_height: int | None = Field(default=None, ge=1)
    scale: Literal["fit", "fill"] | None = None
    auto_center: bool | None = None
    stroke_size: int | None = Percent
    stroke_color: str | None = Field(default=None, min_length=1)
    stroke_opacity: int | None = Percent
    shadow: (
        Literal[
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
        ]
        | None
    ) = None
    shadow_opacity: int | None = Percent
    shadow_blur: int | None = Percent
    shadow_offset_x: int | None = Offset
    shadow_offset_y: int | None = Offset
    model: (
        Literal[
            "urn:air:picsart:model:picsart:sod@8.2",
            "urn:air:picsart:model:picsart:sod@10",
            "urn:air:picsart:model:picsart:sod@10.1",
            "urn:air:picsart:model:picsart:sod@11",
        ]
        | None
    ) = None
    format: ImageFormat | None = None

    @model_validator(mode="after")
    def _rules_between_fields(self) -> RemoveBackgroundParameters:
        # The spec's descriptions state these; Picsart answers 422 when they are broken.
        if self.bg_color is not None and self.bg_image_url is not None:
            raise ValueError("bg_color and bg_image_url exclude each other: give one background only")
        if self.shadow == "custom" and (self.shadow_offset_x is None or self.shadow_offset_y is None):
            raise ValueError("shadow=custom needs both shadow_offset_x and shadow_offset_y")
        return self


class UpscaleParameters(ToolParameters):
    """`POST /upscale` (schema UpscaleParameters): `upscale_factor` is mandatory."""

    upscale_factor: Literal[2, 4, 6, 8]
    format: ImageFormat | None = None


class UpscaleUltraParameters(ToolParameters):
    """`POST /upscale/ultra` (schema UpscaleUltraParameters). The deprecated `product_type` and `mode` are
    left out: `image_type` replaces the first, the `Prefer` header the second."""

    upscale_factor: Literal[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16] | None = None
    image_type: Literal["product", "portrait", "nature", "graphics"] | None = None
    format: ImageFormat | None = None


@dataclass(frozen=True)
class Tool:
    """One Picsart tool: where it lives, what it takes and what it gives back by default.

    An asynchronous tool is asked to answer at once (`Prefer: respond-async`, 202 with a transaction id);
    its result is polled at `path/<transaction_id>` through the delay queue, never by a sleeping Lambda."""

    name: ToolName
    path: str
    parameters_model: type[ToolParameters]
    default_format: str
    asynchronous: bool = False

    def parse_parameters(self, raw: dict[str, Any]) -> ToolParameters:
        return self.parameters_model.model_validate(raw)

    def output_format(self, parameters: ToolParameters) -> str:
        chosen = getattr(parameters, "format", None)
        return chosen if isinstance(chosen, str) else self.default_format


TOOLS: dict[str, Tool] = {
    "removebg": Tool("removebg", "/removebg", RemoveBackgroundParameters, default_format="PNG"),
    "upscale": Tool("upscale", "/upscale", UpscaleParameters, default_format="JPG"),
    "ultra-upscale": Tool(
        "ultra-upscale", "/upscale/ultra", UpscaleUltraParameters, default_format="JPG", asynchronous=True
    ),
}
