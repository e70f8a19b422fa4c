"""Shaping the emulator's answers: JSON bodies, the five X-Picsart headers, and reading what a request says."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
import time
from urllib.parse import parse_qs, urlsplit

from werkzeug.wrappers import Request, Response

from .errors import ApiError
from .state import GatewayState, RateSnapshot, Throttle, format_reset_time, named_reset

RAW_TARGET_KEY = "picsart_emulator.raw_target"
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


@dataclasses.dataclass
class Call:
    """What is known about the request being handled, for its call record and headers."""

    at: float
    started: float
    method: str
    path: str
    correlation_id: str
    tool: str | None = None
    image_url_path: str | None = None
    image_url_expires: int | None = None
    throttled: Throttle | None = None
    snapshot: RateSnapshot | None = None
    #: The reset the answer's header named (epoch seconds), for the call log.
    reset_at: float | None = None


class Answers:
    """Builds answers carrying the correlation id and, where asked, the rate-limit and credit headers."""

    def __init__(self, state: GatewayState) -> None:
        self._state = state

    def rate_headers(self, call: Call) -> dict[str, str]:
        """The four rate-limit and credit headers, from the snapshot taken at admission when there is one."""
        now = time.time()
        snapshot = call.snapshot or self._state.snapshot(now)
        form = self._state.settings.reset_time_format
        call.reset_at = named_reset(snapshot.reset_at, now, form)
        return {
            "X-Picsart-RateLimit-Limit": str(snapshot.limit),
            "X-Picsart-RateLimit-Available": str(snapshot.available),
            "X-Picsart-RateLimit-Reset-Time": format_reset_time(snapshot.reset_at, now, form),
            "X-Picsart-Credit-Available": str(self._state.credits),
        }

    def json(self, status: int, payload: object, call: Call, *, with_rate_headers: bool = True) -> Response:
        """A JSON answer with the correlation id, and the other four headers unless told otherwise."""
        response = Response(json.dumps(payload), status=status, mimetype="application/json")
        response.headers["X-Picsart-Correlation-Id"] = call.correlation_id
        if with_rate_headers:
            response.headers.update(self.rate_headers(call))
        return response

    def error(self, error: ApiError, call: Call, *, with_rate_headers: bool = True) -> Response:
        """An error in Picsart's shape (`ApiError.body`)."""
        return self.json(error.status, error.body, call, with_rate_headers=with_rate_headers)

    def bare_429(self, call: Call) -> Response:
        """A 429 as some gateways send it: no rate-limit or credit headers at all."""
        call.throttled = "quota"
        body = {
            "fault": {
                "faultstring": "Rate limit quota violation. Quota limit exceeded. Identifier : _default",
                "detail": {"errorcode": "policies.ratelimit.QuotaViolation"},
            }
        }
        return self.json(429, body, call, with_rate_headers=False)


def plain_json(status: int, payload: object) -> Response:
    """A JSON answer with no Picsart headers (admin endpoints)."""
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def spike_error(per_second: int) -> ApiError:
    """The gateway's spike-arrest 429, whose body is a ``{"fault": ...}`` rather than Picsart's error shape."""
    faultstring = (
        "Spike arrest violation. Allowed rate : MessageRate{messagesPerPeriod="
        f"{per_second}, periodInMicroseconds=1000000, maxBurstMessageCount={float(per_second)}}}"
    )
    body = {
        "fault": {
            "faultstring": faultstring,
            "detail": {"errorcode": "policies.ratelimit.SpikeArrestViolation"},
        }
    }
    return ApiError(429, faultstring, body=body)


def accepts_json(accept: str | None) -> bool:
    """Whether the Accept header lists application/json itself (wildcards do not count)."""
    if not accept:
        return False
    return any(part.split(";", 1)[0].strip().lower() == "application/json" for part in accept.split(","))


def raw_path(request: Request) -> str:
    """The path as sent, before werkzeug's parsing could fold a leading double slash."""
    environ = request.environ
    raw = str(environ.get(RAW_TARGET_KEY) or environ.get("RAW_URI") or request.path)
    if raw.startswith(("http://", "https://")):
        # Absolute form ("GET http://host/path"): keep only the path.
        raw = urlsplit(raw).path
    return raw.split("?", 1)[0]


def presigned_expires(value: object) -> int | None:
    """X-Amz-Expires of a presigned image_url (its lifetime in seconds), the one part of its query kept."""
    if not isinstance(value, str):
        return None
    try:
        expires = parse_qs(urlsplit(value).query).get("X-Amz-Expires", [])
        return int(expires[0]) if expires else None
    except ValueError:
        return None


def public_root(request: Request, fallback: str) -> str:
    """``http://<Host header>`` if it looks like a host, else the emulator's own root URL."""
    host = request.headers.get("Host", "")
    return f"http://{host}" if _HOST.fullmatch(host) else fallback


def shutdown_socket(sock: object) -> None:
    """Close both directions of the client socket so that no answer can be written."""
    if isinstance(sock, socket.socket):
        # OSError: the client may have closed it already.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
