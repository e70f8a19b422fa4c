"""Completion events: exactly one per job that ends (succeeded, failed for good, dead-lettered, skipped), none
for a replay or a job that waits, each valid against schemas/picsart-job-event.schema.json (tests/fakes.py's
RecordingEvents checks every event put), and a put that fails never fails the job."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from botocore.exceptions import EndpointConnectionError

from picsart_adapter.completion_events import (
    PUT_FAILED_MESSAGE,
    SOURCE,
    CompletionEvents,
    DetailType,
    without_query,
)
from picsart_adapter.jobs import JobStatus
from picsart_adapter.observability import metrics
from picsart_adapter.picsart_client import ResultDownloadError
from picsart_adapter.rules import Rules, parse_rules
from tests.fakes import (
    NOW,
    PRESIGNED_URL,
    RESULT_URL,
    SUCCESS_BODY,
    UPLOAD,
    FakeContext,
    RecordingEvents,
    answer,
    fresh_metrics,
    job_event_validator,
    only,
    parked_message,
    stored_object,
    world,
)

CREDITS = {"X-Picsart-Credit-Available": "4321"}
TWO_PIPELINES = {
    "rules": [{"name": "products", "match": {"prefix": "uploads/"}, "pipelines": ["cutout", "white"]}],
    "pipelines": {
        "cutout": {"steps": [{"tool": "removebg"}], "output": "cutout/{dir}{stem}.{ext}"},
        "white": {
            "steps": [
                {"tool": "removebg", "parameters": {"bg_color": "#ffffff", "format": "PNG"}},
                {"tool": "upscale", "parameters": {"upscale_factor": 2, "format": "PNG"}},
            ],
            "output": "white/{dir}{stem}.{ext}",
        },
    },
}


def rules_of(document: dict[str, Any], **rule: Any) -> Rules:
    document = copy.deepcopy(document)
    document["rules"][0].update(rule)
    return parse_rules(json.dumps(document))


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    yield from fresh_metrics()


def test_a_stored_output_puts_one_succeeded_event_with_what_a_subscriber_needs() -> None:
    w = world(answer(200, SUCCESS_BODY, CREDITS))

    result = only(w.processor.process(UPLOAD))

    (event,) = w.events.received
    assert (event["source"], event["detail-type"]) == (SOURCE, DetailType.SUCCEEDED.value)
    detail = event["detail"]
    assert detail["status"] == "succeeded"
    assert (detail["bucket"], detail["key"], detail["version_id"], detail["version_ref"]) == (
        "input",
        "uploads/photo.jpg",
        "v1",
        "version:v1",
    )
    assert (detail["rule"], detail["pipeline"], detail["step"], detail["steps"]) == ("removebg", "removebg", 1, 1)
    assert (detail["output_bucket"], detail["output_keys"]) == ("output", [result.output_key])
    assert detail["picsart_correlation_ids"] == ["corr-200"]
    assert (detail["attempts"], detail["http_status"], detail["credits_available"]) == (1, 200, 4321)
    assert (detail["reason"], detail["dead_lettered"], detail["s3_request_id"]) == (None, False, "s3-req-1")


def test_a_redelivered_event_finds_the_job_ended_and_puts_no_second_event() -> None:
    w = world(answer(200, SUCCESS_BODY))
    only(w.processor.process(UPLOAD))
    again = only(w.processor.process(UPLOAD))
    assert again.duplicate
    assert len(w.events.received) == 1


def test_a_two_step_pipeline_and_a_one_step_pipeline_put_one_event_each_at_their_ends() -> None:
    w = world(answer(500), rules=rules_of(TWO_PIPELINES))
    step_1 = {"status": "success", "data": {"id": "a", "url": "https://cdn.picsart.io/a.png?token=t"}}
    w.client.script = [answer(200, SUCCESS_BODY), answer(200, step_1), answer(200, SUCCESS_BODY, CREDITS)]

    results = w.processor.process(UPLOAD)

    assert [r.status for r in results] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]
    assert [(d["pipeline"], d["step"], d["steps"]) for d in w.events.details] == [("cutout", 1, 1), ("white", 2, 2)]
    assert [d["output_keys"] for d in w.events.details] == [[r.output_key] for r in results]
    assert w.events.details[1]["credits_available"] == 4321
    only(w.processor.process(UPLOAD)[:1])
    assert len(w.events.received) == 2, "a replay of either pipeline puts nothing"


def test_a_data_step_names_its_output_and_its_sidecar() -> None:
    document = {
        "rules": [{"name": "tags", "match": {}, "pipelines": ["cut-tagged"]}],
        "pipelines": {"cut-tagged": {"steps": [{"tool": "removebg"}, {"tool": "tags"}]}},
    }
    w = world(answer(500), rules=rules_of(document))
    tags = {"status": "success", "data": [{"label": "mug", "confidence": 0.9}]}
    w.client.script = [answer(200, SUCCESS_BODY), answer(200, tags)]

    only(w.processor.process(UPLOAD))

    (detail,) = w.events.details
    assert detail["output_keys"] == [w.store.results[0]["key"], w.store.results[1]["key"]]


def test_a_refusal_puts_one_failed_event_with_its_status_and_reason() -> None:
    w = world(answer(413, {"detail": "too large", "code": 413}))

    result = only(w.processor.process(UPLOAD))

    (event,) = w.events.received
    assert event["detail-type"] == DetailType.FAILED.value
    detail = event["detail"]
    assert (detail["status"], detail["http_status"], detail["reason"]) == ("failed", 413, result.reason)
    assert (detail["dead_lettered"], detail["output_keys"], detail["picsart_correlation_ids"]) == (
        False,
        [],
        ["corr-413"],
    )


def test_a_failure_copying_the_original_names_the_copy() -> None:
    w = world(answer(413, {"detail": "too large"}), rules=rules_of(TWO_PIPELINES, on_failure="copy-original"))

    results = w.processor.process(UPLOAD)

    assert [d["output_keys"] for d in w.events.details] == [[r.output_key] for r in results]
    assert all(d["output_bucket"] == "output" for d in w.events.details)


def test_work_that_waits_puts_nothing_and_dead_lettered_work_puts_one_failed_event() -> None:
    w = world(answer(503), max_attempts=2)
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING
    assert w.events.received == []

    result = only(w.processor.resume(message(picsart_correlation_ids=["corr-503"])))

    assert result.status is JobStatus.FAILED
    (detail,) = w.events.details
    assert (detail["dead_lettered"], detail["attempts"], detail["reason"]) == (True, 2, result.reason)
    assert "gave up after 2 attempts" in detail["reason"]
    assert detail["picsart_correlation_ids"] == ["corr-503"]


def test_work_that_stays_in_flight_too_long_is_dead_lettered_with_one_failed_event() -> None:
    w = world(answer(200, SUCCESS_BODY))
    w.once.in_flight = True
    parked = message(in_flight_since=NOW - 3600)

    result = only(w.processor.resume(parked))

    assert (result.status, result.duplicate) == (JobStatus.FAILED, True)
    (detail,) = w.events.details
    assert detail["dead_lettered"] is True
    assert "still in progress" in detail["reason"]


@pytest.mark.parametrize(
    ("stored", "code"),
    [(stored_object(head=b"plain text, not an image at all"), "not-an-image"), (None, "object-gone")],
)
def test_a_skip_puts_one_skipped_event(stored: Any, code: str) -> None:
    w = world(answer(200, SUCCESS_BODY))
    w.store.stored = stored

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.SKIPPED
    (event,) = w.events.received
    assert event["detail-type"] == DetailType.SKIPPED.value
    assert (event["detail"]["skip_code"], event["detail"]["reason"]) == (code, result.reason)
    assert (event["detail"]["rule"], event["detail"]["pipeline"], event["detail"]["attempts"]) == (None, None, 0)


def test_a_redelivered_skip_emits_no_second_event() -> None:
    w = world(answer(200, SUCCESS_BODY), rules=rules_of(TWO_PIPELINES, match={"prefix": "elsewhere/"}))
    first = only(w.processor.process(UPLOAD))
    again = only(w.processor.process(UPLOAD))
    assert (first.status, first.duplicate, again.duplicate) == (JobStatus.SKIPPED, False, True)
    (detail,) = w.events.details
    assert detail["skip_code"] == "no-rule"
    assert [record["status"] for record in w.jobs.finished] == [JobStatus.SKIPPED, JobStatus.SKIPPED]


def test_work_for_a_pipeline_the_rules_no_longer_have_is_skipped_with_one_event() -> None:
    w = world(answer(200, SUCCESS_BODY))
    parked = message(pipeline="gone", rule="gone")
    only(w.processor.resume(parked))
    only(w.processor.resume(parked))
    (detail,) = w.events.details
    assert (detail["skip_code"], detail["rule"], detail["pipeline"]) == ("rules-changed", "gone", "gone")


def test_a_reason_carrying_a_url_loses_its_query_so_no_signature_leaves() -> None:
    w = world(answer(200, SUCCESS_BODY), result=ResultDownloadError(f"could not fetch {PRESIGNED_URL}"), max_attempts=1)
    only(w.processor.process(UPLOAD))
    (detail,) = w.events.details
    assert "X-Amz-Signature" not in json.dumps(detail)
    assert "https://input.s3.amazonaws.com/uploads/photo.jpg" in detail["reason"]
    assert without_query(f"a {RESULT_URL} b") == "a https://cdn.picsart.io/9a2c6b1e.png b"


def test_a_refused_put_is_tried_again_and_the_job_ends_as_it_did(caplog: pytest.LogCaptureFixture) -> None:
    w = world(answer(200, SUCCESS_BODY))
    w.events.script = ["fail", EndpointConnectionError(endpoint_url="https://events")]
    w.processor.register_lambda_context(FakeContext(remaining_ms=60_000))  # type: ignore[arg-type]

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.SUCCEEDED
    assert (w.events.calls, len(w.events.received)) == (3, 1)
    assert "CompletionEventsUndelivered" not in metrics.metric_set
    # The try that raised may have been delivered: its warning names the key, which the soak counts.
    (warning,) = [record for record in caplog.records if record.getMessage() == PUT_FAILED_MESSAGE]
    assert (warning.levelname, warning.__dict__["event_key"]) == ("WARNING", UPLOAD.key)
    assert "EndpointConnectionError" in warning.__dict__["error"]


def test_an_event_that_cannot_be_put_is_counted_and_never_fails_the_job() -> None:
    w = world(answer(200, SUCCESS_BODY))
    w.events.script = [RuntimeError("boom"), "fail", RuntimeError("boom"), "fail"]

    result = only(w.processor.process(UPLOAD))

    assert result.status is JobStatus.SUCCEEDED
    assert w.jobs.finished[-1]["status"] is JobStatus.SUCCEEDED
    assert w.events.received == []
    assert metrics.metric_set["CompletionEventsUndelivered"]["Value"] == [1.0]


def test_the_backoff_doubles_between_tries() -> None:
    slept: list[float] = []
    client = RecordingEvents(script=["fail", "fail", "fail"])
    events = CompletionEvents(client, "orders-bus", sleep=slept.append)
    assert events.put(valid_event()["detail"]) is False
    assert slept == [0.2, 0.4]


def test_events_go_to_the_configured_bus() -> None:
    class Capture(RecordingEvents):
        buses: list[str]

        def put_events(self, *, Entries: Any) -> dict[str, Any]:
            self.buses = [entry["EventBusName"] for entry in Entries]
            return super().put_events(Entries=Entries)

    client = Capture()
    assert CompletionEvents(client, "orders-bus").put(valid_event()["detail"])
    assert client.buses == ["orders-bus"]


def message(**fields: Any) -> Any:
    """A delay-queue message for the world's upload, due now."""
    defaults = {"bucket": "input", "key": UPLOAD.key, "version_id": "v1", "attempt": 1, "due_at": NOW, "reason": "x"}
    return parked_message(**{**defaults, **fields})


