"""The Picsart Image API client: builds requests the way the troubleshooting guide asks, and reads answers.

- Exactly one input, `image_url`; never `image` or `image_id`.
- `multipart/form-data` bodies (the spec's body type), `Accept: application/json` always.
- Paths joined without double slashes.
- No retries here: a failed call goes back to the delay queue, so no invocation hammers the API.
- Every answer, success or error, is returned with its status, body, correlation id and rate-limit headers;
  the caller decides what it means (see `outcomes`).
The API key is sent only to the Picsart base URL (never to a result URL) and never appears in a repr.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import urllib3

from picsart_adapter.tools import Tool, ToolParameters

API_KEY_HEADER = "X-Picsart-API-Key"
CORRELATION_ID_HEADER = "X-Picsart-Correlation-Id"
#: Error bodies are kept for support reports (guide: "Record the response body"), within a record's size.
MAX_ERROR_BODY_CHARS = 4000
_FOLLOW_REDIRECTS_ONLY = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=3)


class PicsartTransportError(Exception):
    """No HTTP answer: timeout, refused or dropped connection. `kind` is "timeout" or "connection"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class ResultDownloadError(Exception):
    """The result URL Picsart gave could not be fetched."""


@dataclass(frozen=True)
class RateLimitHeaders:
    """The `X-Picsart-RateLimit-*` and credit headers of one answer, as given (absent -> None)."""

    limit: int | None = None
    available: int | None = None
    reset_time: str | None = None
    credits: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitHeaders:
        lowered = {name.lower(): value for name, value in headers.items()}

        def number(name: str) -> int | None:
            value = lowered.get(name)
            try:
                return int(float(value)) if value is not None else None
            except (ValueError, OverflowError):
                return None

        return cls(
            limit=number("x-picsart-ratelimit-limit"),
            available=number("x-picsart-ratelimit-available"),
            reset_time=lowered.get("x-picsart-ratelimit-reset-time"),
            credits=number("x-picsart-credit-available"),
        )

    def as_record(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class PicsartResponse:
    """One answer of the API."""

    status: int
    body: dict[str, Any] | None
    raw_body: str
    correlation_id: str | None
    rate_limit: RateLimitHeaders
    duration_ms: int

    @property
    def result_url(self) -> str | None:
        """`data.url` exactly as given: the guide forbids taking result URLs apart or building them."""
        data = (self.body or {}).get("data")
        url = data.get("url") if isinstance(data, dict) else None
        return url if isinstance(url, str) and url else None

    @property
    def transaction_id(self) -> str | None:
        """The id of an asynchronous job (202 answers), to poll its result with."""
        value = (self.body or {}).get("transaction_id")
        return value if isinstance(value, str) and value else None

    @property
    def error_detail(self) -> str:
        """A one-line account of an error answer, from whichever error body shape the gateway used."""
        body = self.body or {}
        fault = body.get("fault")
        if isinstance(fault, dict):
            return str(fault.get("faultstring") or fault)
        parts = [str(body[k]) for k in ("message", "detail") if body.get(k)]
        return ": ".join(parts) if parts else self.raw_body[:200] or f"HTTP {self.status}"


@dataclass(frozen=True)
class PreparedRequest:
    """A request ready to send. Its repr hides the API key."""

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)


