"""Checking a tool call's parameters against a table of `Param`, following Picsart's OpenAPI description.

Parameters arrive either as multipart/form-data (text fields are strings, so integers come as
"50") or as a JSON object (values must already have their JSON type). Every failure is a 422 whose
detail starts with the field name. An ``image_url`` is never echoed back: it may carry a presigned
signature. The tables themselves live with each tool (`tools`).
"""

from __future__ import annotations

import math
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
_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_HEX_COLOUR = re.compile(r"[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8}")
# A form has no null: a nullable field given as "" or as JSON's spelling "null" is absent.
_NULL_TEXTS = frozenset({"", "null"})


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart body."""

    data: bytes
    filename: str | None


@dataclass(frozen=True)
class ImageSource:
    """Where an input image comes from: a URL to fetch, an uploaded file, or the id of an earlier result."""

    url: str | None = None
    upload: Upload | None = None
    image_id: str | None = None


@dataclass(frozen=True)
class Param:
    """How one parameter is checked."""

    kind: Literal["int", "float", "enum", "bool", "colour", "url", "str", "file"]
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str | int, ...] = ()
    nullable: bool = False
    required: bool = False


FORMAT = Param("enum", choices=FORMATS)
PERCENT = Param("int", 0, 100, nullable=True)

#: ImageParameters: the three ways to give the input image.
IMAGE_PARAMS: dict[str, Param] = {
    "image": Param("file"),
    "image_url": Param("url"),
    "image_id": Param("str"),
}

# Raw values as the body parser hands them over: for a form, a list of strings or uploads per
# field (repeated fields stay visible); for JSON, the decoded value.
RawValue = object
RawParams = Mapping[str, RawValue]


@dataclass(frozen=True)
class Checked:
    """A tool call's parameters once checked: the input image and every other value given."""

    source: ImageSource
    values: Mapping[str, object]


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


def check_params(
    form_params: Mapping[str, Param], json_params: Mapping[str, Param], params: RawParams, kind: BodyKind
) -> Checked:
    """Check a tool call's parameters; raise `ApiError` 422 naming the first bad field."""
    allowed = {**IMAGE_PARAMS, **(form_params if kind == "form" else json_params)}
    if kind == "json":
        # ImageParametersJSON carries no file part (nor removebg's JSON a bg_image_id): such a field in JSON is
        # a mistake, not a name the spec does not know.
        allowed.pop("image")
        for name in sorted({"image", *form_params} - set(allowed)):
            if name in params:
                raise ApiError(422, f"{name}: not a parameter of an application/json body; use multipart/form-data")
    # A parameter the spec does not name is ignored: its body schemas do not forbid other properties.

    values: dict[str, object] = {}
    for name, spec in allowed.items():
        if name in params:
            value = _check(name, spec, params[name], kind)
            if value is not None:
                values[name] = value
    source = image_source(values, "image", "image_url", "image_id", required=True)
    assert source is not None  # required=True never returns None
    for name, spec in allowed.items():
        if spec.required and name not in values:
            raise ApiError(422, f"{name}: required parameter is missing{_choices_words(spec)}")
    return Checked(source=source, values=values)


def image_source(
    values: Mapping[str, object], file_name: str, url_name: str, id_name: str, *, required: bool
) -> ImageSource | None:
    """Exactly one of the three sources (or none, when not required).

    The guide: "Avoid providing image, image_url, and image_id simultaneously. Only one of these should be
    included as input."
    """
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
        return ImageSource(image_id=cast(str, values[id_name]))
    if url_name in values:
        return ImageSource(url=cast(str, values[url_name]))
    return ImageSource(upload=cast(Upload, values[file_name]))


def _check(name: str, spec: Param, raw: object, kind: BodyKind) -> object:
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
                if spec.nullable and value in _NULL_TEXTS:
                    return None
                raise ApiError(422, f"{name}: must be a file part")
            return value
        if isinstance(value, Upload):
            raise ApiError(422, f"{name}: must be a text field, not a file part")
        text = cast(str, value)
        if text in _NULL_TEXTS and spec.nullable:
            return None
        return _check_text(name, spec, text)

    if raw is None:
        if spec.nullable:
            return None
        raise ApiError(422, f"{name}: must not be null")
    if isinstance(raw, list | dict):
        raise ApiError(422, f"{name}: must be a single value, not an array or object")
    return _check_json(name, spec, raw)


def _check_text(name: str, spec: Param, text: str) -> object:
    """A multipart text field: every type arrives as a string."""
    if spec.kind == "int":
        if not _INT_TEXT.fullmatch(text):
            raise ApiError(422, f"{name}: must be an integer{_range_words(spec)} (got {_shown(text)})")
        return _check_range(name, spec, int(text))
    if spec.kind == "float":
        if not _FLOAT_TEXT.fullmatch(text):
            raise ApiError(422, f"{name}: must be a number{_range_words(spec)} (got {_shown(text)})")
        return _check_range(name, spec, float(text))
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


def _check_json(name: str, spec: Param, value: object) -> object:
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
    if spec.kind == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ApiError(422, f"{name}: must be a number (got {type(value).__name__})")
        return _check_range(name, spec, float(value))
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


def _check_string(name: str, spec: Param, text: str) -> object:
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


def _check_range(name: str, spec: Param, value: float) -> float:
    if not math.isfinite(value) or (
        (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum)
    ):
        kind = "an integer" if spec.kind == "int" else "a number"
        raise ApiError(422, f"{name}: must be {kind}{_range_words(spec)} (got {value})")
    return value


def _range_words(spec: Param) -> str:
    def shown(bound: float) -> str:
        return str(int(bound)) if spec.kind == "int" else str(bound)

    if spec.minimum is not None and spec.maximum is not None:
        return f" from {shown(spec.minimum)} to {shown(spec.maximum)}"
    if spec.minimum is not None:
        return f" of at least {shown(spec.minimum)}"
    return ""


def _choices_words(spec: Param) -> str:
    return f" (one of {_choices(spec)})" if spec.choices else ""


def _choices(spec: Param) -> str:
    return ", ".join(str(choice) for choice in spec.choices)


def _shown(text: str) -> str:
    """A user value quoted for a detail, cut short so that a detail stays readable."""
    return repr(text if len(text) <= 60 else text[:57] + "...")
