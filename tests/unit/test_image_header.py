"""Width and height from an image's first bytes, checked against images Pillow writes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from picsart_adapter.image_header import HEADER_BYTES, image_dimensions


def encoded(fmt: str, size: tuple[int, int], **options: object) -> bytes:
    buffer = io.BytesIO()
    mode = "RGBA" if fmt in {"PNG", "WEBP"} else "RGB"
    Image.new(mode, size, (200, 30, 30)).save(buffer, format=fmt, **options)  # type: ignore[arg-type]
    return buffer.getvalue()[:HEADER_BYTES]


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("JPEG", {"exif": b"Exif\x00\x00" + b"\x00" * 20_000}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"quality": 80}),
    ],
    ids=["png", "jpeg", "progressive-jpeg", "jpeg-behind-exif", "webp-lossless", "webp-lossy"],
)
def test_dimensions_are_read_from_the_header(fmt: str, options: dict[str, object]) -> None:
    assert image_dimensions(encoded(fmt, (1234, 567), **options)) == (1234, 567)


def test_what_the_header_does_not_tell_is_none() -> None:
    jpeg = encoded("JPEG", (64, 48))
    assert image_dimensions(jpeg[:20]) is None, "cut before the frame header"
    assert image_dimensions(b"GIF89a" + b"\x00" * 20) is None
    assert image_dimensions(b"") is None
