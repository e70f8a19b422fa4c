"""When DynamoDB throttles the limiter's item: every upload touches it, and one item's partition serves at most
about 1,000 write and 3,000 read units a second (on-demand tables too). A request beyond that is refused with a
throttling error, which the SDK retries (`LIMITER_SDK_ATTEMPTS`, standard mode) before the limiter sees it.

What the limiter does then (docs/hot-item.md):
- before a call (a grant, a recount, a place in the line, the first read): no call, no attempt; the job is parked
  in the delay queue for a short, jittered delay (`throttled_denial`) whose spread doubles with each throttle the
  job meets in a row (`throttled_job_due_at`), and this environment parks the rest of its work for as long without
  touching the item (`FleetRateLimiter.known_denial`);
- after an answer (recording its headers): the write is skipped; the answer is paid for and the job goes on.
Each time: the metric `LimiterThrottled` (dimension-free, with `LimiterAnswerWritesSkipped` for skipped answer
writes) and a warning naming the limiter item as throttled
(tests/unit/test_limiter_hot_item.py, tests/integration/test_hot_item.py).
"""

from __future__ import annotations

import random
from typing import Final

from botocore.exceptions import ClientError

from picsart_adapter.observability import MetricUnit, logger, metrics
from picsart_adapter.rate_limit.state import Denial

__all__ = [
    "GRANT_EXPIRED",
    "ITEM_PRESSURE",
    "LIMITER_SDK_ATTEMPTS",
    "THROTTLED",
    "THROTTLED_BACKOFF_SECONDS",
    "THROTTLED_JITTER_SECONDS",
    "THROTTLED_MAX_SPREAD_SECONDS",
    "THROTTLE_ERROR_CODES",
    "answer_write_skipped",
    "is_throttle",
    "throttled_denial",
    "throttled_job_due_at",
]

#: The codes DynamoDB throttles a data-plane request with: a partition over its cap (on-demand tables too),
#: a provisioned table over its capacity, the account's throughput quota, and the generic throttle.
THROTTLE_ERROR_CODES: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
#: The SDK's retries for the limiter's and the circuit's items: botocore's standard mode (exponential backoff
#: with full jitter, a client-side retry quota), 3 attempts. The legacy default for DynamoDB makes 10 attempts
#: over about 25 s, holding the invocation and adding requests to an item that is already over its cap.
LIMITER_SDK_ATTEMPTS: Final = 3
#: Denial reason of work that found the limiter's item throttled.
THROTTLED: Final = "throttled"
#: Denial reason of work whose grant expired in its own writes, counted again each time (`JobBudget.take`): the
#: item answered too slowly for the call to reach Picsart in the second it was counted in.
GRANT_EXPIRED: Final = "spike (grant expired)"
#: The denials that tell of an item under more load than it serves: work parked by them comes back within a
#: spread that widens with each one met in a row (`throttled_job_due_at`). A slow write is the other face of a
#: throttle: the SDK's own retries of a throttled request, or a partition answering late, end the grant's second
#: before the write returns (decisions H6; test_a_grant_that_keeps_expiring_parks_the_job_rather_than_risk_a_429).
ITEM_PRESSURE: Final = frozenset({THROTTLED, GRANT_EXPIRED})
#: Throttled work comes back after this long plus up to THROTTLED_JITTER_SECONDS: longer than a short wait (it
#: goes through the delay queue, not a sleep on the hot item), and spread so that it does not return as a crowd.
THROTTLED_BACKOFF_SECONDS: Final = 2.0
THROTTLED_JITTER_SECONDS: Final = 3.0
#: The longest spread a job throttled again and again comes back within (`throttled_job_due_at`).
THROTTLED_MAX_SPREAD_SECONDS: Final = 60.0

_RNG = random.Random()


def is_throttle(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in THROTTLE_ERROR_CODES


def throttled_denial(now: float, during: str, rng: random.Random | None = None) -> Denial:
    """Report the limiter's item throttled (`during`: what was being done) and say when to come back."""
    metrics.add_metric(name="LimiterThrottled", unit=MetricUnit.Count, value=1)
    retry_at = now + THROTTLED_BACKOFF_SECONDS + (rng or _RNG).random() * THROTTLED_JITTER_SECONDS
    logger.warning(
        "the limiter item is throttled by DynamoDB: the job is parked without a call",
        extra={"limiter_item": "throttled", "during": during, "retry_in_seconds": round(retry_at - now, 3)},
    )
    return Denial(retry_at, THROTTLED)


def throttled_job_due_at(now: float, in_a_row: int, rng: random.Random | None = None) -> float:
    """When a job parked by its `in_a_row`-th throttle in a row comes back: after THROTTLED_BACKOFF_SECONDS, within
    a spread that doubles with each throttle, up to THROTTLED_MAX_SPREAD_SECONDS. Parked by the hundred and all back
    within seconds, jobs keep asking the item for many times its cap, and it refuses every one of them: the spread
    grows until their asks fall below the cap (decisions H6;
    test_a_job_throttled_again_and_again_comes_back_within_a_doubling_spread)."""
    spread = min(THROTTLED_MAX_SPREAD_SECONDS, THROTTLED_JITTER_SECONDS * 2.0 ** max(0, in_a_row - 1))
    return now + THROTTLED_BACKOFF_SECONDS + (rng or _RNG).random() * spread


def answer_write_skipped() -> None:
    """An answer's headers were not written to the throttled item: the call is paid for, the job goes on, and
    the next answer that tells something new corrects the item."""
    metrics.add_metric(name="LimiterThrottled", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="LimiterAnswerWritesSkipped", unit=MetricUnit.Count, value=1)
    logger.warning(
        "the limiter item is throttled by DynamoDB: the answer's rate-limit headers are not written",
        extra={"limiter_item": "throttled", "during": "answer"},
    )
