"""The soak's secret scan (`picsart_local.soak.leaks_in`), on texts made for it: what it finds, and that it
never repeats the key it looks for."""

from __future__ import annotations

from picsart_local.soak import SIGNATURE_MARKERS, leaks_in

KEY = "pk-live-1234567890abcdef"
SIGNED = (
    "https://input.s3.amazonaws.com/uploads/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIA%2F20261207&X-Amz-Expires=300&X-Amz-Signature=0123abcd"
)


def test_the_key_and_each_signature_marker_are_found_where_they_are() -> None:
    texts = {
        "clean.log": '{"message": "Picsart answered", "image_url_path": "/uploads/a.png"}',
        "leaky.log": f'{{"message": "calling", "headers": {{"X-Picsart-API-Key": "{KEY}"}}}}',
        "message 3": f'{{"image_url": "{SIGNED}"}}',
        "legacy": "https://bucket/key?AWSAccessKeyId=AKIA&Signature=abc&Expires=1",
    }
    leaks = leaks_in(texts, KEY)
    assert sorted(leaks) == sorted(
        [
            "leaky.log: the API key",
            "message 3: X-Amz-Signature=",
            "message 3: Signature=",
            "message 3: X-Amz-Credential",
            "legacy: Signature=",
            "legacy: AWSAccessKeyId=",
        ]
    )
    assert not any(KEY in leak for leak in leaks), "a report of a leak does not leak the key again"


def test_nothing_secret_is_no_leak() -> None:
    assert leaks_in({"clean.log": "X-Amz-Expires=300 /uploads/a.png", "item": "{}"}, KEY) == []
    assert set(SIGNATURE_MARKERS) >= {"X-Amz-Signature=", "X-Amz-Credential"}
