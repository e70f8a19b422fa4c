"""Parked work, with the processor's collaborators faked: deferred for the budget, retried later, polled
later, held for the circuit, duplicates checked again later, and the dead-letter queue.

Guide rules per test: rate limits: wait until the reset time, else at least a minute; "consider throwing an
error after several failed attempts".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from picsart_adapter.circuit import Open
from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.job_budget import DELAY_ROUNDING_SECONDS
from picsart_adapter.jobs import JobStatus
from picsart_adapter.observability import metrics
from picsart_adapter.parking import MAX_IN_FLIGHT_SECONDS
from picsart_adapter.picsart_client import PicsartTransportError, ResultDownloadError
from picsart_adapter.rate_limit import Denial
from picsart_adapter.retry_policy import MAX_POLLS, RESET_SPREAD_SECONDS
from tests.fakes import (
    ACCEPTED_BODY,
    FLOOR,
    NOW,
    SUCCESS_BODY,
    UPLOAD,
    World,
    answer,
    floored_rules,
    fresh_metrics,
    only,
    parked_message,
    world,
)


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


def test_throttled_with_reset_time_is_parked_until_the_reset() -> None:
    """Guide: "wait to make another request until the time specified by this header has been reached" (UTC
    epoch milliseconds); never a Lambda sleeping through it."""
    reset_ms = int((NOW + 42) * 1000)
    w = world(
        answer(429, {"code": 429, "message": "Too Many Requests"}, {"X-Picsart-RateLimit-Reset-Time": str(reset_ms)})
    )
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.WAITING
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert NOW + 42 <= message.due_at <= NOW + 42 + RESET_SPREAD_SECONDS
    assert parked["DelaySeconds"] == math.ceil(message.due_at - NOW)
    assert message.attempt == 1
    assert message.picsart_correlation_ids == ["corr-429"]
    assert "X-Amz-Signature" not in parked["MessageBody"]
    assert w.jobs.finished[-1]["status"] is JobStatus.WAITING


def test_throttled_without_reset_time_waits_at_least_a_minute() -> None:
    """Guide: "If neither condition applies, it's advisable to wait at least one minute"."""
    w = world(answer(429, {"fault": {"faultstring": "Rate limit quota violation"}}))
    only(w.processor.process(UPLOAD))
    (parked,) = w.parked()
    assert RetryMessage.model_validate_json(parked["MessageBody"]).due_at >= NOW + 60
    assert parked["DelaySeconds"] >= 60


def test_no_answer_is_parked_as_transient() -> None:
    w = world(PicsartTransportError("timeout", "ReadTimeoutError"))
    result = only(w.processor.process(UPLOAD))
    assert result.status is JobStatus.WAITING
    assert (result.reason or "").startswith("transient")
    assert "ReadTimeoutError" in (w.jobs.finished[-1]["attempt"].error or "")
    assert len(w.parked()) == 1


def test_a_failed_result_download_is_fetched_again_without_a_second_call() -> None:
    """Picsart answered 200 and only the download of its result failed: the job is parked with the answer, and
    its next attempt fetches the result and stores it without calling the tool again (paid once)."""
    w = world(answer(200, SUCCESS_BODY), result=ResultDownloadError("result download answered HTTP 503"))
    result = only(w.processor.process(UPLOAD))
    assert (result.status, result.answered) == (JobStatus.WAITING, True)
    assert w.store.results == []
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.answered is not None
    assert (message.answered.result_url, message.answered.correlation_id) == (SUCCESS_BODY["data"]["url"], "corr-200")
    assert message.attempt == 1

    w.client.result = b"\x89PNGfetched"
    done = only(w.processor.resume(message.model_copy(update={"due_at": NOW})))

    assert done.status is JobStatus.SUCCEEDED
    assert len(w.client.calls) == 1, "the answered step is not called again"
    assert w.client.downloads == [SUCCESS_BODY["data"]["url"]] * 2
    assert w.store.results[0]["body"] == b"\x89PNGfetched"
    assert w.store.results[0]["metadata"]["picsart-correlation-id"] == "corr-200"
    fetch = w.jobs.finished[-1]["attempt"]
    assert (fetch.number, fetch.result_fetch, fetch.http_status) == (2, True, None)


def answered_but_not_fetched(error: str = "result download answered HTTP 503", max_attempts: int = 6) -> World:
    """Picsart answered 200 and the download of its result failed with `error`: the job is parked."""
    w = world(answer(200, SUCCESS_BODY), result=ResultDownloadError(error), max_attempts=max_attempts)
    only(w.processor.process(UPLOAD))
    return w


def due_now(parked: dict[str, Any]) -> RetryMessage:
    """A parked message as the retry function takes it up once it is due."""
    return RetryMessage.model_validate_json(parked["MessageBody"]).model_copy(update={"due_at": NOW})


def test_a_redelivered_fetch_stores_the_result_once() -> None:
    """SQS delivers the parked message again after a fetch that stored the output (its invocation ended with
    another job of the batch): the second delivery stores nothing and puts no second event."""
    w = answered_but_not_fetched()
    (parked,) = w.parked()
    message = due_now(parked)
    w.client.result = b"\x89PNGfetched"

    first = only(w.processor.resume(message))
    again = only(w.processor.resume(message))

    assert (first.status, first.duplicate) == (JobStatus.SUCCEEDED, False)
    assert (again.status, again.duplicate) == (JobStatus.SUCCEEDED, True)
    assert len(w.store.results) == 1
    assert len(w.events.received) == 1
    assert len(w.client.calls) == 1


def test_a_fetch_that_fails_again_is_tried_again() -> None:
    w = answered_but_not_fetched()
    (parked,) = w.parked()
    assert only(w.processor.resume(due_now(parked))).status is JobStatus.WAITING, "the result server still fails"
    (_, again) = w.parked()
    w.client.result = b"\x89PNGfetched"

    done = only(w.processor.resume(due_now(again)))

    assert (done.status, done.duplicate) == (JobStatus.SUCCEEDED, False)
    assert len(w.client.calls) == 1


def test_an_answer_parked_for_a_pipeline_that_changed_since_is_not_stored() -> None:
    """The pipeline's definition changed while the answered job waited: its answer is of the old definition, and
    the pipeline runs again as it is now (a call), not the old answer stored."""
    w = answered_but_not_fetched()
    (parked,) = w.parked()
    w.client.result = b"\x89PNGnew"

    done = only(w.processor.resume(due_now(parked).model_copy(update={"pipeline_hash": "an older one"})))

    assert done.status is JobStatus.SUCCEEDED
    assert len(w.client.calls) == 2, "run again: the old answer is not reused"
    assert w.jobs.finished[-1]["attempt"].result_fetch is None


def test_a_result_that_cannot_be_fetched_is_dead_lettered_once_its_attempts_are_used_up() -> None:
    w = answered_but_not_fetched("result download answered HTTP 404", max_attempts=2)
    (parked,) = w.parked()

    ended = only(w.processor.resume(due_now(parked)))

    assert ended.status is JobStatus.FAILED
    assert "result download answered HTTP 404" in (ended.reason or "")
    assert len(w.client.calls) == 1
    assert len(w.dead_lettered()) == 1


def test_attempts_used_up_go_to_the_dead_letter_queue_with_the_reason() -> None:
    """Guide: "consider throwing an error after several failed attempts"."""
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}), max_attempts=3)
    result = only(w.processor.process(UPLOAD, attempts_made=2, correlation_ids=["corr-a", "corr-b"]))
    assert result.status is JobStatus.FAILED
    assert w.parked() == []
    (dead,) = w.dead_lettered()
    body = json.loads(dead["MessageBody"])
    assert body["reason"].startswith("step 1 (removebg): gave up after 3 attempts")
    assert body["picsart_correlation_ids"] == ["corr-a", "corr-b", "corr-503"]
    assert w.jobs.finished[-1]["dead_lettered"] is True


def test_a_refused_budget_parks_the_job_without_a_call_or_an_attempt() -> None:
    """Guide: sequence requests instead of bursts; hold off until the reset time when nothing is left."""
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 40, reason="quota"))
    result = only(w.processor.process(UPLOAD, attempts_made=2))
    assert result.status is JobStatus.WAITING
    assert w.client.calls == []
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.attempt == 2, "a deferral is not an attempt"
    # Its place in line, early by its preparation (none on this clock) and SQS's whole-second rounding.
    assert message.due_at == NOW + 40 - DELAY_ROUNDING_SECONDS
    assert parked["DelaySeconds"] == 39
    assert w.jobs.finished[-1]["attempt"] is None
    assert "quota" in w.jobs.finished[-1]["reason"]
    assert w.limiter.lined_up == [Denial(retry_at=NOW + 40, reason="quota")], "it took a place in the line"
    assert message.turn_at == NOW + 40, "the message carries when its place comes"


def test_resumed_work_that_must_wait_again_costs_only_its_message() -> None:
    """When the environment already knows the window's budget is taken, parked work that comes back costs
    no S3 read, no record write and no idempotency record, only the message that parks it again."""
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 10, reason="quota"))
    w.limiter.known = Denial(retry_at=NOW + 10, reason="quota")
    message = parked_message(
        bucket="input", key=UPLOAD.key, version_id="v1", etag="e1", attempt=1, due_at=NOW, reason="x"
    )
    result = only(w.processor.resume(message))
    assert result is not None
    assert result.status is JobStatus.WAITING
    assert (w.store.described, w.jobs.started, w.jobs.finished, w.once.final) == (0, [], [], {})
    (parked,) = w.parked()
    assert RetryMessage.model_validate_json(parked["MessageBody"]).attempt == 1


def test_a_new_upload_that_must_wait_is_recorded_as_waiting() -> None:
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 10, reason="quota"))
    only(w.processor.process(UPLOAD))
    assert w.store.described == 1, "checked before any budget is asked for"
    assert w.jobs.finished[-1]["status"] is JobStatus.WAITING


@pytest.mark.parametrize("held_by", ["known quota denial", "open circuit", "credit floor"])
def test_a_new_upload_is_recorded_as_waiting_before_its_message_can_be_taken(held_by: str) -> None:
    """Another environment may take the message as soon as it is sent and finish the job: a waiting record
    written after that would overwrite its ending, and the upload would read as waiting for good."""
    w = world(
        answer(200, SUCCESS_BODY),
        admission=Open(retry_at=NOW + 120, reason="HTTP 401: bad key") if held_by == "open circuit" else None,
        rules=floored_rules() if held_by == "credit floor" else None,
    )
    if held_by == "known quota denial":
        w.limiter.known = Denial(retry_at=NOW + 10, reason="quota")
    w.limiter.credits = FLOOR
    written_when_sent: list[list[JobStatus]] = []
    send = w.sqs.send_message

    def sending(**kwargs: Any) -> dict[str, str]:
        written_when_sent.append([record["status"] for record in w.jobs.finished])
        return send(**kwargs)

    w.sqs.send_message = sending  # type: ignore[method-assign]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING
    assert written_when_sent == [[JobStatus.WAITING]], "recorded as waiting, then sent"


def test_a_duplicate_event_of_a_finished_upload_leaves_its_record_as_it_ended() -> None:
    """S3 may deliver an event twice. The second, met by an environment that knows the budget is spent, is parked
    before its once-per-step section: its waiting record would stand for good over the ending (its message's
    resume is a duplicate that writes nothing). The ending is kept and nothing is sent."""
    w = world(answer(200, SUCCESS_BODY))
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    w.limiter.known = Denial(retry_at=NOW + 10, reason="quota")
    again = only(w.processor.process(UPLOAD))
    assert (again.status, again.duplicate) == (JobStatus.SUCCEEDED, True)
    assert w.jobs.get(w.jobs.finished[-1]["ref"]) == {"status": "succeeded"}
    assert w.parked() == [], "nothing parked for a job that has ended"
    assert len(w.client.calls) == 1


def test_an_operators_replay_of_an_ended_upload_is_parked_not_taken_for_a_duplicate() -> None:
    """A replay driven back as a bare upload (no pipeline yet) finds its record ended, as the run it replays
    left it: it runs again, so it is recorded as waiting and parked."""
    w = world(answer(200, SUCCESS_BODY))
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED
    w.limiter.known = Denial(retry_at=NOW + 10, reason="quota")
    bare = parked_message(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", replay="replay-1"
    ).model_copy(update={"rule": None, "pipeline": None, "pipeline_hash": None})
    result = only(w.processor.resume(bare) or [])
    assert (result.status, result.duplicate) == (JobStatus.WAITING, False)
    assert w.jobs.finished[-1]["status"] is JobStatus.WAITING
    assert RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"]).replay == "replay-1"


def test_an_open_circuit_parks_the_job_without_a_call_an_attempt_or_budget() -> None:
    w = world(answer(200, SUCCESS_BODY), admission=Open(retry_at=NOW + 120, reason="HTTP 401: bad key"))
    result = only(w.processor.process(UPLOAD, attempts_made=1))
    assert result.status is JobStatus.WAITING
    assert w.client.calls == []
    assert w.limiter.acquired == 0, "no budget is taken for a call that will not be made"
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.attempt == 1
    assert NOW + 120 <= message.due_at <= NOW + 120 + RESET_SPREAD_SECONDS
    assert "circuit open: HTTP 401: bad key" in w.jobs.finished[-1]["reason"]
    assert "CircuitBlocked" in _metric_names()


def test_a_duplicate_while_the_version_is_in_flight_is_parked_not_dropped() -> None:
    """If the invocation working on it crashed, a dropped duplicate would lose the upload."""
    w = world(answer(200, SUCCESS_BODY))
    w.once.in_flight = True
    result = only(w.processor.process(UPLOAD))
    assert (result.status, result.duplicate) == (JobStatus.WAITING, True)
    assert w.client.calls == []
    assert w.jobs.finished == [], "the job record belongs to the invocation in flight"
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.attempt == 0
    assert NOW + 30 <= message.due_at <= NOW + 30 + RESET_SPREAD_SECONDS


def test_work_that_keeps_finding_its_version_in_progress_ends_in_the_dead_letter_queue() -> None:
    """An invocation that dies every time leaves the version in progress again and again; each check sends a
    new message whose receive count starts at zero, so the DLQ would never be reached. No live invocation holds a
    version longer than Lambda's longest timeout."""
    w = world(answer(200, SUCCESS_BODY))
    w.once.in_flight = True
    message = parked_message(
        bucket="input", key=UPLOAD.key, version_id="v1", etag="e1", attempt=0, due_at=NOW, reason="x"
    )
    assert only(w.processor.resume(message)) is not None
    checked = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert checked.in_flight_since == NOW
    still = checked.model_copy(update={"due_at": NOW, "in_flight_since": NOW - MAX_IN_FLIGHT_SECONDS + 1})
    assert only(w.processor.resume(still)) is not None
    assert w.dead_lettered() == [], "within Lambda's longest timeout: checked again"
    stuck = checked.model_copy(update={"due_at": NOW, "in_flight_since": NOW - MAX_IN_FLIGHT_SECONDS - 1})
    result = only(w.processor.resume(stuck))
    assert result is not None
    assert result.status is JobStatus.FAILED
    (dead,) = w.dead_lettered()
    assert "keep failing before they finish" in json.loads(dead["MessageBody"])["reason"]


