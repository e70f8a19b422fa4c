"""Every 429's reset honoured by the whole fleet, against DynamoDB (moto server, the table from template.yaml).

Guide: "If your request is met with a rate limit error and the x-picsart-ratelimit-reset-time header is
provided, wait to make another request until the time specified by this header has been reached." Once one
environment has recorded a 429, no call of the fleet is sent before the reset it named: a grant asked for
after the record is refused by its own write, and a grant taken before it that waits for its second looks at
the item once more after the wait (docs/rate-limit.md, rule 18). Clocks are injected: "meanwhile" is set,
not raced for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from picsart_adapter.job import Job
from picsart_adapter.job_budget import JobBudget
from picsart_adapter.rate_limit import Denial, FleetRateLimiter, Grant
from picsart_adapter.retry_policy import RetryPolicy
from picsart_adapter.s3_events import UploadedObject

from .conftest import Clock
from .test_fleet_rate_limiter import T0, headers, learn_window, make, stored

SECOND = float(int(T0))


def late_in_a_second(table: Any, api_key: str) -> Clock:
    """A fleet that knows its 60 s window of 100 calls, 0.9 s into a wall-clock second: a grant now is counted in
    the next second and waits for it."""
    clock = Clock(SECOND - 3)
    learn_window(table, api_key, clock, limit=100, window_s=60)
    clock.now = SECOND + 0.9
    return clock


def take_budget(limiter: FleetRateLimiter, clock: Clock, sleep: Callable[[float], None], key: str) -> Grant | Denial:
    """One job's `JobBudget.take` through `limiter`, sleeping with `sleep`."""
    budget = JobBudget(limiter, RetryPolicy(), clock, sleep, has_time_for=lambda _: True)
    job = Job(UploadedObject(bucket="input", key=key), attempts_made=0, taken_up_at=clock.now)
    return budget.take(job)


def test_a_429_with_a_reset_holds_the_whole_fleet_until_that_reset(table: Any, api_key: str) -> None:
    """A spike-arrest 429 names the quota window's reset, which may be up to a second past the fleet's own end of
    the window (the same window, as the fleet tells them apart): the fleet waits for the later of the two."""
    clock = Clock(SECOND - 3)
    window_end = learn_window(table, api_key, clock, limit=100, window_s=5)
    clock.now = SECOND + 0.2
    throttled = make(table, api_key, clock)
    assert isinstance(throttled.acquire(), Grant)
    reset = window_end + 0.8
    throttled.observe(headers(100, 0, str(int(reset * 1000))), throttled=True)
    assert int(stored(table, api_key)["blocked_until_ms"]) == pytest.approx(reset * 1000 + 1, abs=2)

    other = make(table, api_key, clock)
    refused = other.acquire()
    assert isinstance(refused, Denial)
    assert (refused.reason, refused.retry_at) == ("blocked", pytest.approx(reset, abs=0.01))
    clock.now = window_end + 0.1
    assert isinstance(other.acquire(), Denial), "the fleet's window has ended, the 429's reset has not"
    clock.now = reset + 0.01
    assert isinstance(other.acquire(), Grant), "from the reset on, the fleet calls again"


def test_a_grant_waiting_for_its_second_is_held_by_a_429_another_environment_recorded(table: Any, api_key: str) -> None:
    """Granted at .9 s, a call counts in the next second and waits for it. Meanwhile another environment records a
    429 whose reset is 4 s away: the waiting call is not sent, it is refused until that reset (the job is parked
    until then, no attempt counted: test_a_grant_waiting_for_its_second_is_parked_by_a_429_recorded_meanwhile).
    The second look is one read, no write."""
    clock = late_in_a_second(table, api_key)
    waiting, recording = make(table, api_key, clock), make(table, api_key, clock)
    assert isinstance(recording.acquire(), Grant)
    reset = SECOND + 5.0

    def sleep(seconds: float) -> None:
        # While the granted call waits for its second, the other environment's call is answered 429.
        recording.observe(headers(100, 0, str(int(reset * 1000))), throttled=True)
        clock.now += seconds

    reads: list[bool] = []
    read = waiting._item.read

    def counted_read() -> Any:
        reads.append(True)
        return read()

    waiting._item.read = counted_read  # type: ignore[method-assign]
    decision = take_budget(waiting, clock, sleep, "uploads/a.png")
    assert isinstance(decision, Denial), "the waiting call is not sent"
    assert (decision.reason, decision.retry_at) == ("blocked", pytest.approx(reset + 0.001, abs=0.002))
    assert (waiting.writes, len(reads)) == (1, 2), "its grant's write, then a first read and the second look"

    clock.now = SECOND + 1.2
    assert isinstance(make(table, api_key, clock).acquire(), Denial), "nor is any other call before the reset"


def test_a_grant_that_waited_for_its_second_goes_when_no_429_was_recorded(table: Any, api_key: str) -> None:
    clock = late_in_a_second(table, api_key)
    waiting = make(table, api_key, clock)

    def sleep(seconds: float) -> None:
        clock.now += seconds

    decision = take_budget(waiting, clock, sleep, "uploads/b.png")
    assert isinstance(decision, Grant)
    assert clock.now == pytest.approx(SECOND + 1), "sent in the second it was counted in"


def test_a_grant_whose_write_lasted_into_its_second_is_held_by_a_429_recorded_meanwhile(
    table: Any, api_key: str
) -> None:
    """A slow write: asked at .9 s, the grant is counted in the next second, and its write comes back 0.2 s into
    it, with nothing left to wait for. Its look began in the second before, and another environment recorded a 429
    while the write was on its way back: the call looks again before it goes, and is held until the reset."""
    clock = late_in_a_second(table, api_key)
    waiting, recording = make(table, api_key, clock), make(table, api_key, clock)
    assert isinstance(recording.acquire(), Grant)
    reset = SECOND + 5.0
    write = waiting._item.write

    def slow_write(update: Any) -> Any:
        written = write(update)
        recording.observe(headers(100, 0, str(int(reset * 1000))), throttled=True)
        clock.now += 0.3
        return written

    waiting._item.write = slow_write  # type: ignore[method-assign]

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s with its second begun already")

    decision = take_budget(waiting, clock, no_sleep, "uploads/c.png")
    assert isinstance(decision, Denial), "the call is not sent"
    assert (decision.reason, decision.retry_at) == ("blocked", pytest.approx(reset + 0.001, abs=0.002))
