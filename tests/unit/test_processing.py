"""The domain with its collaborators faked: the sequence (checks, circuit, budget, once per version, call) and
what each answer leads to.

Guide rules per test: "Capture the value of the X-Picsart-Correlation-Id"; "Record the response body if it is
an error response"; "Avoid manually dissecting URLs"; "Choosing to disregard ongoing validation errors could
lead to your application being suspended".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest

from picsart_adapter.circuit import Closed, Probe
from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.jobs import JobStatus
from picsart_adapter.observability import metrics
from picsart_adapter.outcomes import Outcome
from picsart_adapter.picsart_client import PicsartTransportError
from picsart_adapter.rate_limit import Denial, Grant, LimiterState
from picsart_adapter.retry_policy import RESET_SPREAD_SECONDS
from picsart_adapter.storage import StoredObject
from picsart_adapter.tools import RemoveBackgroundParameters
from tests.fakes import (
    ACCEPTED_BODY,
    NOW,
    PRESIGNED_URL,
    RESULT_URL,
    SUCCESS_BODY,
    UPLOAD,
    FakeContext,
    answer,
    fresh_metrics,
    only,
    parked_message,
    stored_object,
    world,
)


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


def test_success_stores_the_result_downloaded_from_data_url_as_given() -> None:
    """Guide: "reference the URL value directly instead of stripping off the parameters"; correlation id
    captured in the record."""
    w = world(answer(200, SUCCESS_BODY))
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.SUCCEEDED
    assert w.client.downloads == [RESULT_URL]
    ((tool, image_url, parameters),) = w.client.calls
    assert (tool.name, image_url) == ("removebg", PRESIGNED_URL)
    assert parameters == RemoveBackgroundParameters(output_type="cutout")
    (stored,) = w.store.results
    assert (stored["bucket"], stored["key"], stored["body"]) == (
        "output",
        "removebg/uploads/photo.jpg.png",
        b"\x89PNGresult",
    )
    assert stored["metadata"]["picsart-correlation-id"] == "corr-200"
    final = w.jobs.finished[-1]
    assert final["status"] is JobStatus.SUCCEEDED
    assert final["attempt"].picsart_correlation_id == "corr-200"
    assert result.picsart_correlation_ids == ["corr-200"]
    assert w.sqs.sent == []


def test_validation_error_fails_once_with_body_and_correlation_id_recorded() -> None:
    """Guide: "Record the response body if it is an error response", "Capture the value of the
    X-Picsart-Correlation-Id"; 422 is not retried ("disregard ongoing validation errors" gets suspended)."""
    body = {"code": 422, "message": "Unprocessable Entity", "detail": "bg_blur must be <= 100"}
    w = world(answer(422, body))
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.FAILED
    assert (result.http_status, result.picsart_correlation_id) == (422, "corr-422")
    assert "bg_blur must be <= 100" in (result.reason or "")
    final = w.jobs.finished[-1]
    assert final["status"] is JobStatus.FAILED
    assert json.loads(final["attempt"].error_body) == body
    assert final["attempt"].picsart_correlation_id == "corr-422"
    assert w.sqs.sent == []
    assert len(w.client.calls) == 1


def test_already_processed_version_costs_no_second_call() -> None:
    """S3 delivers at least once; a duplicate must not spend credits again, nor touch the job record."""
    w = world(answer(200, SUCCESS_BODY))
    first = only(w.processor.process(UPLOAD))
    records_after_first = len(w.jobs.finished)
    again = only(w.processor.process(UPLOAD))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.status is JobStatus.SUCCEEDED
    assert again.output_key == first.output_key == "removebg/uploads/photo.jpg.png"
    assert len(w.client.calls) == 1
    assert len(w.jobs.finished) == records_after_first


def test_a_retry_after_a_failure_is_not_a_duplicate() -> None:
    """Work parked after a 503 is not final: when it comes back, it is called again."""
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}))
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING
    w.client.answer = answer(200, SUCCESS_BODY)
    again = only(w.processor.process(UPLOAD, attempts_made=1))
    assert (again.status, again.duplicate) == (JobStatus.SUCCEEDED, False)
    assert len(w.client.calls) == 2


