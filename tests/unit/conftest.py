"""Shared fixtures of the unit tests: a recording HTTP server on loopback and a real-shaped S3 event."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

#: The key the tests give the client; no error message, repr or download may ever show it.
API_KEY = "sk-unit-test-NEVER-SHOWN-7f3a9c"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Message
    body: bytes


@dataclass(frozen=True)
class Reply:
    """What the server does with a request: answer, close the connection unanswered, or stall."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    action: str = "answer"  # "answer" | "close" | "stall"


Responder = Callable[[RecordedRequest], Reply]


class RecordingServer:
    """A tiny HTTP server on 127.0.0.1 (port 0) that records every request and answers as told."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.responder: Responder = lambda _request: Reply(200, {"Content-Type": "application/json"}, b"{}")
        self.release = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = RecordedRequest(self.command, self.path, self.headers, body)
                with owner._lock:
                    owner.requests.append(request)
                reply = owner.responder(request)
                if reply.action == "close":
                    self.close_connection = True
                    return
                if reply.action == "stall":
                    # Held until the test ends; the client gives up long before.
                    owner.release.wait(10)
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client that hung up on a stalled request is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    server.start()
    yield server
    server.stop()


#: An `ObjectCreated:Put` notification shaped like AWS's sample (event message structure, version 2.1).
S3_PUT_EVENT: dict[str, Any] = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2024-05-06T07:08:09.123Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "203.0.113.7"},
            "responseElements": {
                "x-amz-request-id": "C3D13FE58DE4C810",
                "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "ImageUploads",
                "bucket": {
                    "name": "input-bucket-123456789012",
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": "arn:aws:s3:::input-bucket-123456789012",
                },
                "object": {
                    "key": "uploads/my+photo%21.jpg",
                    "size": 1024,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                    "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                    "sequencer": "0055AED6DCD90281E5",
                },
            },
        }
    ]
}


@pytest.fixture
def s3_put_event() -> dict[str, Any]:
    """A fresh copy of the sample event, free to modify."""
    return copy.deepcopy(S3_PUT_EVENT)


def s3_record(key: str, event_name: str = "ObjectCreated:Put", bucket: str = "input-bucket") -> dict[str, Any]:
    """One record like the sample's, with another key (as S3 encodes it) and event name."""
    record: dict[str, Any] = copy.deepcopy(S3_PUT_EVENT["Records"][0])
    record["eventName"] = event_name
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"]["key"] = key
    return record
