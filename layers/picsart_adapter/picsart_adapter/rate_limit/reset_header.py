"""Reading `X-Picsart-RateLimit-Reset-Time`: when the window resets, and how precisely the header says so.

The header comes in three forms depending on the source. The guide says UTC epoch milliseconds; Picsart's
TypeScript SDK treats it as seconds to wait; other clients as epoch seconds (see docs/picsart-api.md). The
forms are told apart by magnitude: no wait is decades long, and no epoch in milliseconds is below 10^12
(tests/unit/test_rate_limit.py, and test_reset_time_in_each_form for what the fleet stores).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Above this a value is epoch milliseconds (10^12 ms is September 2001).
_EPOCH_MS_THRESHOLD = 1e12
#: Above this a value is epoch seconds (10^9 s is September 2001); below it, seconds from now.
_EPOCH_S_THRESHOLD = 1e9


@dataclass(frozen=True)
class ResetTime:
    """When a window resets, as epoch seconds, and how precisely the header said so."""

    at: float
    precision: float


def parse_reset_time(raw: str | None, now: float) -> float | None:
    """The reset instant as epoch seconds, or None when the header is absent or unreadable.

    `now` is the epoch time at which the answer was received (for the "seconds from now" form).
    """
    reset = read_reset_time(raw, now)
    return reset.at if reset else None


def read_reset_time(raw: str | None, now: float) -> ResetTime | None:
    """Like `parse_reset_time`, with the precision of the form used (1 ms, or 1 s for the second forms)."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    if value >= _EPOCH_MS_THRESHOLD:
        return ResetTime(value / 1000.0, precision=0.001)
    if value >= _EPOCH_S_THRESHOLD:
        return ResetTime(value, precision=1.0)
    return ResetTime(now + value, precision=1.0)
