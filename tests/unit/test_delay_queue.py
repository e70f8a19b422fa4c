"""The delay queue: work that must wait, and the messages that carry it.

Guide rule: "Persisting in sending requests while facing rate limitations can lead to the suspension of your
integration" -- waits go through SQS (at most 900 s per hop), never through a sleeping Lambda.
Messages carry nothing secret: no API key, no presigned URL (a credential).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from picsart_adapter.delay_queue import MAX_DELAY_SECONDS, DelayQueue, RetryMessage, delay_for, in_turn_order
from picsart_adapter.s3_events import UploadedObject

NOW = 1_700_000_000.0
PRESIGNED_URL = (
    "https://input-bucket.s3.amazonaws.com/uploads/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20240506%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=deadbeef"
)


def message(**overrides: Any) -> RetryMessage:
    values: dict[str, Any] = {
        "bucket": "input-bucket",
        "key": "uploads/my photo!.jpg",
        "version_id": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
        "etag": "d41d8cd98f00b204e9800998ecf8427e",
        "s3_request_id": "C3D13FE58DE4C810",
        "attempt": 2,
        "due_at": NOW + 61.5,
        "reason": "throttled: HTTP 429",
        "picsart_correlation_ids": ["corr-1", "corr-2"],
    }
    values.update(overrides)
    return RetryMessage.model_validate(values)


class RecordingSqs:
    """Stands in for the SQS client: records each send_message call."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, str]:
        self.sent.append(kwargs)
        return {"MessageId": f"m-{len(self.sent)}"}


@pytest.mark.parametrize(
    ("due_in", "expected"),
    [
        (0.0, 0),
        (-30.0, 0),
        (-1e9, 0),
        (0.001, 1),
        (0.2, 1),
        (1.0, 1),
        (59.01, 60),
        (60.0, 60),
        (899.5, 900),
        (900.0, 900),
        (900.4, 900),
        (3600.0, 900),
        (86_400.0, 900),
    ],
)
def test_delay_for_rounds_up_and_clamps_to_sqs_range(due_in: float, expected: int) -> None:
    """SQS DelaySeconds is 0..900; rounding up means work never returns before it is due (guide: wait
    "until the time specified by this header has been reached")."""
    assert delay_for(NOW + due_in, NOW) == expected


def test_delay_for_is_an_int() -> None:
    assert isinstance(delay_for(NOW + 12.3, NOW), int)
    assert MAX_DELAY_SECONDS == 900


def test_retry_message_round_trips_through_json() -> None:
    original = message()
    restored = RetryMessage.model_validate_json(original.model_dump_json())
    assert restored == original
    assert restored.key == "uploads/my photo!.jpg"
    assert restored.picsart_correlation_ids == ["corr-1", "corr-2"]


def test_retry_message_with_only_the_required_fields_round_trips() -> None:
    minimal = RetryMessage(bucket="b", key="k.jpg", attempt=0, due_at=NOW, reason="transient: no answer")
    assert RetryMessage.model_validate_json(minimal.model_dump_json()) == minimal


def test_retry_message_has_no_url_or_secret_fields_but_a_later_steps_input() -> None:
    """No presigned URL (it is a credential and would expire while parked) and no API key in the queue. The one URL
    a message carries is a later step's input: the step before's result, as Picsart gave it."""
    fields = set(RetryMessage.model_fields)
    assert {name for name in fields if "url" in name.lower() or "secret" in name.lower()} == {
        "input_url",
        "input_url_at",
    }
    assert "api_key" not in fields


def test_presigned_url_given_to_a_retry_message_never_reaches_its_json() -> None:
    """Even if a caller hands it one, the message drops it: the next attempt presigns afresh."""
    parked = RetryMessage.model_validate(
        {**message().model_dump(), "image_url": PRESIGNED_URL, "presigned_url": PRESIGNED_URL}
    )
    body = parked.model_dump_json()
    assert "X-Amz-Signature" not in body
    assert "X-Amz-Credential" not in body
    assert set(json.loads(body)) == set(RetryMessage.model_fields)


