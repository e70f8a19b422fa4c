"""Tools that retouch the pixels and keep the size: ``POST /enhance/face`` (Face Enhancement).

The enhancement stands in for Picsart's model with Pillow filters: a median filter takes out speckle
noise, the levels are stretched, an unsharp mask brings back detail and the colours are lifted a
little. Transparency is kept.
"""

from __future__ import annotations

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from . import imaging
from .toolkit import Tool, ToolCall, ToolOutput
from .validation import FORMAT, Param

FACE_ENHANCE_PARAMS: dict[str, Param] = {"format": FORMAT}


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


def _enhance_face(call: ToolCall) -> ToolOutput:
    return imaging.encode(enhance_face(call.image()), call.format)


ENHANCE_FACE = Tool("enhance-face", "/enhance/face", FACE_ENHANCE_PARAMS, _enhance_face)
