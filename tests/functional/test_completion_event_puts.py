"""Completion events through the EventBridge client the functions build (`dependencies.events_client`), against a
bus on 127.0.0.1 that answers every put with a server error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from picsart_adapter.completion_events import PUT_FAILED_MESSAGE, PUT_TRIES, CompletionEvents
from picsart_adapter.dependencies import events_client


class RefusingBus(BaseHTTPRequestHandler):
    """Counts each PutEvents request and answers it 500, which the SDK's standard mode would retry."""

    requests = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).requests += 1
        body = b'{"__type":"InternalException","message":"try again"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[RefusingBus]]:
    RefusingBus.requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingBus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield RefusingBus
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_each_try_of_a_put_is_one_request_and_each_failed_one_is_logged(
    refusing_bus: type[RefusingBus], caplog: pytest.LogCaptureFixture
) -> None:
    """A try whose answer is lost may have delivered the event, so a retry can deliver it twice: every request
    is one of CompletionEvents' own tries, each one that failed logged with the event's key, and the SDK retries
    none unseen."""
    events = CompletionEvents(events_client(boto3.session.Session()), "default", sleep=lambda _: None)

    delivered = events.put({"status": "succeeded", "key": "uploads/photo.jpg"})

    assert delivered is False
    assert refusing_bus.requests == PUT_TRIES
    failed = [record for record in caplog.records if record.getMessage() == PUT_FAILED_MESSAGE]
    assert [record.__dict__["event_key"] for record in failed] == ["uploads/photo.jpg"] * PUT_TRIES