@pytest.mark.parametrize(
    "overrides", [{"bucket": ""}, {"key": ""}, {"attempt": -1}, {"due_at": "tomorrow"}, {"reason": None}]
)
def test_unreadable_retry_message_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        message(**overrides)


def test_retry_message_upload_is_the_same_object_version() -> None:
    assert message().upload() == UploadedObject(
        bucket="input-bucket",
        key="uploads/my photo!.jpg",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
        s3_request_id="C3D13FE58DE4C810",
    )


def test_schedule_sends_the_message_with_its_delay_and_attributes() -> None:
    sqs = RecordingSqs()
    queue = DelayQueue(sqs, "https://sqs/delay", "https://sqs/dlq")  # type: ignore[arg-type]
    parked = message(due_at=NOW + 61.5)
    assert queue.schedule(parked, NOW) == 62
    (sent,) = sqs.sent
    assert sent["QueueUrl"] == "https://sqs/delay"
    assert sent["DelaySeconds"] == 62
    assert RetryMessage.model_validate_json(sent["MessageBody"]) == parked
    attributes = sent["MessageAttributes"]
    assert attributes["reason"] == {"DataType": "String", "StringValue": "throttled: HTTP 429"}
    assert attributes["attempt"] == {"DataType": "Number", "StringValue": "2"}
    assert attributes["s3_request_id"] == {"DataType": "String", "StringValue": "C3D13FE58DE4C810"}


def test_work_due_after_the_longest_sqs_delay_hops_with_900_seconds() -> None:
    sqs = RecordingSqs()
    queue = DelayQueue(sqs, "https://sqs/delay", "https://sqs/dlq")  # type: ignore[arg-type]
    assert queue.schedule(message(due_at=NOW + 3600), NOW) == 900
    assert json.loads(sqs.sent[0]["MessageBody"])["due_at"] == NOW + 3600


def test_dead_letter_carries_the_reason_in_body_and_attribute() -> None:
    sqs = RecordingSqs()
    queue = DelayQueue(sqs, "https://sqs/delay", "https://sqs/dlq")  # type: ignore[arg-type]
    queue.dead_letter(message(), "gave up after 6 attempts; last: throttled: HTTP 429")
    (sent,) = sqs.sent
    assert sent["QueueUrl"] == "https://sqs/dlq"
    assert "DelaySeconds" not in sent
    assert json.loads(sent["MessageBody"])["reason"] == "gave up after 6 attempts; last: throttled: HTTP 429"
    assert sent["MessageAttributes"]["reason"]["StringValue"] == "gave up after 6 attempts; last: throttled: HTTP 429"


def test_unreadable_body_is_dead_lettered_as_it_came() -> None:
    sqs = RecordingSqs()
    queue = DelayQueue(sqs, "https://sqs/delay", "https://sqs/dlq")  # type: ignore[arg-type]
    queue.dead_letter("{not json", "unreadable delay-queue message")
    (sent,) = sqs.sent
    assert sent["MessageBody"] == "{not json"
    assert set(sent["MessageAttributes"]) == {"reason", "dead_lettered_by"}


def test_long_reason_attribute_is_cut_to_fit() -> None:
    sqs = RecordingSqs()
    queue = DelayQueue(sqs, "https://sqs/delay", "https://sqs/dlq")  # type: ignore[arg-type]
    queue.dead_letter("raw", "x" * 5000)
    assert len(sqs.sent[0]["MessageAttributes"]["reason"]["StringValue"]) == 1000


def test_a_batch_is_taken_in_turn_order_unreadable_records_first() -> None:
    """Records are processed one after the other: a later turn taken first made the earlier ones late."""
    records = [
        {"messageId": "late-turn", "body": message(due_at=NOW, turn_at=NOW + 2.5, in_line=True).model_dump_json()},
        {"messageId": "no-turn", "body": message(due_at=NOW + 1.0).model_dump_json()},
        {"messageId": "unreadable", "body": "not json"},
        {"messageId": "early-turn", "body": message(due_at=NOW, turn_at=NOW + 0.5, in_line=True).model_dump_json()},
    ]
    ordered = [record["messageId"] for record in in_turn_order(records)]
    assert ordered == ["unreadable", "early-turn", "no-turn", "late-turn"]
