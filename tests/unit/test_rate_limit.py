"""`X-Picsart-RateLimit-Reset-Time` in its three forms, told apart by magnitude: the guide says UTC epoch
milliseconds; Picsart's TypeScript SDK treats it as seconds to wait; other clients as epoch seconds (see
docs/picsart-api.md).

Guide rule: "If your request is met with a rate limit error and the x-picsart-ratelimit-reset-time header is
provided, wait to make another request until the time specified by this header has been reached."
"""

from __future__ import annotations

import pytest

from picsart_adapter.rate_limit import parse_reset_time

NOW = 1_700_000_000.0


def test_epoch_milliseconds_as_the_guide_says() -> None:
    """Guide: "The X-Picsart-RateLimit-Reset-Time indicates the reset time in UTC epoch milliseconds"."""
    assert parse_reset_time("1700000060000", NOW) == 1_700_000_060.0
    assert parse_reset_time("1700000060500", NOW) == 1_700_000_060.5


def test_epoch_seconds() -> None:
    """Other clients read it as epoch seconds."""
    assert parse_reset_time("1700000060", NOW) == 1_700_000_060.0


@pytest.mark.parametrize(("raw", "expected"), [("30", NOW + 30), ("1", NOW + 1), ("59", NOW + 59), ("0", NOW)])
def test_seconds_from_now(raw: str, expected: float) -> None:
    """Picsart's TypeScript SDK treats the value as seconds to wait (its mocks use 1-59)."""
    assert parse_reset_time(raw, NOW) == expected


def test_seconds_from_now_is_relative_to_the_given_now() -> None:
    assert parse_reset_time("30", 1_700_000_000) == 1_700_000_030
    assert parse_reset_time("30", 1_800_000_000) == 1_800_000_030


def test_surrounding_whitespace_and_decimals_are_read() -> None:
    assert parse_reset_time(" 1700000060000 ", NOW) == 1_700_000_060.0
    assert parse_reset_time("2.5", NOW) == NOW + 2.5


@pytest.mark.parametrize(
    "raw", [None, "", "   ", "soon", "12s", "Mon, 06 May 2024 07:08:09 GMT", "-5", "-1700000060000"]
)
def test_absent_or_unreadable_or_negative_is_none(raw: str | None) -> None:
    """Guide: "If neither condition applies" (no usable reset time), the caller falls back to the 1-minute floor."""
    assert parse_reset_time(raw, NOW) is None


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "Infinity"])
def test_non_finite_is_none(raw: str) -> None:
    assert parse_reset_time(raw, NOW) is None
