"""Validation of /removebg and /upscale parameters, following Picsart's OpenAPI description.

Parameters arrive either as multipart/form-data (text fields are strings, so integers come as
"50") or as a JSON object (values must already have their JSON type). Every failure is a 422 whose
detail starts with the field name. An ``image_url`` is never echoed back: it may carry a presigned
signature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit

from PIL import ImageColor

from .errors import ApiError

OutputFormat = Literal["JPG", "PNG", "WEBP"]
BodyKind = Literal["form", "json"]
Colour = tuple[int, int, int, int]

FORMATS: tuple[str, ...] = ("JPG", "PNG", "WEBP")
MAX_URL_LENGTH = 2083
INPUT_FIELDS: tuple[str, ...] = ("image", "image_url", "image_id")

_INT_TEXT = re.compile(r"[+-]?\d+")
_HEX_COLOUR = re.compile(r"[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8}")


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart body."""

    data: bytes
    filename: str | None


@dataclass(frozen=True)
class ImageSource:
    """Where an input image comes from: a URL to fetch or an uploaded file."""

    url: str | None = None
    upload: Upload | None = None


@dataclass(frozen=True)
class RemoveBgOptions:
    """The /removebg parameters the emulator renders; the others are validated only."""

    output_type: Literal["mask", "cutout"] = "cutout"
    bg_color: Colour | None = None
    bg_image: ImageSource | None = None
    format: OutputFormat = "PNG"


@dataclass(frozen=True)
class UpscaleOptions:
    """The /upscale parameters."""

    upscale_factor: int = 2
    format: OutputFormat = "JPG"


ToolName = Literal["removebg", "upscale", "ultra-upscale"]


@dataclass(frozen=True)
class ToolRequest:
    """A validated tool call."""

    tool: ToolName
    source: ImageSource
    options: RemoveBgOptions | UpscaleOptions


# Raw values as the body parser hands them over: for a form, a list of strings or uploads per
# field (repeated fields stay visible); for JSON, the decoded value.
RawValue = object
RawParams = Mapping[str, RawValue]


@dataclass(frozen=True)
class _Spec:
    """How one parameter is checked."""

    kind: Literal["int", "enum", "bool", "colour", "url", "str", "file"]
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str | int, ...] = ()
    nullable: bool = False


_PERCENT = _Spec("int", 0, 100, nullable=True)
_OFFSET = _Spec("int", -100, 100, nullable=True)
_MODELS_FORM = (
    "urn:air:picsart:model:picsart:sod@8.2",
    "urn:air:picsart:model:picsart:sod@10",
    "urn:air:picsart:model:picsart:sod@10.1",
    "urn:air:picsart:model:picsart:sod@11",
)
_MODELS_JSON = ("urn:air:picsart:model:picsart:sod@10",)

_IMAGE_SPECS: dict[str, _Spec] = {
    "image": _Spec("file"),
    "image_url": _Spec("url"),
    "image_id": _Spec("str"),
}

# RemoveBackgroundParameters (multipart) from the spec, in its order.
_REMOVEBG_SPECS: dict[str, _Spec] = {
    "output_type": _Spec("enum", choices=("mask", "cutout")),
    "bg_image": _Spec("file", nullable=True),
    "bg_image_url": _Spec("url", nullable=True),
    "bg_image_id": _Spec("str", nullable=True),
    "bg_color": _Spec("colour", nullable=True),
    "bg_blur": _Spec("int", 0, 100),
    "bg_width": _Spec("int", 1, None),
    "bg_height": _Spec("int", 1, None),
    "scale": _Spec("enum", choices=("fit", "fill")),
    "auto_center": _Spec("bool"),
    "stroke_size": _PERCENT,
    "stroke_color": _Spec("colour", nullable=True),
    "stroke_opacity": _PERCENT,
    "shadow": _Spec(
        "enum",
        choices=(
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
        ),
    ),
    "shadow_opacity": _PERCENT,
    "shadow_blur": _PERCENT,
    "shadow_offset_x": _OFFSET,
    "shadow_offset_y": _OFFSET,
    "model": _Spec("enum", choices=_MODELS_FORM, nullable=True),
    "format": _Spec("enum", choices=FORMATS),
}

# RemoveBackgroundParametersJSON: no file parts, and a single model.
_REMOVEBG_JSON_SPECS: dict[str, _Spec] = {
    name: (_Spec("enum", choices=_MODELS_JSON, nullable=True) if name == "model" else spec)
    for name, spec in _REMOVEBG_SPECS.items()
    if name not in ("bg_image", "bg_image_id")
}

_UPSCALE_SPECS: dict[str, _Spec] = {
    "upscale_factor": _Spec("enum", choices=(2, 4, 6, 8)),
    "format": _Spec("enum", choices=FORMATS),
}