def valid_event() -> dict[str, Any]:
    w = world(answer(200, SUCCESS_BODY))
    only(w.processor.process(UPLOAD))
    return w.events.received[0]


@pytest.mark.parametrize(
    "breaks",
    [
        lambda e: e.update({"source": "somebody.else"}),
        lambda e: e.update({"detail-type": "Picsart Job Failed"}),
        lambda e: e["detail"].pop("output_keys"),
        lambda e: e["detail"].update({"api_key": "k"}),
        lambda e: e["detail"].update({"status": "waiting"}),
        lambda e: e["detail"].update({"attempts": -1}),
        lambda e: e["detail"].update({"output_keys": []}),
        lambda e: e["detail"].update({"ended_at": "yesterday"}),
    ],
    ids=["source", "type-status-mismatch", "missing-field", "extra-field", "status", "attempts", "no-output", "time"],
)
def test_the_schema_refuses_a_wrong_event(breaks: Any) -> None:
    event = valid_event()
    job_event_validator().validate(event)
    breaks(event)
    with pytest.raises(jsonschema.ValidationError):
        job_event_validator().validate(event)


def test_a_step_replayed_from_its_record_still_names_its_correlation_id() -> None:
    w = world(answer(500), rules=rules_of(TWO_PIPELINES, pipelines=["white"]))
    step_1 = {"status": "success", "data": {"id": "a", "url": "https://cdn.picsart.io/a.png?token=t"}}
    w.client.script = [answer(200, step_1, {"X-Picsart-Correlation-Id": "c1"}), answer(503)]
    assert only(w.processor.process(UPLOAD)).status is JobStatus.WAITING
    w.client.script = [answer(200, SUCCESS_BODY, {"X-Picsart-Correlation-Id": "c2"})]

    # Redelivered S3 event: step 1's recorded result is replayed, step 2 is called.
    assert only(w.processor.process(UPLOAD)).status is JobStatus.SUCCEEDED

    (detail,) = w.events.details
    assert detail["picsart_correlation_ids"] == ["c1", "c2"]
