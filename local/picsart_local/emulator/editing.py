"""``POST /edit`` (Basic Editing): resize, crop, flip, rotate and perspective, in that order, with Pillow.

The spec's EditParameters, read as follows:

- ``size`` overrides both ``width`` and ``height``. A side larger than the image's is the image's own (the spec:
  "the original size of the image will be selected"), and one below 1 is 1, so an edit never enlarges.
- ``mode=resize`` fits the image inside ``width`` x ``height`` keeping its proportions; with one side given, the
  other follows the aspect ratio. A size given without a ``mode`` resizes too. No size: no resizing or cropping.
- ``mode=crop`` cuts a ``width`` x ``height`` window (a side not given is the whole side) centred on
  ``crop_x``, ``crop_y`` when given, else placed by ``crop_anchor`` (the centre by default), kept inside the image.
- ``flip`` mirrors; ``rotate`` turns clockwise by that many degrees, the canvas growing to hold the turned image
  (corners transparent, white in a JPG); ``perspective_horizontal``/``_vertical`` (degrees) narrow the right or
  left edge (bottom or top for vertical) as if the picture were tilted away.
- ``quality`` is the JPG and WEBP encoder's quality; ``format`` defaults to JPG.
"""

from __future__ import annotations

import math

from PIL import Image, ImageOps

from . import imaging
from .toolkit import Tool, ToolCall, ToolOutput
from .validation import FORMAT, Param

_ANCHORS = ("center", "top-left", "top-right", "bottom-left", "bottom-right")
_NULLABLE_INT = Param("int", nullable=True)

EDIT_PARAMS: dict[str, Param] = {
    "format": FORMAT,
    "mode": Param("enum", choices=("resize", "crop"), nullable=True),
    "size": _NULLABLE_INT,
    "width": _NULLABLE_INT,
    "height": _NULLABLE_INT,
    "crop_x": _NULLABLE_INT,
    "crop_y": _NULLABLE_INT,
    "crop_anchor": Param("enum", choices=_ANCHORS, nullable=True),
    "flip": Param("enum", choices=("horizontal", "vertical")),
    "rotate": Param("float", -180.0, 180.0),
    "perspective_horizontal": Param("int", -45, 45),
    "perspective_vertical": Param("int", -45, 45),
    "quality": Param("int", 10, 100),
}

_TRANSPARENT = (0, 0, 0, 0)


def resize_to_fit(image: Image.Image, width: int | None, height: int | None) -> Image.Image:
    """Scale down to fit ``width`` x ``height`` (either may be None: follow the aspect ratio)."""
    w, h = image.size
    scales = [side / whole for side, whole in ((width, w), (height, h)) if side is not None]
    if not scales:
        return image
    scale = min(scales)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def crop_window(
    image: Image.Image,
    width: int | None,
    height: int | None,
    *,
    centre: tuple[int | None, int | None] = (None, None),
    anchor: str = "center",
) -> Image.Image:
    """Cut a window of the given size, centred on ``centre`` when given, else placed by ``anchor``."""
    w, h = image.size
    cw, ch = width or w, height or h
    cx, cy = centre
    if cx is not None or cy is not None:
        left = (cx if cx is not None else w // 2) - cw // 2
        top = (cy if cy is not None else h // 2) - ch // 2
    else:
        left = 0 if "left" in anchor else (w - cw if "right" in anchor else (w - cw) // 2)
        top = 0 if "top" in anchor else (h - ch if "bottom" in anchor else (h - ch) // 2)
    left = min(max(0, left), w - cw)
    top = min(max(0, top), h - ch)
    return image.crop((left, top, left + cw, top + ch))


def rotate(image: Image.Image, degrees: float) -> Image.Image:
    """Turn clockwise, growing the canvas; quarter turns are exact, other angles leave transparent corners."""
    if degrees % 90 == 0:
        return image.rotate(-degrees, expand=True)
    return image.convert("RGBA").rotate(
        -degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=_TRANSPARENT
    )


def perspective(image: Image.Image, horizontal: int, vertical: int) -> Image.Image:
    """Tilt the picture away: the source's far edge is widened so that it comes out narrower."""
    if horizontal == 0 and vertical == 0:
        return image
    w, h = image.size
    dh = h * math.tan(math.radians(abs(horizontal))) / 4
    dv = w * math.tan(math.radians(abs(vertical))) / 4
    left, right = (dh if horizontal < 0 else 0.0), (dh if horizontal > 0 else 0.0)
    top, bottom = (dv if vertical < 0 else 0.0), (dv if vertical > 0 else 0.0)
    # The source quadrilateral mapped onto the output: upper-left, lower-left, lower-right, upper-right.
    quad = (-top, -left, -bottom, h + left, w + bottom, h + right, w + top, -right)
    return image.convert("RGBA").transform(
        (w, h), Image.Transform.QUAD, quad, resample=Image.Resampling.BICUBIC, fillcolor=_TRANSPARENT
    )


def _side(value: int | None, whole: int) -> int | None:
    return None if value is None else min(max(1, value), whole)


def _edit(call: ToolCall) -> ToolOutput:
    image = call.image()
    w, h = image.size
    size: int | None = call.get("size", None)
    width = _side(size if size is not None else call.get("width", None), w)
    height = _side(size if size is not None else call.get("height", None), h)
    mode: str | None = call.get("mode", None)
    if mode == "crop":
        centre: tuple[int | None, int | None] = (call.get("crop_x", None), call.get("crop_y", None))
        image = crop_window(image, width, height, centre=centre, anchor=call.get("crop_anchor", "center"))
    elif width is not None or height is not None:
        image = resize_to_fit(image, width, height)
    flip: str | None = call.get("flip", None)
    if flip == "horizontal":
        image = ImageOps.mirror(image)
    elif flip == "vertical":
        image = ImageOps.flip(image)
    degrees: float = call.get("rotate", 0.0)
    if degrees:
        image = rotate(image, degrees)
    image = perspective(image, call.get("perspective_horizontal", 0), call.get("perspective_vertical", 0))
    return imaging.encode(image, call.format, quality=call.get("quality", 90))


EDIT = Tool("edit", "/edit", EDIT_PARAMS, _edit)
