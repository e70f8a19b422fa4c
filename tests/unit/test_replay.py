"""Work an operator sends again (`picsart-local redrive`, `reprocess`): the retry function takes up a fresh job
from a bare-upload message, and a replay is a run of its own, so a step an earlier run ended for good is called
again rather than answered from its record."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from picsart_adapter.delay_queue import GIVEN_UP_ATTRIBUTE, RetryMessage
from picsart_adapter.jobs import JobStatus
from picsart_adapter.rate_limit import Denial
from tests.fakes import NOW, SUCCESS_BODY, UPLOAD, answer, fresh_metrics, only, parked_message, world


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


def bare_upload(**fields: object) -> RetryMessage:
    """What `redrive` makes of an S3 event Lambda gave up on: the upload, no rule or pipeline yet."""
    return RetryMessage.model_validate(
        {"bucket": "input", "key": "uploads/photo.jpg", "version_id": "v1", "attempt": 0, "due_at": NOW}
        | {"reason": "redriven: the upload function's invocation failed"}
        | fields
    )


def test_the_retry_function_takes_up_a_bare_upload_as_a_new_one() -> None:
    w = world(answer(200, SUCCESS_BODY))
    result = only(w.processor.resume(bare_upload()))
    assert (result.status, result.pipeline) == (JobStatus.SUCCEEDED, "removebg")
    assert len(w.client.calls) == 1
    assert w.jobs.started[-1]["attempt_count"] == 1


def test_a_bare_upload_deferred_for_the_budget_records_that_it_waits() -> None:
    """It may have no record of its pipeline yet: the wait is written, as for a new upload."""
    w = world(answer(200, SUCCESS_BODY), denial=Denial(NOW + 30, "quota"))
    result = only(w.processor.resume(bare_upload()))
    assert result.status is JobStatus.WAITING
    assert w.jobs.finished[-1]["status"] is JobStatus.WAITING
    assert w.jobs.finished[-1]["ref"].pipeline == "removebg"
    parked = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert (parked.pipeline, parked.step) == ("removebg", 0)


def test_a_replayed_job_calls_the_step_an_earlier_run_failed_for_good() -> None:
    w = world(answer(422, {"code": 422, "detail": "bad"}))
    assert only(w.processor.process(UPLOAD)).status is JobStatus.FAILED
    w.client.answer = answer(200, SUCCESS_BODY)
    same_run = only(
        w.processor.resume(
            parked_message(
                bucket="input", key="uploads/photo.jpg", attempt=0, due_at=NOW, reason="again", version_id="v1"
            )
        )
    )
    assert (same_run.status, same_run.duplicate) == (JobStatus.FAILED, True), "the same run answers from its record"
    replayed = only(
        w.processor.resume(
            parked_message(
                bucket="input",
                key="uploads/photo.jpg",
                version_id="v1",
                attempt=0,
                due_at=NOW,
                reason="redriven",
                replay="redrive 2026-12-07T10:00:00Z",
            )
        )
    )
    assert (replayed.status, replayed.duplicate) == (JobStatus.SUCCEEDED, False)
    assert len(w.client.calls) == 2


def test_a_replay_is_kept_on_the_work_it_parks() -> None:
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}))
    replay = "reprocess 2026-12-07T10:00:00Z"
    only(w.processor.resume(bare_upload(replay=replay)))
    parked = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert parked.replay == replay


def test_work_the_adapter_gives_up_is_marked_as_given_up() -> None:
    """`redrive` sends work SQS moved after maxReceiveCount back as it is; what the adapter gave up it replays."""
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}), max_attempts=1)
    assert only(w.processor.process(UPLOAD)).status is JobStatus.FAILED
    (dead,) = w.dead_lettered()
    assert dead["MessageAttributes"][GIVEN_UP_ATTRIBUTE]["StringValue"] == "adapter"
    assert all(GIVEN_UP_ATTRIBUTE not in sent.get("MessageAttributes", {}) for sent in w.parked())
