"""An image's width and height, read from the first bytes of the file, without an imaging library in the layer.

PNG keeps them in its first chunk (IHDR), WEBP in its first chunk (VP8, VP8L or VP8X), JPEG in its start-of-frame
marker, which comes after the application segments (EXIF may come first, so it can be tens of kilobytes in).
The head given is what `storage.ObjectStore.describe` read (`HEADER_BYTES`); when the dimensions are not in it,
or the format is not one of these, the answer is None and no limit that needs them is checked.
"""

from __future__ import annotations

import struct

__all__ = ["HEADER_BYTES", "image_dimensions"]

#: How much of an object is read to describe it: enough for the sniffed format and, for JPEG, the
#: start-of-frame marker behind a typical EXIF block.
HEADER_BYTES = 64 * 1024

#: JPEG start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC), which hold the frame's height and width.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers that stand alone, without a length.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def image_dimensions(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, WEBP or JPEG image from its first bytes, or None when they do not tell."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_dimensions(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_dimensions(head)
    return None


def _webp_dimensions(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
        return width, height
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _jpeg_dimensions(head: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            return None  # not at a marker: the stream is not what it claims
        marker = head[position + 1]
        if marker == 0xFF:
            position += 1  # fill byte
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker == 0xD9 or marker == 0xDA:
            return None  # end of image, or scan data with no frame header before it
        (length,) = struct.unpack(">H", head[position + 2 : position + 4])
        if marker in _JPEG_SOF:
            if position + 9 > len(head):
                return None
            height, width = struct.unpack(">HH", head[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None
