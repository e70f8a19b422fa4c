"""Work that finds the limiter's item throttled by DynamoDB: parked without a call, an attempt or a dead letter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from picsart_adapter.circuit import Open
from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.jobs import JobStatus
from picsart_adapter.observability import metrics
from picsart_adapter.rate_limit import Denial
from picsart_adapter.rate_limit.hot_item import (
    THROTTLED,
    THROTTLED_BACKOFF_SECONDS,
    THROTTLED_MAX_SPREAD_SECONDS,
    throttled_denial,
    throttled_job_due_at,
)
from tests.fakes import NOW, SUCCESS_BODY, UPLOAD, answer, fresh_metrics, only, parked_message, world


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


def test_a_throttled_limiter_item_parks_the_job_without_a_call_an_attempt_or_a_dead_letter() -> None:
    # The job's last attempt is used up already: a throttle is not an attempt, so it is not dead-lettered.
    w = world(answer(200, SUCCESS_BODY), max_attempts=3, denial=Denial(retry_at=NOW + 3.5, reason=THROTTLED))
    result = only(w.processor.process(UPLOAD, attempts_made=3))
    assert result.status is JobStatus.WAITING
    assert w.client.calls == [], "no call without a grant"
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.attempt == 3, "not an attempt"
    assert message.due_at >= NOW + 3.5
    assert "throttled" in message.reason
    assert "limiter item" in w.jobs.finished[-1]["reason"]
    assert w.limiter.lined_up == [], "no place in the line is taken for it"


def test_a_throttle_denial_is_jittered_reported_and_longer_than_a_short_wait() -> None:
    import random

    denials = [throttled_denial(NOW, "acquire", random.Random(seed)) for seed in range(20)]
    assert all(NOW + 2.0 <= d.retry_at <= NOW + 5.0 for d in denials)
    assert len({d.retry_at for d in denials}) > 10, "spread, so the throttled work does not return as a crowd"
    assert metrics.metric_set["LimiterThrottled"]["Value"] == [1.0] * 20


def test_a_throttled_circuit_read_holds_the_job_like_an_open_circuit() -> None:
    w = world(answer(200, SUCCESS_BODY), admission=Open(NOW + 3, "the circuit item is throttled by DynamoDB"))
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.WAITING
    assert w.client.calls == []
    assert "throttled" in (result.reason or "")


def test_a_job_throttled_again_and_again_comes_back_within_a_doubling_spread() -> None:
    """Parked by the hundred and all back within seconds, jobs would keep the item over its cap (decisions H6)."""
    import random

    class Highest(random.Random):
        def random(self) -> float:
            return 1.0

    latest = [throttled_job_due_at(NOW, in_a_row, Highest()) - NOW for in_a_row in range(1, 8)]
    assert latest == [5.0, 8.0, 14.0, 26.0, 50.0, 62.0, 62.0]
    assert THROTTLED_BACKOFF_SECONDS + THROTTLED_MAX_SPREAD_SECONDS == 62.0
    assert throttled_job_due_at(NOW, 9, random.Random(0)) >= NOW + THROTTLED_BACKOFF_SECONDS


def test_the_throttles_in_a_row_ride_on_the_message_and_a_grant_ends_the_run() -> None:
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 2.5, reason=THROTTLED))
    message = parked_message(bucket="input", key="uploads/photo.jpg", attempt=0, due_at=NOW, reason="throttled")
    for in_a_row in (1, 2, 3, 4):
        assert only(w.processor.resume(message)) is not None
        message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
        assert message.throttled_in_a_row == in_a_row
        assert message.due_at >= NOW + 2.5
        message = message.model_copy(update={"due_at": NOW})
    assert w.client.calls == []

    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}))
    assert only(w.processor.resume(message)).status is JobStatus.WAITING
    assert len(w.client.calls) == 1
    parked = RetryMessage.model_validate_json(only(w.parked())["MessageBody"])
    assert parked.throttled_in_a_row == 0, "a grant ends the run of throttles"