@pytest.mark.parametrize(
    ("stored", "code"),
    [
        (stored_object(head=b"hello, this is plain text only.!"), "not-an-image"),
        (stored_object(size=0, head=b""), "empty-object"),
        (stored_object(size=100 * 1024 * 1024 + 1), "too-large"),
        # Every created object reaches the function; the content says what it is, not the name.
        (stored_object(key="uploads/anim.gif", head=b"GIF89a" + b"\x00" * 26), "not-an-image"),
    ],
)
def test_inputs_picsart_would_refuse_are_skipped_without_a_call(stored: StoredObject, code: str) -> None:
    """Guide, 413 "input file is too big" / 415: checked first, so never provoked."""
    w = world(answer(200, SUCCESS_BODY), stored=stored)
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.SKIPPED
    assert w.jobs.finished[-1]["skip_code"] == code
    assert w.client.calls == []


def test_deleted_object_is_skipped() -> None:
    w = world(answer(200, SUCCESS_BODY))
    w.store.stored = None
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.SKIPPED
    assert w.jobs.finished[-1]["skip_code"] == "object-gone"
    assert w.jobs.finished[-1]["ref"].version_ref == "version:v1"
    assert w.client.calls == []


def test_success_without_data_url_fails_rather_than_guessing_a_url() -> None:
    """Guide: do not "anticipate the configuration of future URLs"."""
    w = world(answer(200, {"status": "success", "data": {"id": "9a2c6b1e"}}))
    assert only(w.processor.process(UPLOAD)).status is JobStatus.FAILED
    assert w.client.downloads == []


def test_async_202_from_a_sync_tool_fails() -> None:
    w = world(answer(202, {"status": "queued", "transaction_id": "t1"}))
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.FAILED
    assert "202" in (result.reason or "")
    assert w.sqs.sent == []


def test_resume_of_work_not_yet_due_hops_without_a_call() -> None:
    """Waits longer than SQS's 900 s are carried in hops; nothing is sent to Picsart early."""
    w = world(answer(200, SUCCESS_BODY))
    message = parked_message(bucket="input", key="uploads/photo.jpg", attempt=2, due_at=NOW + 5000, reason="throttled")
    assert only(w.processor.resume(message)) is None
    assert w.client.calls == []
    (parked,) = w.parked()
    assert parked["DelaySeconds"] == 900
    assert RetryMessage.model_validate_json(parked["MessageBody"]).attempt == 2


def test_resume_of_due_work_counts_the_attempt_and_keeps_correlation_ids() -> None:
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}))
    message = parked_message(
        bucket="input",
        key="uploads/photo.jpg",
        attempt=2,
        due_at=NOW,
        reason="transient",
        picsart_correlation_ids=["c1"],
    )
    result = only(w.processor.resume(message))
    assert result is not None
    assert result.status is JobStatus.WAITING
    assert w.jobs.started[-1]["attempt_count"] == 3
    parked = RetryMessage.model_validate_json(w.parked()[0]["MessageBody"])
    assert (parked.attempt, parked.picsart_correlation_ids) == (3, ["c1", "corr-503"])


def test_every_answer_is_reported_to_the_fleet_limiter() -> None:
    """Guide: the X-Picsart-RateLimit-* headers of every answer, success or error, steer the fleet."""
    headers = {"X-Picsart-RateLimit-Limit": "10", "X-Picsart-RateLimit-Available": "0"}
    w = world(answer(429, {"code": 429, "detail": "quota"}, headers))
    only(w.processor.process(UPLOAD))
    ((seen, throttled),) = w.limiter.observed
    assert (seen.limit, seen.available, throttled) == (10, 0, True)
    w = world(answer(200, SUCCESS_BODY, headers))
    only(w.processor.process(UPLOAD))
    assert [t for _, t in w.limiter.observed] == [False]


