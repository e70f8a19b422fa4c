"""The job's side of the fleet's budget, with its collaborators faked: grants taken right before the call,
short waits, recounts of expired grants, the fleet's line and the lead before a turn.

Guide rules: sequence requests instead of bursts; hold off until the reset time when nothing is left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.job_budget import (
    ASSUMED_PREPARATION_SECONDS,
    DELAY_ROUNDING_SECONDS,
    MAX_PREPARATION_SECONDS,
    MAX_RECOUNTS,
    MAX_SHORT_WAITS,
    SHORT_WAIT_SECONDS,
)
from picsart_adapter.jobs import JobStatus
from picsart_adapter.rate_limit import Denial, Grant, LimiterState
from picsart_adapter.rate_limit.hot_item import GRANT_EXPIRED, THROTTLED_BACKOFF_SECONDS
from picsart_adapter.retry_policy import RESET_SPREAD_SECONDS
from tests.fakes import (
    NOW,
    SUCCESS_BODY,
    UPLOAD,
    Clock,
    FakeContext,
    answer,
    describe_taking,
    fresh_metrics,
    only,
    parked_message,
    world,
)


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


def test_work_parked_for_its_turn_is_due_early_by_how_long_preparing_a_job_takes_here() -> None:
    """Taken up again, the job reads its object and writes its records before it may ask for budget: on a
    slow machine that took 2 s, and work due 1.5 s early reached its turn late, window after window."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 40, reason="quota"), clock=clock)

    w.store.describe = describe_taking(clock, 2.0)  # type: ignore[method-assign]
    only(w.processor.process(UPLOAD))
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert message.due_at == pytest.approx(NOW + 40 - 2.0 - DELAY_ROUNDING_SECONDS)
    assert message.turn_at == NOW + 40

    w.store.describe = describe_taking(clock, 20.0)  # type: ignore[method-assign]
    only(w.processor.process(UPLOAD))
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert message.due_at == pytest.approx(NOW + 40 - MAX_PREPARATION_SECONDS - DELAY_ROUNDING_SECONDS), (
        "a stalled preparation is not planned for"
    )


def test_work_back_from_the_line_asks_for_budget_at_its_turn_not_at_the_reset() -> None:
    """The work a reset releases asks in line order, spaced by the spike arrest: asking all at once, all but
    one would fail to open the window (a write each)."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.known = Denial(retry_at=NOW + 0.2, reason="quota")
    w.limiter.script = [Denial(retry_at=NOW + 0.2, reason="quota"), Grant(LimiterState(), valid_until=NOW + 10)]
    message = parked_message(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", in_line=True
    )
    only(w.processor.resume(message.model_copy(update={"turn_at": NOW + 0.7})))
    assert clock.slept == [pytest.approx(0.7)], "its turn, after the reset"
    assert (w.limiter.acquired, len(w.client.calls)) == (2, 1)

    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Denial(retry_at=NOW + 0.2, reason="spike"), Grant(LimiterState(), valid_until=NOW + 10)]
    only(w.processor.resume(message.model_copy(update={"turn_at": NOW + 0.7})))
    assert clock.slept == [pytest.approx(0.2)], "a full second is not a turn in line: the next second will do"

    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Denial(retry_at=NOW + 0.2, reason="quota")]
    only(w.processor.resume(message.model_copy(update={"turn_at": NOW + SHORT_WAIT_SECONDS + 1})))
    assert clock.slept == [], "a turn further off than a short wait: parked"
    assert len(w.parked()) == 1


def test_work_refused_for_quota_takes_its_place_even_when_the_reset_is_a_short_wait_away() -> None:
    """Jobs that waited in their invocations for a reset would all ask at once, and all but one would fail to
    open the window, then to take a grant in it. Each takes its place and asks at its turn."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.known = Denial(retry_at=NOW + 0.5, reason="quota")
    w.limiter.script = [Denial(retry_at=NOW + 0.5, reason="quota"), Grant(LimiterState(), valid_until=NOW + 10)]
    w.limiter.turns = [NOW + 1.2]
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.SUCCEEDED
    assert w.limiter.lined_up == [Denial(retry_at=NOW + 0.5, reason="quota")]
    assert clock.slept == [pytest.approx(1.2)], "its turn, not the reset"

    w = world(answer(200, SUCCESS_BODY))
    w.limiter.known = Denial(retry_at=NOW + 0.5, reason="quota")
    w.limiter.turns = [NOW + 12]
    only(w.processor.process(UPLOAD))
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert (message.turn_at, message.in_line) == (NOW + 12, True), "a turn windows away: parked for it"
    assert len(w.limiter.lined_up) == 1, "one place"


