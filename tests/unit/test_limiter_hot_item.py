"""Work that finds the limiter's item throttled by DynamoDB: parked without a call, an attempt or a dead letter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from picsart_adapter.circuit import Open
from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.jobs import JobStatus
from picsart_adapter.observability import metrics
from picsart_adapter.rate_limit import Denial
from picsart_adapter.rate_limit.hot_item import THROTTLED, throttled_denial
from tests.fakes import NOW, SUCCESS_BODY, UPLOAD, answer, fresh_metrics, only, world


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