@pytest.mark.parametrize("status", [401, 403, 404, 405, 406, 402])
def test_a_configuration_fault_or_spent_credits_opens_the_circuit_and_waits_for_its_probe(status: int) -> None:
    """The guide: repeated 4xx answers can suspend an integration. The fleet stops until a probe succeeds."""
    w = world(answer(status, {"code": status, "message": "refused", "detail": "check the key"}))
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.WAITING
    ((admission, outcome, seen_status),) = w.circuit.recorded
    assert isinstance(admission, Closed)
    assert outcome in {Outcome.CONFIGURATION, Outcome.CREDITS}
    assert seen_status == status
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert w.circuit.probe_at <= message.due_at <= w.circuit.probe_at + RESET_SPREAD_SECONDS
    assert (message.attempt, message.circuit_refusals) == (1, 1), "the call was made, and the fault is the fleet's"
    final = w.jobs.finished[-1]
    assert final["attempt"].http_status == status
    assert json.loads(final["attempt"].error_body)["detail"] == "check the key"
    assert _metric_names() >= {"CircuitOpened", "PicsartClientErrors"}


def test_a_refusal_the_circuit_holds_spends_none_of_the_jobs_attempts() -> None:
    """A job that meets the fleet's fault on each of its probes keeps waiting with the others: its refused calls
    are recorded and numbered, and only the attempts that were its own count towards MAX_ATTEMPTS."""
    w = world(answer(402, {"code": 402, "message": "Payment Required"}), admission=Probe(lease_ms=1), max_attempts=3)
    message = parked_message(
        bucket="input", key="uploads/photo.jpg", attempt=5, circuit_refusals=3, due_at=NOW, reason="credits"
    )
    assert only(w.processor.resume(message)).status is JobStatus.WAITING
    assert w.dead_lettered() == []
    parked = RetryMessage.model_validate_json(only(w.parked())["MessageBody"])
    assert (parked.attempt, parked.circuit_refusals) == (6, 4)
    assert w.jobs.finished[-1]["attempt"].number == 6

    # Its own failures still run out: two before, a third now.
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}), max_attempts=3)
    assert only(w.processor.resume(parked.model_copy(update={"due_at": NOW}))).status is JobStatus.FAILED
    (dead,) = w.dead_lettered()
    assert "gave up after 7 attempts" in json.loads(dead["MessageBody"])["reason"]


def test_a_probe_reports_its_answer_to_the_circuit() -> None:
    w = world(answer(200, SUCCESS_BODY), admission=Probe(lease_ms=1))
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    ((admission, outcome, _),) = w.circuit.recorded
    assert (admission, outcome) == (Probe(lease_ms=1), Outcome.SUCCESS)


def test_the_budget_is_taken_right_before_the_call_after_the_record_and_the_presigned_url() -> None:
    """A grant counts in the second it was taken: nothing slow may come between it and the call."""
    w = world(answer(200, SUCCESS_BODY))
    order: list[str] = []
    w.limiter.acquire = lambda: (order.append("acquire"), Grant(LimiterState()))[1]  # type: ignore[method-assign]
    original_call = w.client.call_tool
    w.client.call_tool = lambda *a: (order.append("call"), original_call(*a))[1]  # type: ignore[method-assign]
    original_presign = w.store.presigned_get_url
    w.store.presigned_get_url = lambda *a: (order.append("presign"), original_presign(*a))[1]  # type: ignore[method-assign]
    only(w.processor.process(UPLOAD))
    assert order == ["presign", "acquire", "call"]
    assert w.jobs.started, "the record was started before"


def test_a_probe_without_budget_gives_its_turn_back() -> None:
    w = world(answer(200, SUCCESS_BODY), admission=Probe(lease_ms=1), denial=Denial(retry_at=NOW + 5, reason="quota"))
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING
    assert w.client.calls == []
    assert w.circuit.recorded == [(Probe(lease_ms=1), None, None)]


def test_every_answer_is_reported_to_the_circuit() -> None:
    """Validation failures are counted by the circuit (a stream of 422s opens it); successes reset it."""
    for status, outcome in [(422, Outcome.PERMANENT), (200, Outcome.SUCCESS), (503, Outcome.TRANSIENT)]:
        w = world(answer(status, SUCCESS_BODY if status == 200 else {"code": status}))
        only(w.processor.process(UPLOAD))
        assert w.circuit.recorded == [(Closed(), outcome, status)]
    w = world(PicsartTransportError("timeout", "ReadTimeoutError"))
    only(w.processor.process(UPLOAD))
    assert w.circuit.recorded == [(Closed(), None, None)]