def test_a_refusal_that_took_its_place_waits_for_that_place_not_for_the_reset() -> None:
    """The refusal's own write gave it a place: no second write for one, and a short wait ends at its turn."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [
        Denial(retry_at=NOW + 0.2, reason="quota", turn=NOW + 0.9),
        Grant(LimiterState(), valid_until=NOW + 10),
    ]
    only(w.processor.process(UPLOAD))
    assert clock.slept == [pytest.approx(0.9)]
    assert w.limiter.lined_up == []

    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 0.2, reason="quota", turn=NOW + 30))
    only(w.processor.process(UPLOAD))
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert message.turn_at == NOW + 30, "the place its refusal took"
    assert message.in_line


def test_work_that_had_a_place_in_line_and_came_early_keeps_its_turn() -> None:
    """Windows begin with their first call, so they drift later than planned: work that reached its place
    before its window reset comes back right after the reset, not at the end of the line."""
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 3, reason="quota"))
    w.limiter.known = Denial(retry_at=NOW + 3, reason="quota")
    message = parked_message(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", in_line=True
    )
    only(w.processor.resume(message))
    assert w.limiter.lined_up == []
    parked = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    lead = ASSUMED_PREPARATION_SECONDS + DELAY_ROUNDING_SECONDS  # no job prepared here yet: nothing timed
    assert NOW + 3 - lead <= parked.due_at <= NOW + 3 + RESET_SPREAD_SECONDS - lead
    assert parked.in_line


def test_work_whose_turn_the_reset_has_passed_is_due_at_the_reset_not_at_once() -> None:
    """Back early for its turn, work finds its window's reset later than that turn (the window began late).
    Parked for the turn, it would be due at once and go round the queue again and again, an invocation and a
    message each time, until the reset was a short wait away: it is due at the reset, at the head of the line."""
    w = world(answer(200, SUCCESS_BODY))
    w.limiter.known = Denial(retry_at=NOW + 6, reason="quota")
    message = parked_message(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", in_line=True
    )
    only(w.processor.resume(message.model_copy(update={"turn_at": NOW + 1})))
    assert (len(w.parked()), w.store.described, w.limiter.acquired) == (1, 0, 0), "parked before any read or write"
    parked = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    lead = ASSUMED_PREPARATION_SECONDS + DELAY_ROUNDING_SECONDS
    assert NOW + 6 - lead <= parked.due_at <= NOW + 6 + RESET_SPREAD_SECONDS - lead
    assert parked.turn_at is not None
    assert parked.turn_at >= NOW + 6
    assert parked.in_line


def test_a_budget_back_within_a_short_wait_is_waited_for_not_parked() -> None:
    """The spike arrest's next second, or a reset about to happen: a delay-queue hop would take longer."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Denial(retry_at=NOW + 0.4, reason="spike"), Grant(LimiterState(), valid_until=NOW + 10)]
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.SUCCEEDED
    assert clock.slept == [pytest.approx(0.4)]
    assert (w.limiter.acquired, w.parked()) == (2, [])


def test_work_that_knows_the_budget_returns_soon_is_prepared_then_waits() -> None:
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.known = Denial(retry_at=NOW + 1.0, reason="quota")
    w.limiter.script = [Denial(retry_at=NOW + 1.0, reason="quota"), Grant(LimiterState(), valid_until=NOW + 10)]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    assert clock.slept == [pytest.approx(1.0)]


