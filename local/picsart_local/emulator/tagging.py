"""``POST /tags`` (Image Tagging): a data tool, answering ``{"status": "success", "data": {"tags": [...]}}``.

The spec's 200Tagging says only that ``data`` is an object; the emulator puts a list of
``{"label": ..., "confidence": ...}`` in it, derived from the pixels alone, so the same image always gets
the same tags:

- its orientation, ``landscape``, ``portrait`` or ``square`` (sides within 2 % of each other), confidence 1;
- ``transparent`` when at least 1 % of its pixels are mostly transparent, confidence 1;
- the names of its main colours (of ``black``, ``white``, ``gray``, ``red``, ``orange``, ``brown``,
  ``yellow``, ``green``, ``cyan``, ``blue``, ``purple``, ``pink``), each with the share of the opaque
  pixels it covers as confidence, when that share is at least 5 %; at most five.

Tags are sorted by confidence, highest first (ties by label).
"""

from __future__ import annotations

from PIL import Image

from .toolkit import Tool, ToolCall, ToolOutput

# Analysing a thumbnail is enough for shares rounded to three digits, and keeps large inputs cheap.
_SAMPLE_SIDE = 96
_OPAQUE_ALPHA = 128
_MIN_TRANSPARENT_SHARE = 0.01
_MIN_COLOUR_SHARE = 0.05
_MAX_COLOURS = 5
_SQUARE_TOLERANCE = 0.02

# Hue ranges (degrees, upper bound excluded) and their names, for saturated pixels.
_HUES: tuple[tuple[float, str], ...] = (
    (15, "red"),
    (45, "orange"),
    (70, "yellow"),
    (165, "green"),
    (200, "cyan"),
    (260, "blue"),
    (290, "purple"),
    (345, "pink"),
    (361, "red"),
)


def colour_name(hue: int, saturation: int, value: int) -> str:
    """The name of an HSV colour (each channel 0-255, as Pillow's HSV mode has them)."""
    if value < 40:
        return "black"
    if saturation < 40:
        return "white" if value > 200 else "gray"
    degrees = hue * 360 / 255
    for bound, name in _HUES:
        if degrees < bound:
            if name in ("red", "orange") and value < 150 and 10 <= degrees < 45:
                return "brown"
            return name
    return "red"


def orientation(width: int, height: int) -> str:
    """``landscape``, ``portrait`` or ``square``."""
    if abs(width - height) <= _SQUARE_TOLERANCE * max(width, height):
        return "square"
    return "landscape" if width > height else "portrait"


def tags(image: Image.Image) -> list[dict[str, object]]:
    """The tags of an image, as the module docstring describes them."""
    found: list[tuple[str, float]] = [(orientation(*image.size), 1.0)]
    sample = image.copy()
    sample.thumbnail((_SAMPLE_SIDE, _SAMPLE_SIDE), Image.Resampling.NEAREST)
    rgba = sample.convert("RGBA")
    alphas = rgba.getchannel("A").tobytes()
    hsv = rgba.convert("RGB").convert("HSV").tobytes()
    opaque = [
        (hsv[3 * index], hsv[3 * index + 1], hsv[3 * index + 2])
        for index, alpha in enumerate(alphas)
        if alpha >= _OPAQUE_ALPHA
    ]
    if len(alphas) - len(opaque) >= _MIN_TRANSPARENT_SHARE * len(alphas):
        found.append(("transparent", 1.0))
    counts: dict[str, int] = {}
    for hue, saturation, value in opaque:
        name = colour_name(hue, saturation, value)
        counts[name] = counts.get(name, 0) + 1
    shares = sorted(((name, count / len(opaque)) for name, count in counts.items()), key=lambda t: (-t[1], t[0]))
    found.extend((name, share) for name, share in shares[:_MAX_COLOURS] if share >= _MIN_COLOUR_SHARE)
    found.sort(key=lambda t: (-t[1], t[0]))
    return [{"label": label, "confidence": round(confidence, 3)} for label, confidence in found]


def _tags(call: ToolCall) -> ToolOutput:
    return {"tags": tags(call.image())}


TAGS = Tool("tags", "/tags", {}, _tags, result="data")