@pytest.mark.parametrize(
    ("status", "metric"),
    [
        (400, "PicsartClientErrors"),
        (422, "PicsartClientErrors"),
        (500, "PicsartServerErrors"),
        (429, "PicsartThrottled"),
    ],
)
def test_answers_are_counted_by_kind_for_the_alarms(status: int, metric: str) -> None:
    w = world(answer(status, {"code": status}))
    only(w.processor.process(UPLOAD))
    names = _metric_names()
    assert metric in names
    others = {"PicsartClientErrors", "PicsartServerErrors", "PicsartThrottled"} - {metric}
    assert not names & others


def test_a_duplicate_event_of_an_accepted_job_does_not_submit_it_again() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    only(w.processor.process(UPLOAD))
    again = only(w.processor.process(UPLOAD))
    assert again.duplicate is True
    assert len(w.client.calls) == 1


def test_an_unknown_transaction_is_submitted_again_rather_than_opening_the_circuit() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    only(w.processor.process(UPLOAD))
    w.client.poll_answers = [answer(404, {"code": 404, "message": "Not found"})]
    parked = RetryMessage.model_validate_json(w.parked()[0]["MessageBody"])
    result = only(w.processor.resume(parked.model_copy(update={"due_at": NOW})))
    assert result is not None
    assert result.status is JobStatus.WAITING
    retry = RetryMessage.model_validate_json(w.parked()[1]["MessageBody"])
    assert (retry.transaction_id, retry.attempt) == (None, 2)
    (_, (_, outcome, _)) = w.circuit.recorded
    assert outcome is Outcome.TRANSIENT


def test_a_synchronous_tool_answering_202_fails_rather_than_waiting_for_nothing() -> None:
    w = world(answer(202, ACCEPTED_BODY))
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.FAILED
    assert "synchronous removebg" in (result.reason or "")


def test_work_an_invocation_has_no_time_for_is_handed_back_due_now_without_an_attempt() -> None:
    w = world(answer(200, SUCCESS_BODY))
    message = parked_message(bucket="input", key=UPLOAD.key, version_id="v1", attempt=2, due_at=NOW - 5, reason="x")
    w.processor.hand_back(message)
    (parked,) = w.parked()
    assert parked["DelaySeconds"] == 0
    assert RetryMessage.model_validate_json(parked["MessageBody"]).attempt == 2
    assert w.client.calls == []
    assert w.processor.time_needed_ms == (30 + 5) * 1000, "one call at the client's timeout, and a margin"


def test_resumed_work_is_described_again_once_it_may_call() -> None:
    """The object may have been deleted or replaced while the work waited."""
    w = world(answer(200, SUCCESS_BODY))
    message = parked_message(
        bucket="input", key=UPLOAD.key, version_id="v1", etag="e1", attempt=1, due_at=NOW, reason="x"
    )
    result = only(w.processor.resume(message))
    assert result is not None
    assert result.status is JobStatus.SUCCEEDED
    assert w.store.described == 1


def test_time_left_for_one_more_job_comes_from_the_registered_context() -> None:
    """The retry function hands work back, and a short wait is skipped, when the invocation is ending."""
    w = world(answer(200, SUCCESS_BODY))
    assert w.processor.has_time_for(), "no Lambda context: always"
    needed = w.processor.time_needed_ms
    w.processor.register_lambda_context(cast(Any, FakeContext(remaining_ms=needed - 1)))
    assert not w.processor.has_time_for()
    w.processor.register_lambda_context(cast(Any, FakeContext(remaining_ms=needed + 1000)))
    assert w.processor.has_time_for()
    assert w.processor.has_time_for(1.0)
    assert not w.processor.has_time_for(1.5)


def _metric_names() -> set[str]:
    return set(metrics.metric_set)