def test_work_back_on_time_for_its_turn_is_prepared_then_waits_rather_than_going_round_the_queue() -> None:
    """Work is due early by how long preparing a job takes here: back on time, its turn is further off than a
    short wait, but not once it is prepared. Judged from the moment it was taken up, it would go round the delay
    queue again, at once when that lead is longer than a short wait."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.store.describe = describe_taking(clock, ASSUMED_PREPARATION_SECONDS)  # type: ignore[method-assign]
    w.limiter.known = Denial(retry_at=NOW + 0.2, reason="quota")
    w.limiter.script = [Denial(retry_at=NOW + 0.2, reason="quota"), Grant(LimiterState(), valid_until=NOW + 10)]
    turn = NOW + ASSUMED_PREPARATION_SECONDS + SHORT_WAIT_SECONDS - 0.1
    message = parked_message(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", in_line=True, turn_at=turn
    )
    assert only(w.processor.resume(message)).status is JobStatus.SUCCEEDED
    assert w.parked() == []
    assert clock.slept == [pytest.approx(SHORT_WAIT_SECONDS - 0.1)], "prepared, it waits for its turn"

    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.known = Denial(retry_at=NOW + 0.2, reason="quota")
    farther = message.model_copy(update={"turn_at": NOW + ASSUMED_PREPARATION_SECONDS + SHORT_WAIT_SECONDS + 0.5})
    assert only(w.processor.resume(farther)).status is JobStatus.WAITING
    assert (len(w.parked()), w.store.described, w.limiter.acquired) == (1, 0, 0), "parked before any S3 read or write"


def test_a_longer_wait_or_too_little_time_left_parks_the_job() -> None:
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Denial(retry_at=NOW + SHORT_WAIT_SECONDS + 0.5, reason="quota")]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING
    assert clock.slept == []

    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.processor.register_lambda_context(cast(Any, FakeContext(remaining_ms=w.processor.time_needed_ms + 100)))
    w.limiter.script = [Denial(retry_at=NOW + 1.0, reason="spike")]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING, "no time for the wait and the call"
    assert clock.slept == []


def test_short_waits_are_bounded() -> None:
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.denial = Denial(retry_at=NOW, reason="contention")  # never granted, always "in a moment"
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING
    assert len(clock.slept) == MAX_SHORT_WAITS
    assert len(w.parked()) == 1


def test_a_grant_that_expired_in_its_write_is_counted_again_not_dropped() -> None:
    """A slow write can outlast the grant's second; the call is counted again where it lands (its quota unit
    kept) rather than risking a 429 or losing the unit. A full second is waited out, the unit still held."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_until=NOW - 0.1)]
    w.limiter.recounts = [Denial(retry_at=NOW + 0.3, reason="spike"), Grant(LimiterState(), valid_until=NOW + 0.9)]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    assert (w.limiter.acquired, w.limiter.recounted, len(w.client.calls)) == (1, 2, 1), "one unit, counted again"
    assert clock.slept == [pytest.approx(0.3)]


def test_an_expired_grant_whose_window_ended_takes_a_new_unit() -> None:
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_until=NOW - 0.1), Grant(LimiterState(), valid_until=NOW + 5)]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    assert (w.limiter.acquired, w.limiter.recounted, clock.slept) == (2, 1, [])
    assert len(w.client.calls) == 1


def test_a_grant_counted_in_the_next_second_is_sent_in_it_not_before() -> None:
    """Each call counts in one second of the spike arrest: a grant back before its second begins waits for it."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_from=NOW + 0.3, valid_until=NOW + 1.1)]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    assert clock.slept == [pytest.approx(0.3)]
    assert (w.limiter.acquired, w.limiter.recounted, len(w.client.calls)) == (1, 0, 1)


def test_a_grant_waiting_for_its_second_is_parked_by_a_429_recorded_meanwhile() -> None:
    """Guide: after a 429 with a reset time, no request until that time. A grant counted in the next second was
    taken before another environment recorded a 429; after its wait the call looks at the item once more and is
    parked until the reset, not sent. No call was made: no attempt is counted against the job."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_from=NOW + 0.3, valid_until=NOW + 1.1)]
    w.limiter.rechecks = [Denial(retry_at=NOW + 4, reason="blocked")]
    result = only(w.processor.process(UPLOAD, attempts_made=1))
    assert result.status is JobStatus.WAITING
    assert (clock.slept, w.limiter.rechecked, w.client.calls) == ([pytest.approx(0.3)], 1, [])
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert NOW + 4 <= message.due_at <= NOW + 4 + RESET_SPREAD_SECONDS, "back at the 429's reset, not before"
    assert message.attempt == 1, "no call was made: not an attempt"
    assert w.jobs.finished[-1]["attempt"] is None
    assert "blocked" in message.reason

    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_from=NOW + 0.3, valid_until=NOW + 1.1)]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED, "nothing recorded meanwhile: it goes"
    assert (w.limiter.rechecked, len(w.client.calls)) == (1, 1)

    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_until=NOW + 0.7)]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    assert w.limiter.rechecked == 0, "a call sent straight after its grant's write needs no second look"


def test_a_grant_that_keeps_expiring_parks_the_job_rather_than_risk_a_429() -> None:
    w = world(answer(200, SUCCESS_BODY), clock=Clock())
    expired = Grant(LimiterState(), valid_until=NOW - 0.1)
    w.limiter.script = [expired]
    w.limiter.recounts = [expired] * MAX_RECOUNTS
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING
    assert w.client.calls == []
    parked = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert GRANT_EXPIRED in parked.reason
    # The item answers too slowly to serve the load: coming back a second later adds to it (decisions H6).
    assert parked.throttled_in_a_row == 1
    assert parked.due_at >= NOW + THROTTLED_BACKOFF_SECONDS

    again = world(answer(200, SUCCESS_BODY), clock=Clock())
    again.limiter.script = [expired]
    again.limiter.recounts = [expired] * MAX_RECOUNTS
    assert only(again.processor.resume(parked.model_copy(update={"due_at": NOW}))).status is JobStatus.WAITING
    assert RetryMessage.model_validate_json(again.parked()[-1]["MessageBody"]).throttled_in_a_row == 2
