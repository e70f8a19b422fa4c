"""A rule's credit floor (docs/credits.md): work under a rule whose floor the fleet's balance has reached waits in
the delay queue, with no call, no budget spent (when the view already shows it) and no attempt; the record says
why; a metric counts it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from picsart_adapter.circuit import Probe
from picsart_adapter.credit_floor import VIEW_MAX_AGE_SECONDS, floor_reached
from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.jobs import JobStatus
from picsart_adapter.observability import metrics
from tests.fakes import (
    ACCEPTED_BODY,
    FLOOR,
    NOW,
    SUCCESS_BODY,
    UPLOAD,
    answer,
    floored_rules,
    fresh_metrics,
    only,
    world,
)


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


def metric_names() -> set[str]:
    return set(metrics.metric_set)


@pytest.mark.parametrize(
    ("floor", "credits", "reached"),
    [(None, 0, False), (500, None, False), (500, 501, False), (500, 500, True), (500, 12, True), (0, 0, True)],
)
def test_a_floor_is_reached_at_or_below_it_and_never_without_a_figure(
    floor: int | None, credits: int | None, reached: bool
) -> None:
    assert floor_reached(floor, credits) is reached


def test_work_under_a_reached_floor_waits_without_a_call_a_grant_or_an_attempt() -> None:
    w = world(answer(200, SUCCESS_BODY), rules=floored_rules())
    w.limiter.credits = FLOOR
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.WAITING
    assert result.reason == f'credit floor: {FLOOR} credits left, rule "keep-credits" keeps the last {FLOOR}'
    assert (w.client.calls, w.limiter.acquired) == ([], 0), "no call and no budget spent"
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.attempt == 0, "no attempt was made"
    assert message.due_at == pytest.approx(NOW + 300), "it looks again after CREDIT_FLOOR_HOLD_SECONDS"
    assert (message.rule, message.step) == ("keep-credits", 0)
    final = w.jobs.finished[-1]
    assert (final["status"], final["reason"]) == (JobStatus.WAITING, result.reason)
    assert final["attempt"] is None
    assert final["attempt_count"] == 0
    assert "HeldForCreditFloor" in metric_names()
    assert w.limiter.credits_asked == [VIEW_MAX_AGE_SECONDS], "a view at most this old decides"


def test_work_above_its_floor_or_under_a_rule_without_one_runs() -> None:
    w = world(answer(200, SUCCESS_BODY), rules=floored_rules())
    w.limiter.credits = FLOOR + 1
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    w = world(answer(200, SUCCESS_BODY), rules=floored_rules(floor=None))
    w.limiter.credits = 0
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    assert w.limiter.credits_asked == [], "a rule without a floor costs no look at the balance"


def test_no_figure_known_yet_runs_the_work() -> None:
    """Before any answer or balance check has told the figure, nothing is held: the first answer tells it."""
    w = world(answer(200, SUCCESS_BODY), rules=floored_rules())
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED


def test_a_floor_reached_since_the_view_holds_the_work_after_its_grant_without_a_call() -> None:
    """The grant's own write returns the item: a figure that reached the floor since this environment's view
    holds the work there, the unit unused (no call, no attempt; the record started for the call says why)."""
    w = world(answer(200, SUCCESS_BODY), rules=floored_rules(), admission=Probe(lease_ms=1))
    w.limiter.credits, w.limiter.granted_credits = FLOOR + 100, FLOOR - 1
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.WAITING
    assert "credit floor" in str(result.reason)
    assert (w.client.calls, w.limiter.acquired) == ([], 1)
    (parked,) = w.parked()
    assert RetryMessage.model_validate_json(parked["MessageBody"]).attempt == 0
    assert w.jobs.finished[-1]["status"] is JobStatus.WAITING, "the record marked processing is set waiting"
    assert w.jobs.finished[-1]["attempt_count"] == 0
    assert w.circuit.recorded == [(Probe(lease_ms=1), None, None)], "a probe's turn goes back"


def test_a_poll_is_never_held_by_the_floor() -> None:
    """A poll costs no credits, and the call it polls for is paid for already."""
    w = world(answer(200, SUCCESS_BODY), rules=floored_rules(tool="ultra-upscale"), tool="ultra-upscale")
    w.limiter.credits = 0
    w.client.poll_answers.append(answer(200, SUCCESS_BODY))
    message = RetryMessage.model_validate(
        {
            "bucket": UPLOAD.bucket,
            "key": UPLOAD.key,
            "version_id": UPLOAD.version_id,
            "etag": UPLOAD.etag,
            "size": UPLOAD.size,
            "attempt": 1,
            "due_at": NOW,
            "reason": "accepted: polling transaction tx-1",
            "rule": "keep-credits",
            "pipeline": "cut",
            "pipeline_hash": floored_rules(tool="ultra-upscale").pipelines["cut"].definition_hash,
            "transaction_id": ACCEPTED_BODY["transaction_id"],
            "polls": 1,
        }
    )
    result = only(w.processor.resume(message))
    assert result.status is JobStatus.SUCCEEDED
    assert w.client.polls == ["tx-1"]
    assert w.limiter.credits_asked == []


def test_held_work_back_from_the_queue_runs_once_the_balance_is_above_its_floor() -> None:
    w = world(answer(200, SUCCESS_BODY), rules=floored_rules())
    w.limiter.credits = 10
    only(w.processor.process(UPLOAD))
    (parked,) = w.parked()
    w.limiter.credits = 10_000  # a top-up, on the item
    message = RetryMessage.model_validate_json(parked["MessageBody"]).model_copy(update={"due_at": NOW})
    result = only(w.processor.resume(message))
    assert result.status is JobStatus.SUCCEEDED
    assert len(w.client.calls) == 1
