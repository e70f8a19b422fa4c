"""Reading Picsart's rate-limit headers.

`X-Picsart-RateLimit-Reset-Time` comes in three forms depending on the source (FACTS.md): the guide says
UTC epoch milliseconds, the TypeScript SDK treats it as seconds to wait, others as epoch seconds. They are
told apart by magnitude: no wait is decades long, and no epoch in milliseconds is below 10^12.
"""

from __future__ import annotations

import math

#: Above this a value is epoch milliseconds (10^12 ms is September 2001).
_EPOCH_MS_THRESHOLD = 1e12
#: Above this a value is epoch seconds (10^9 s is September 2001); below it, seconds from now.
_EPOCH_S_THRESHOLD = 1e9


def parse_reset_time(raw: str | None, now: float) -> float | None:
    """The reset instant as epoch seconds, or None when the header is absent or unreadable.

    `now` is the epoch time at which the answer was received (for the "seconds from now" form).
    """
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    if value >= _EPOCH_MS_THRESHOLD:
        return value / 1000.0
    if value >= _EPOCH_S_THRESHOLD:
        return value
    return now + value
