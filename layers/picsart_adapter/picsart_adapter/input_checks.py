"""What Picsart accepts as input, checked before any call (so 413 and 415 are never provoked).

Picsart takes JPG, PNG, WEBP, TIFF, MPO, MJPEG and HEIC up to 100 MB (docs/picsart-api.md). The extension says
what the uploader meant; the first bytes say what the object is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from picsart_adapter.image_header import image_dimensions

MAX_INPUT_BYTES = 100 * 1024 * 1024
#: Upscale takes inputs of about 4 megapixels at most (docs/picsart-api.md, "Limits"): 2048 x 2048.
UPSCALE_MAX_INPUT_PIXELS: Final = 2048 * 2048
#: Ultra enhance makes outputs of up to 64 megapixels (its description in the spec, "Minimums/Maximums").
UPSCALE_ENHANCE_MAX_OUTPUT_PIXELS: Final = 64_000_000
#: Enough of the object's start to recognise every accepted format.
SNIFF_BYTES = 32
SUPPORTED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".mpo"})
#: The media type of each format `sniff_image_format` names: what a rule's `content_type` matches (rules.py).
SNIFFED_MEDIA_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "HEIC": "image/heic",
}
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})


@dataclass(frozen=True)
class Rejection:
    """Why an object is not sent to Picsart: a stable code for metrics and a sentence for people."""

    code: str
    reason: str


def sniff_image_format(head: bytes) -> str | None:
    """The image format the first bytes announce, or None when they are not an accepted image."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"  # MPO and MJPEG frames are JPEG streams too
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIC"
    return None


def check_object(size: int, head: bytes, max_bytes: int = MAX_INPUT_BYTES) -> Rejection | None:
    """Refuse empty, oversized and non-image objects."""
    if size == 0:
        return Rejection("empty-object", "the object is empty (0 bytes)")
    if size > max_bytes:
        return Rejection("too-large", f"the object is {size} bytes, over Picsart's limit of {max_bytes} bytes")
    if sniff_image_format(head) is None:
        return Rejection("not-an-image", "the object's content is not a JPG, PNG, WEBP, TIFF or HEIC image")
    return None


def check_step_input(tool_name: str, parameters: Any, head: bytes) -> Rejection | None:
    """Refuse an input a tool's own limit is known to refuse, where the image's header tells its size: upscale's
    input pixels, ultra enhance's output pixels (input times the factor, squared). A call known to fail is not
    made (a 413 costs a unit of the fleet's quota and tells nothing new)."""
    dimensions = image_dimensions(head)
    if dimensions is None:
        return None
    width, height = dimensions
    pixels = width * height
    if tool_name == "upscale" and pixels > UPSCALE_MAX_INPUT_PIXELS:
        return Rejection(
            "too-many-pixels",
            f"the image is {width}x{height} ({pixels} pixels), over upscale's input limit of "
            f"{UPSCALE_MAX_INPUT_PIXELS} pixels",
        )
    factor = getattr(parameters, "upscale_factor", None)
    if tool_name == "upscale-enhance" and isinstance(factor, int):
        output = pixels * factor * factor
        if output > UPSCALE_ENHANCE_MAX_OUTPUT_PIXELS:
            return Rejection(
                "too-many-pixels",
                f"the image is {width}x{height}: upscaled {factor}x it would be {output} pixels, over "
                f"upscale-enhance's output limit of {UPSCALE_ENHANCE_MAX_OUTPUT_PIXELS} pixels",
            )
    return None
