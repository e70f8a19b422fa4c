"""Tools that retouch the pixels and keep the size: ``POST /enhance/face`` and ``POST /adjust``.

Face Enhancement stands in for Picsart's model with Pillow filters: a median filter takes out speckle
noise, the levels are stretched, an unsharp mask brings back detail and the colours are lifted a
little.

Adjust applies the spec's eleven adjustments, each 0 meaning no change, in this order: brightness,
contrast, saturation (-100 to 100: a factor of 1 + value/100), hue (-100 to 100: a turn of up to half
the colour wheel), temperature (warmer: more red, less blue), shadows and highlights (lift or lower the
dark or the light tones), clarity (local contrast, or softening when negative), sharpen, vignette
(darker corners) and noise (0 to 100), the noise being the same for the same image.

Both keep transparency.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps

from . import imaging
from .toolkit import Tool, ToolCall, ToolOutput
from .validation import FORMAT, Param

FACE_ENHANCE_PARAMS: dict[str, Param] = {"format": FORMAT}

_SIGNED = Param("int", -100, 100)
_POSITIVE = Param("int", 0, 100)
ADJUST_PARAMS: dict[str, Param] = {
    "brightness": _SIGNED,
    "contrast": _SIGNED,
    "clarity": _SIGNED,
    "saturation": _SIGNED,
    "hue": _SIGNED,
    "shadows": _SIGNED,
    "highlights": _SIGNED,
    "temperature": _SIGNED,
    "sharpen": _POSITIVE,
    "noise": _POSITIVE,
    "vignette": _POSITIVE,
    "format": FORMAT,
}
_NOISE_TILE = 64


def split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """The colour channels (RGB) and the alpha channel, if any, so that filters leave transparency alone."""
    if image.mode in ("RGBA", "LA"):
        return image.convert("RGB"), image.getchannel("A")
    return image.convert("RGB"), None


def join_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Put an alpha channel taken by `split_alpha` back."""
    if alpha is None:
        return rgb
    result = rgb.convert("RGBA")
    result.putalpha(alpha)
    return result


def enhance_face(image: Image.Image) -> Image.Image:
    """Denoise, stretch the levels, sharpen and lift the colours."""
    rgb, alpha = split_alpha(image)
    rgb = rgb.filter(ImageFilter.MedianFilter(3))
    rgb = ImageOps.autocontrast(rgb, cutoff=1)
    rgb = rgb.filter(ImageFilter.UnsharpMask(radius=2, percent=120, threshold=2))
    rgb = ImageEnhance.Color(rgb).enhance(1.1)
    return join_alpha(rgb, alpha)


def lut(function: Callable[[int], float]) -> list[int]:
    """A lookup table for `Image.point`: the function at 0 to 255, rounded and kept within 0 to 255."""
    return [min(255, max(0, round(function(x)))) for x in range(256)]


def add_noise(rgb: Image.Image, sigma: float) -> Image.Image:
    """Grey noise of standard deviation ``sigma``, from a fixed seed so that the same input gives the same output."""
    rng = random.Random(0)
    tile = Image.new("L", (_NOISE_TILE, _NOISE_TILE))
    tile.putdata([min(255, max(0, round(128 + rng.gauss(0, sigma)))) for _ in range(_NOISE_TILE * _NOISE_TILE)])
    noise = Image.new("L", rgb.size)
    for x in range(0, rgb.width, _NOISE_TILE):
        for y in range(0, rgb.height, _NOISE_TILE):
            noise.paste(tile, (x, y))
    return ImageChops.add(rgb, Image.merge("RGB", (noise, noise, noise)), offset=-128)


def vignette(rgb: Image.Image, strength: int) -> Image.Image:
    """Darken towards the corners, by up to ``strength`` percent."""
    distance = Image.radial_gradient("L").resize(rgb.size, Image.Resampling.BILINEAR)
    mask = distance.point(lut(lambda d: strength / 100 * 255 * (d / 255) ** 2))
    return Image.composite(Image.new("RGB", rgb.size), rgb, mask)


def adjust(image: Image.Image, values: dict[str, int]) -> Image.Image:
    """Apply the adjustments given (module docstring); missing or 0 ones change nothing."""
    rgb, alpha = split_alpha(image)
    for name, enhancer in (
        ("brightness", ImageEnhance.Brightness),
        ("contrast", ImageEnhance.Contrast),
        ("saturation", ImageEnhance.Color),
    ):
        if values.get(name):
            rgb = enhancer(rgb).enhance(1 + values[name] / 100)
    if values.get("hue"):
        shift = round(values["hue"] * 128 / 100)
        h, s, v = rgb.convert("HSV").split()
        rgb = Image.merge("HSV", (h.point(lambda x: (x + shift) % 256), s, v)).convert("RGB")
    if values.get("temperature"):
        warmth = values["temperature"] * 0.3
        r, g, b = rgb.split()
        rgb = Image.merge("RGB", (r.point(lut(lambda x: x + warmth)), g, b.point(lut(lambda x: x - warmth))))
    tones = values.get("shadows", 0), values.get("highlights", 0)
    if any(tones):
        shadows, highlights = tones[0] * 0.64, tones[1] * 0.64
        curve = lut(lambda x: x + shadows * (1 - x / 255) ** 2 + highlights * (x / 255) ** 2)
        rgb = rgb.point(curve * 3)
    if values.get("clarity", 0) > 0:
        rgb = rgb.filter(ImageFilter.UnsharpMask(radius=10, percent=values["clarity"] * 2, threshold=0))
    elif values.get("clarity", 0) < 0:
        rgb = Image.blend(rgb, rgb.filter(ImageFilter.GaussianBlur(3)), -values["clarity"] / 100)
    if values.get("sharpen"):
        rgb = rgb.filter(ImageFilter.UnsharpMask(radius=2, percent=values["sharpen"] * 3, threshold=2))
    if values.get("vignette"):
        rgb = vignette(rgb, values["vignette"])
    if values.get("noise"):
        rgb = add_noise(rgb, values["noise"] * 0.5)
    return join_alpha(rgb, alpha)


def _enhance_face(call: ToolCall) -> ToolOutput:
    return imaging.encode(enhance_face(call.image()), call.format)


def _adjust(call: ToolCall) -> ToolOutput:
    values = {name: int(call.get(name, 0)) for name in ADJUST_PARAMS if name != "format"}
    return imaging.encode(adjust(call.image(), values), call.format)


ENHANCE_FACE = Tool("enhance-face", "/enhance/face", FACE_ENHANCE_PARAMS, _enhance_face)
ADJUST = Tool("adjust", "/adjust", ADJUST_PARAMS, _adjust)
