"""What Picsart accepts as input, checked before any call.

Guide rules: 413 "for when the input file is too big". Picsart accepts JPG, PNG, WEBP, TIFF, MPO, MJPEG and HEIC
of at most 100 MB, and answers 415 to anything else (docs/picsart-api.md). Checking first means these errors are
never provoked ("Repeatedly encountering 4xx ... errors should not be disregarded").
"""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from picsart_adapter.input_checks import (
    MAX_INPUT_BYTES,
    SNIFF_BYTES,
    SNIFFED_MEDIA_TYPES,
    check_object,
    sniff_image_format,
)


def image_head(pillow_format: str, **save_options: object) -> bytes:
    """The first SNIFF_BYTES of a real 8x8 image written by Pillow (what the adapter reads by a Range GET)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buffer, format=pillow_format, **save_options)
    return buffer.getvalue()[:SNIFF_BYTES]


def heif_head(brand: bytes) -> bytes:
    """An ISO-BMFF `ftyp` box as HEIC files start: size, `ftyp`, major brand, minor version, compatible brands."""
    box = b"ftyp" + brand + b"\x00\x00\x00\x00" + b"mif1" + brand
    return (struct.pack(">I", len(box) + 4) + box)[:SNIFF_BYTES]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (image_head("JPEG"), "JPEG"),
        (image_head("PNG"), "PNG"),
        (image_head("WEBP"), "WEBP"),
        (image_head("TIFF"), "TIFF"),
        (b"MM\x00*" + b"\x00" * 12, "TIFF"),
        (heif_head(b"heic"), "HEIC"),
        (heif_head(b"heix"), "HEIC"),
        (heif_head(b"mif1"), "HEIC"),
    ],
)
def test_real_headers_are_recognised(head: bytes, expected: str) -> None:
    """Picsart takes JPG, PNG, WEBP, TIFF, MPO/MJPEG (JPEG streams) and HEIC (docs/picsart-api.md)."""
    assert sniff_image_format(head) == expected
    assert check_object(1024, head) is None


def test_every_sniffed_format_has_a_media_type_rules_can_match() -> None:
    """rules.py matches a rule's `content_type` against these: a format sniffed without one could never match."""
    recognised = {"JPEG", "PNG", "WEBP", "TIFF", "HEIC"}
    assert set(SNIFFED_MEDIA_TYPES) == recognised
    assert all(media.startswith("image/") for media in SNIFFED_MEDIA_TYPES.values())


@pytest.mark.parametrize(
    "head",
    [
        b"GIF89a\x08\x00\x08\x00",
        b"BM6\x00\x00\x00\x00\x00",
        b"%PDF-1.7\n",
        b"PK\x03\x04\x14\x00",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"\x00\x00\x00\x20ftypavif\x00\x00\x00\x00",
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00",
        b"",
    ],
)
def test_other_formats_are_not_images_picsart_accepts(head: bytes) -> None:
    """GIF, BMP, AVIF, video and documents are not among the inputs Picsart accepts (a 415)."""
    assert sniff_image_format(head) is None


def test_gif_written_by_pillow_is_not_accepted() -> None:
    assert sniff_image_format(image_head("GIF")) is None


def test_text_content_is_not_an_image() -> None:
    """The extension says what the uploader meant; the bytes say what it is (415 otherwise)."""
    head = b"Meeting notes: send the photos by Friday."[:SNIFF_BYTES]
    rejection = check_object(len(head), head)
    assert rejection is not None
    assert rejection.code == "not-an-image"


def test_empty_object_is_refused_before_sniffing() -> None:
    rejection = check_object(0, b"")
    assert rejection is not None
    assert rejection.code == "empty-object"


def test_object_over_100_mb_is_too_large() -> None:
    """Guide, 413: "for when the input file is too big"; Picsart takes at most 100 MB (docs/picsart-api.md)."""
    assert MAX_INPUT_BYTES == 100 * 1024 * 1024
    rejection = check_object(MAX_INPUT_BYTES + 1, image_head("JPEG"))
    assert rejection is not None
    assert rejection.code == "too-large"
    assert str(MAX_INPUT_BYTES + 1) in rejection.reason


def test_object_of_exactly_100_mb_is_accepted() -> None:
    assert check_object(MAX_INPUT_BYTES, image_head("PNG")) is None


def test_size_limit_can_be_lowered() -> None:
    rejection = check_object(2048, image_head("PNG"), max_bytes=1024)
    assert rejection is not None
    assert rejection.code == "too-large"
