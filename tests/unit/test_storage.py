"""Output keys: results never overwrite each other, and keep the source key readable."""

from __future__ import annotations

import pytest

from picsart_adapter.rules import result_key


@pytest.mark.parametrize(
    ("source", "extension", "expected"),
    [
        ("uploads/a.png", "png", "removebg/uploads/a.png"),
        ("uploads/a.jpg", "png", "removebg/uploads/a.jpg.png"),
        ("uploads/a.JPEG", "jpg", "removebg/uploads/a.JPEG"),
        ("uploads/a.webp", "png", "removebg/uploads/a.webp.png"),
        ("uploads/summer sale + café.png", "png", "removebg/uploads/summer sale + café.png"),
    ],
)
def test_result_key(source: str, extension: str, expected: str) -> None:
    assert result_key(source, "removebg", extension) == expected


def test_sources_differing_only_in_extension_get_different_results() -> None:
    assert result_key("a.jpg", "removebg", "png") != result_key("a.png", "removebg", "png")