def test_an_accepted_async_job_is_polled_through_the_delay_queue_never_by_sleeping() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    result = only(w.processor.process(UPLOAD))
    assert (result.status, result.transaction_id) == (JobStatus.WAITING, "tx-1")
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert (message.transaction_id, message.polls, message.attempt) == ("tx-1", 0, 1)
    assert message.due_at == NOW + 1
    assert w.jobs.finished[-1]["transaction_id"] == "tx-1"
    assert w.sqs.sent == [parked], "nothing else: no result yet, no dead letter"


def test_polls_back_off_until_the_result_is_ready_then_store_it() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    only(w.processor.process(UPLOAD))
    w.client.poll_answers = [answer(202, ACCEPTED_BODY), answer(200, SUCCESS_BODY)]
    first = RetryMessage.model_validate_json(w.parked()[0]["MessageBody"])
    only(w.processor.resume(first.model_copy(update={"due_at": NOW})))
    second = RetryMessage.model_validate_json(w.parked()[1]["MessageBody"])
    assert (second.polls, second.attempt, second.due_at) == (1, 1, NOW + 2), "a 202 poll is not an attempt"
    done = only(w.processor.resume(second.model_copy(update={"due_at": NOW})))
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    assert w.client.polls == ["tx-1", "tx-1"]
    assert len(w.client.calls) == 1, "the job was submitted once"
    assert w.store.results[0]["key"] == "ultra-upscale/uploads/photo.jpg"
    assert [a["attempt"].poll for a in w.jobs.finished] == [None, 1, 2]


def test_a_result_never_ready_goes_to_the_dead_letter_queue_with_the_reason() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    w.client.poll_answers = [answer(202, ACCEPTED_BODY)]
    message = parked_message(
        tool="ultra-upscale",
        bucket="input",
        key=UPLOAD.key,
        version_id="v1",
        etag="e1",
        attempt=1,
        due_at=NOW,
        reason="accepted",
        transaction_id="tx-1",
        polls=MAX_POLLS - 1,
    )
    result = only(w.processor.resume(message))
    assert result is not None
    assert result.status is JobStatus.FAILED
    (dead,) = w.dead_lettered()
    assert "not ready after 20 polls" in json.loads(dead["MessageBody"])["reason"]


def _metric_names() -> set[str]:
    return set(metrics.metric_set)