def join_url(base_url: str, path: str) -> str:
    """Base URL + path with exactly one slash between them."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


class PicsartClient:
    """Calls the Image API with a key fetched on demand (so a rotated secret is picked up after its cache)."""

    def __init__(
        self,
        base_url: str,
        api_key: Callable[[], str],
        timeout_seconds: float,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = urllib3.Timeout(connect=min(5.0, timeout_seconds), read=timeout_seconds)
        self._http = http or urllib3.PoolManager(maxsize=4, retries=False)

    def __repr__(self) -> str:
        return f"PicsartClient(base_url={self._base_url!r})"

    def build_tool_request(self, tool: Tool, image_url: str, parameters: ToolParameters) -> PreparedRequest:
        """The request for one tool call: the tool's parameters plus `image_url` as the only input."""
        fields = parameters.form_fields()
        fields["image_url"] = image_url
        body, content_type = urllib3.encode_multipart_formdata(fields)
        extra = {"Content-Type": content_type}
        if tool.asynchronous:
            # RFC 7240, as the spec asks (its `mode` parameter is deprecated): a 202 and a transaction id.
            extra["Prefer"] = "respond-async"
        return PreparedRequest(
            method="POST",
            url=join_url(self._base_url, tool.path),
            headers=self._headers(extra),
            body=body,
        )

    def build_poll_request(self, tool: Tool, transaction_id: str) -> PreparedRequest:
        """`GET <tool path>/<transaction_id>`: the spec's way to the result of an asynchronous job."""
        path = f"{tool.path}/{urllib.parse.quote(transaction_id, safe='')}"
        return PreparedRequest("GET", join_url(self._base_url, path), self._headers({}), b"")

    def build_balance_request(self) -> PreparedRequest:
        return PreparedRequest("GET", join_url(self._base_url, "/balance"), self._headers({}), b"")

    def call_tool(self, tool: Tool, image_url: str, parameters: ToolParameters) -> PicsartResponse:
        return self.send(self.build_tool_request(tool, image_url, parameters))

    def poll(self, tool: Tool, transaction_id: str) -> PicsartResponse:
        return self.send(self.build_poll_request(tool, transaction_id))

    def balance(self) -> PicsartResponse:
        return self.send(self.build_balance_request())

    def send(self, request: PreparedRequest) -> PicsartResponse:
        started = time.monotonic()
        try:
            answer = self._http.request(
                request.method,
                request.url,
                body=request.body or None,
                headers=request.headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.NewConnectionError as error:
            # Checked first: in urllib3 2 a refused connection is a subclass of ConnectTimeoutError.
            raise PicsartTransportError("connection", type(error).__name__) from None
        except (urllib3.exceptions.TimeoutError, urllib3.exceptions.ReadTimeoutError) as error:
            raise PicsartTransportError("timeout", type(error).__name__) from None
        except urllib3.exceptions.HTTPError as error:
            # The message of a connection error can hold the URL but never the key (it is in a header).
            raise PicsartTransportError("connection", type(error).__name__) from None
        return parse_response(
            answer.status,
            dict(answer.headers.items()),
            answer.data,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    def download_result(self, url: str) -> tuple[bytes, str]:
        """Fetch a result from the URL Picsart gave, as given and without the API key (it is a CDN URL)."""
        try:
            # Redirects are followed here (a CDN may redirect; no key is sent), nothing else is retried.
            answer = self._http.request("GET", url, timeout=self._timeout, retries=_FOLLOW_REDIRECTS_ONLY)
        except urllib3.exceptions.HTTPError as error:
            raise ResultDownloadError(f"result download failed: {type(error).__name__}") from None
        if answer.status != 200:
            raise ResultDownloadError(f"result download answered HTTP {answer.status}")
        return answer.data, answer.headers.get("Content-Type", "application/octet-stream")

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        return {API_KEY_HEADER: self._api_key(), "Accept": "application/json", **extra}


def parse_response(status: int, headers: Mapping[str, str], raw: bytes, duration_ms: int = 0) -> PicsartResponse:
    """Read an answer: JSON body when there is one, the correlation id and the rate-limit headers."""
    text = raw.decode("utf-8", errors="replace")
    body: dict[str, Any] | None
    try:
        parsed = json.loads(text) if text else None
        body = parsed if isinstance(parsed, dict) else None
    except json.JSONDecodeError:
        body = None
    lowered = {name.lower(): value for name, value in headers.items()}
    return PicsartResponse(
        status=status,
        body=body,
        raw_body=text[:MAX_ERROR_BODY_CHARS],
        correlation_id=lowered.get(CORRELATION_ID_HEADER.lower()),
        rate_limit=RateLimitHeaders.from_headers(headers),
        duration_ms=duration_ms,
    )
