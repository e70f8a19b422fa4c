"""What Picsart accepts as input, checked before any call (so 413 and 415 are never provoked).

Picsart takes JPG, PNG, WEBP, TIFF, MPO, MJPEG and HEIC up to 100 MB (docs/picsart-api.md). The extension says
what the uploader meant; the first bytes say what the object is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_INPUT_BYTES = 100 * 1024 * 1024
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


def check_key(key: str) -> Rejection | None:
    """Refuse keys whose extension Picsart does not accept (the template's filters may be bypassed by a
    manual invoke or a future trigger, so the handler checks again)."""
    suffix = PurePosixPath(key).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        shown = suffix or "no extension"
        return Rejection("unsupported-type", f"'{shown}' is not an image type Picsart accepts")
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