# UpscaleUltraParameters: upscale_factor 2-16 (default 2); product_type and mode are deprecated but accepted.
_ULTRA_UPSCALE_SPECS: dict[str, _Spec] = {
    "upscale_factor": _Spec("enum", choices=tuple(range(2, 17))),
    "product_type": _Spec("enum", choices=("product", "portrait", "nature", "graphics"), nullable=True),
    "image_type": _Spec("enum", choices=("product", "portrait", "nature", "graphics"), nullable=True),
    "mode": _Spec("enum", choices=("sync", "async", "auto")),
    "format": _Spec("enum", choices=FORMATS),
}


def url_path(value: object) -> str | None:
    """The path part of a URL-ish value, for the call log (never the query string)."""
    if not isinstance(value, str):
        return None
    try:
        return urlsplit(value).path
    except ValueError:
        return None


def first_text(params: RawParams, name: str) -> object:
    """The single value of a field as given, unwrapping a one-element form list."""
    value = params.get(name)
    if isinstance(value, list) and len(value) == 1:
        return cast(object, value[0])
    return value


def validate(tool: ToolName, params: RawParams, kind: BodyKind) -> ToolRequest:
    """Check a tool call's parameters; raise `ApiError` 422 naming the first bad field."""
    specs = _ULTRA_UPSCALE_SPECS if tool == "ultra-upscale" else _UPSCALE_SPECS
    if tool == "removebg":
        specs = _REMOVEBG_SPECS if kind == "form" else _REMOVEBG_JSON_SPECS
    allowed = {**_IMAGE_SPECS, **specs}
    if kind == "json":
        # ImageParametersJSON carries no file part.
        allowed.pop("image")

    if kind == "json" and "image" in params:
        raise ApiError(422, "image: a file upload needs a multipart/form-data body; use image_url")
    unknown = sorted(name for name in params if name not in allowed)
    if unknown:
        raise ApiError(422, f"{unknown[0]}: unknown parameter for /{tool}")

    values: dict[str, object] = {}
    for name, spec in allowed.items():
        if name in params:
            value = _check(name, spec, params[name], kind)
            if value is not None:
                values[name] = value

    source = _image_source(values, "image", "image_url", "image_id", required=True)
    assert source is not None  # required=True never returns None
    if tool == "ultra-upscale":
        return ToolRequest(
            tool="ultra-upscale",
            source=source,
            options=UpscaleOptions(
                upscale_factor=cast(int, values.get("upscale_factor", 2)),
                format=cast(OutputFormat, values.get("format", "JPG")),
            ),
        )
    if tool == "upscale":
        if "upscale_factor" not in values:
            raise ApiError(422, "upscale_factor: required parameter is missing (one of 2, 4, 6, 8)")
        return ToolRequest(
            tool="upscale",
            source=source,
            options=UpscaleOptions(
                upscale_factor=cast(int, values["upscale_factor"]),
                format=cast(OutputFormat, values.get("format", "JPG")),
            ),
        )
    return ToolRequest(tool="removebg", source=source, options=_removebg_options(values))


def _removebg_options(values: Mapping[str, object]) -> RemoveBgOptions:
    bg_image = _image_source(values, "bg_image", "bg_image_url", "bg_image_id", required=False)
    if "bg_color" in values and bg_image is not None:
        raise ApiError(422, "bg_color: must be empty when a bg_image, bg_image_url or bg_image_id is given")
    if values.get("shadow") == "custom":
        for name in ("shadow_offset_x", "shadow_offset_y"):
            if name not in values:
                raise ApiError(422, f"{name}: required when shadow=custom")
    return RemoveBgOptions(
        output_type=cast(Literal["mask", "cutout"], values.get("output_type", "cutout")),
        bg_color=cast(Colour | None, values.get("bg_color")),
        bg_image=bg_image,
        format=cast(OutputFormat, values.get("format", "PNG")),
    )


def _image_source(
    values: Mapping[str, object], file_name: str, url_name: str, id_name: str, *, required: bool
) -> ImageSource | None:
    """Exactly one of the three sources (or none, when not required)."""
    given = [name for name in (file_name, url_name, id_name) if name in values]
    if len(given) > 1:
        raise ApiError(
            422,
            f"{given[0]}: only one of {file_name}, {url_name}, {id_name} may be given (got {', '.join(given)})",
        )
    if not given:
        if required:
            raise ApiError(422, f"{url_name}: one of {file_name}, {url_name} or {id_name} is required")
        return None
    if id_name in values:
        raise ApiError(422, f"{id_name}: {id_name} is not supported by the emulator; use {url_name}")
    if url_name in values:
        return ImageSource(url=cast(str, values[url_name]))
    return ImageSource(upload=cast(Upload, values[file_name]))


