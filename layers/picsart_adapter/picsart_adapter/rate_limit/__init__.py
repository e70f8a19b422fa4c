"""One rate limit for the whole fleet: Picsart's quota and spike arrest, shared in DynamoDB.

Many invocations run at once. Before each call an invocation takes one unit of budget with a single
write on one item per API key; once the limit is known, a unit beyond it is a place in the fleet's line, so a
refusal costs that one write too. Every answer's `X-Picsart-RateLimit-*` headers correct that item when they
tell something new (a new window, or a window spent that the fleet counts as not). So the fleet stays under
the quota and the spike arrest together. A refused call goes to the delay queue, due at its place in the line
(processing.py waits in the invocation only when that is sooner than a delay-queue hop).

- `reset_header`: reading `X-Picsart-RateLimit-Reset-Time` (its three forms).
- `state`: the item (`LimiterState`), what a caller gets (`Grant`, `Denial`), and the pure calculations.
- `updates`: the item's conditional updates, as pure builders.
- `item`: `LimiterItem`, the item's read and conditional write (timed, units counted) and its throttles.
- `limiter`: `FleetRateLimiter`, one environment's view of the item and its retries.
"""

from picsart_adapter.conditional_write import write_units_of
from picsart_adapter.rate_limit.limiter import FleetRateLimiter
from picsart_adapter.rate_limit.reset_header import ResetTime, parse_reset_time, read_reset_time
from picsart_adapter.rate_limit.state import (
    ASSUMED_WRITE_MS,
    CONFIRMED_WITHIN_MS,
    CONFIRMING_CALLS,
    MAX_SECONDS_REMOVED_PER_WRITE,
    PROBE_BUDGET,
    PROBE_WINDOW_MS,
    SEND_MARGIN_MS,
    SPIKE_ARREST_PER_SECOND,
    Denial,
    Grant,
    LimiterState,
    key_fingerprint,
)

__all__ = [
    "ASSUMED_WRITE_MS",
    "CONFIRMED_WITHIN_MS",
    "CONFIRMING_CALLS",
    "MAX_SECONDS_REMOVED_PER_WRITE",
    "PROBE_BUDGET",
    "PROBE_WINDOW_MS",
    "SEND_MARGIN_MS",
    "SPIKE_ARREST_PER_SECOND",
    "Denial",
    "FleetRateLimiter",
    "Grant",
    "LimiterState",
    "ResetTime",
    "key_fingerprint",
    "parse_reset_time",
    "read_reset_time",
    "write_units_of",
]
