"""Completion events through the EventBridge client the functions build (`dependencies.events_client`), against a
bus on 127.0.0.1 that answers every put with a server error."""

from __future__ import annotations

import boto3
import pytest

from picsart_adapter.completion_events import PUT_FAILED_MESSAGE, PUT_TRIES, CompletionEvents
from picsart_adapter.dependencies import events_client

from .conftest import RecordingServer, Reply


def test_each_try_of_a_put_is_one_request_and_each_failed_one_is_logged(
    http_server: RecordingServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A try whose answer is lost may have delivered the event, so a retry can deliver it twice: every request
    is one of CompletionEvents' own tries, each one that failed logged with the event's key, and the SDK retries
    none unseen (a 500 is one it would retry)."""
    http_server.responder = lambda _request: Reply(
        500, {"Content-Type": "application/x-amz-json-1.1"}, b'{"__type":"InternalException","message":"try again"}'
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", http_server.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    events = CompletionEvents(events_client(boto3.session.Session()), "default", sleep=lambda _: None)

    delivered = events.put({"status": "succeeded", "key": "uploads/photo.jpg"})

    assert delivered is False
    assert len(http_server.requests) == PUT_TRIES
    failed = [record for record in caplog.records if record.getMessage() == PUT_FAILED_MESSAGE]
    assert [record.__dict__["event_key"] for record in failed] == ["uploads/photo.jpg"] * PUT_TRIES