def _check(name: str, spec: _Spec, raw: object, kind: BodyKind) -> object:
    """Validate one raw value; None means "treated as absent"."""
    if kind == "form":
        if not isinstance(raw, list):
            raw = [raw]
        items = cast(Sequence[object], raw)
        if len(items) != 1:
            raise ApiError(422, f"{name}: expected a single value, got {len(items)}")
        value = items[0]
        if spec.kind == "file":
            if not isinstance(value, Upload):
                raise ApiError(422, f"{name}: must be a file part")
            return value
        if isinstance(value, Upload):
            raise ApiError(422, f"{name}: must be a text field, not a file part")
        text = cast(str, value)
        if text == "" and spec.nullable:
            return None
        return _check_text(name, spec, text)

    if raw is None:
        if spec.nullable:
            return None
        raise ApiError(422, f"{name}: must not be null")
    if isinstance(raw, list | dict):
        raise ApiError(422, f"{name}: must be a single value, not an array or object")
    return _check_json(name, spec, raw)


def _check_text(name: str, spec: _Spec, text: str) -> object:
    """A multipart text field: every type arrives as a string."""
    if spec.kind == "int":
        if not _INT_TEXT.fullmatch(text):
            raise ApiError(422, f"{name}: must be an integer{_range_words(spec)} (got {_shown(text)})")
        return _check_range(name, spec, int(text))
    if spec.kind == "enum":
        if spec.choices and isinstance(spec.choices[0], int):
            if _INT_TEXT.fullmatch(text) and int(text) in spec.choices:
                return int(text)
            raise ApiError(422, f"{name}: must be one of {_choices(spec)} (got {_shown(text)})")
        if text not in spec.choices:
            raise ApiError(422, f"{name}: must be one of {_choices(spec)} (got {_shown(text)})")
        return text
    if spec.kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ApiError(422, f"{name}: must be true or false (got {_shown(text)})")
        return text.lower() == "true"
    return _check_string(name, spec, text)


def _check_json(name: str, spec: _Spec, value: object) -> object:
    """A JSON value: it must already have the declared type."""
    if spec.kind == "int" or (spec.kind == "enum" and spec.choices and isinstance(spec.choices[0], int)):
        # bool is an int in Python but not in JSON.
        if not isinstance(value, int) or isinstance(value, bool):
            raise ApiError(422, f"{name}: must be an integer (got {type(value).__name__})")
        if spec.kind == "enum":
            if value not in spec.choices:
                raise ApiError(422, f"{name}: must be one of {_choices(spec)} (got {value})")
            return value
        return _check_range(name, spec, value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ApiError(422, f"{name}: must be a boolean (got {type(value).__name__})")
        return value
    if not isinstance(value, str):
        raise ApiError(422, f"{name}: must be a string (got {type(value).__name__})")
    if spec.kind == "enum":
        if value not in spec.choices:
            raise ApiError(422, f"{name}: must be one of {_choices(spec)} (got {_shown(value)})")
        return value
    if value == "" and spec.nullable:
        return None
    return _check_string(name, spec, value)


def _check_string(name: str, spec: _Spec, text: str) -> object:
    """String kinds shared by both body types: url, colour, plain string."""
    if spec.kind == "url":
        return _check_url(name, text)
    if spec.kind == "colour":
        return _parse_colour(name, text)
    if spec.kind == "str":
        if text == "":
            raise ApiError(422, f"{name}: must not be empty")
        return text
    raise ApiError(422, f"{name}: unexpected value")


def _check_url(name: str, url: str) -> str:
    # The URL itself is never put in the detail: it may be a presigned URL with a signature.
    if not 1 <= len(url) <= MAX_URL_LENGTH:
        raise ApiError(422, f"{name}: must be 1 to {MAX_URL_LENGTH} characters long (got {len(url)})")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ApiError(422, f"{name}: is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ApiError(422, f"{name}: must be an absolute http or https URL")
    return url


def _parse_colour(name: str, text: str) -> Colour:
    """A hex colour (#rgb, #rgba, #rrggbb, #rrggbbaa, '#' optional) or a colour name."""
    spec = f"#{text}" if _HEX_COLOUR.fullmatch(text) else text
    try:
        rgb = ImageColor.getrgb(spec)
    except ValueError:
        raise ApiError(422, f"{name}: must be a hex colour code or a colour name (got {_shown(text)})") from None
    if len(rgb) == 3:
        return (rgb[0], rgb[1], rgb[2], 255)
    return (rgb[0], rgb[1], rgb[2], rgb[3])


def _check_range(name: str, spec: _Spec, value: int) -> int:
    if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
        raise ApiError(422, f"{name}: must be an integer{_range_words(spec)} (got {value})")
    return value


def _range_words(spec: _Spec) -> str:
    if spec.minimum is not None and spec.maximum is not None:
        return f" from {spec.minimum} to {spec.maximum}"
    if spec.minimum is not None:
        return f" of at least {spec.minimum}"
    return ""


def _choices(spec: _Spec) -> str:
    return ", ".join(str(choice) for choice in spec.choices)


def _shown(text: str) -> str:
    """A user value quoted for a detail, cut short so that a detail stays readable."""
    return repr(text if len(text) <= 60 else text[:57] + "...")
