"""The Picsart client: requests built as the troubleshooting guide asks, answers read without guessing.

Guide rules named per test: one input only; multipart/form-data bodies; `accept: application/json` (406);
no double slashes (404); "Avoid manually dissecting URLs"; "Capture the value of the X-Picsart-Correlation-Id";
"Record the response body if it is an error response".
"""

from __future__ import annotations

import json
import socket
import traceback
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, cast

import pytest

from picsart_adapter.picsart_client import (
    API_KEY_HEADER,
    MAX_ERROR_BODY_CHARS,
    PicsartClient,
    PicsartTransportError,
    RateLimitHeaders,
    ResultDownloadError,
    join_url,
    parse_response,
)
from picsart_adapter.tools import TOOLS, RemoveBackgroundParameters, UpscaleParameters, UpscaleUltraParameters

from .conftest import API_KEY, RecordedRequest, RecordingServer, Reply

PRESIGNED_URL = (
    "https://input-bucket.s3.amazonaws.com/uploads/my%20photo.jpg?versionId=abc"
    "&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240506%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20240506T070809Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=deadbeef"
)
JSON = {"Content-Type": "application/json"}


def make_client(base_url: str = "https://api.picsart.io/tools/1.0", timeout: float = 5.0) -> PicsartClient:
    return PicsartClient(base_url, lambda: API_KEY, timeout_seconds=timeout)


def form_parts(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a multipart/form-data body, read by the standard library's MIME parser."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    assert isinstance(message, EmailMessage)
    assert message.is_multipart()
    parts: list[tuple[str, str]] = []
    for part in message.iter_parts():
        assert part.get_content_disposition() == "form-data"
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str)
        assert part.get_filename() is None, "no file is ever uploaded"
        parts.append((name, cast(str, part.get_content())))
    return parts


def header(headers: dict[str, str] | Message, name: str) -> str | None:
    """A header's value, looked up case-insensitively."""
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


# --- Building requests -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    ["https://api.picsart.io/tools/1.0", "https://api.picsart.io/tools/1.0/", "https://api.picsart.io/tools/1.0//"],
)
def test_tool_request_posts_to_the_tool_path_without_double_slash(base_url: str) -> None:
    """Guide, 404: "Including unintended double slashes in the URL, such as /tools/1.0//removebg"."""
    request = make_client(base_url).build_tool_request(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert request.method == "POST"
    assert request.url == "https://api.picsart.io/tools/1.0/removebg"


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://h/tools/1.0", "/upscale", "https://h/tools/1.0/upscale"),
        ("https://h/tools/1.0/", "/upscale", "https://h/tools/1.0/upscale"),
        ("https://h/tools/1.0", "upscale", "https://h/tools/1.0/upscale"),
        ("https://h/tools/1.0/", "balance", "https://h/tools/1.0/balance"),
    ],
)
def test_join_url_puts_exactly_one_slash_between(base: str, path: str, expected: str) -> None:
    """Guide, 404: double slashes in the path."""
    assert join_url(base, path) == expected


def test_tool_request_headers_carry_accept_key_and_multipart_type() -> None:
    """Guide, 406: "the client doesn't specify the accept: application/json header"; spec body type
    multipart/form-data; the key goes in the X-Picsart-API-Key header (docs/picsart-api.md)."""
    request = make_client().build_tool_request(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert header(request.headers, "Accept") == "application/json"
    assert header(request.headers, "X-Picsart-API-Key") == API_KEY
    content_type = header(request.headers, "Content-Type")
    assert content_type is not None
    assert content_type.startswith("multipart/form-data; boundary=")


def test_asynchronous_tool_asks_for_an_immediate_answer_and_sync_tools_do_not() -> None:
    """Spec: "To control synchronous vs asynchronous execution, use the standard HTTP Prefer header"."""
    client = make_client()
    ultra = client.build_tool_request(TOOLS["ultra-upscale"], PRESIGNED_URL, UpscaleUltraParameters(upscale_factor=4))
    assert ultra.url == "https://api.picsart.io/tools/1.0/upscale/ultra"
    assert header(ultra.headers, "Prefer") == "respond-async"
    removebg = client.build_tool_request(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert header(removebg.headers, "Prefer") is None


def test_poll_request_gets_the_transaction_under_the_tool_path_with_accept_and_key() -> None:
    request = make_client("https://api.picsart.io/tools/1.0/").build_poll_request(TOOLS["ultra-upscale"], "a1/b 2")
    assert (request.method, request.body) == ("GET", b"")
    assert request.url == "https://api.picsart.io/tools/1.0/upscale/ultra/a1%2Fb%202"
    assert header(request.headers, "Accept") == "application/json"
    assert header(request.headers, "X-Picsart-API-Key") == API_KEY


def test_accepted_answer_gives_its_transaction_id() -> None:
    answer = parse_response(202, {}, b'{"status": "processing", "transaction_id": "t-1"}')
    assert answer.transaction_id == "t-1"
    assert parse_response(200, {}, b'{"status": "success"}').transaction_id is None


def test_tool_request_body_has_image_url_as_the_only_input_plus_the_parameters() -> None:
    """Guide: "Avoid providing image, image_url, and image_id simultaneously. Only one of these should be
    included as input." The URL is sent exactly as given (query string and all)."""
    parameters = RemoveBackgroundParameters.model_validate(
        {"output_type": "cutout", "bg_blur": 40, "auto_center": True, "format": "WEBP"}
    )
    request = make_client().build_tool_request(TOOLS["removebg"], PRESIGNED_URL, parameters)
    parts = form_parts(request.headers["Content-Type"], request.body)
    names = [name for name, _ in parts]
    assert sorted(names) == sorted(["image_url", "output_type", "bg_blur", "auto_center", "format"])
    assert len(names) == len(set(names)), "no field twice"
    assert names.count("image_url") == 1
    assert "image" not in names
    assert "image_id" not in names
    assert dict(parts) == {
        "image_url": PRESIGNED_URL,
        "output_type": "cutout",
        "bg_blur": "40",
        "auto_center": "true",
        "format": "WEBP",
    }


def test_upscale_request_carries_the_mandatory_factor() -> None:
    """Guide: "Double-check that all mandatory parameters have been provided"."""
    request = make_client().build_tool_request(
        TOOLS["upscale"], PRESIGNED_URL, UpscaleParameters.model_validate({"upscale_factor": 4})
    )
    assert request.url == "https://api.picsart.io/tools/1.0/upscale"
    assert dict(form_parts(request.headers["Content-Type"], request.body)) == {
        "upscale_factor": "4",
        "image_url": PRESIGNED_URL,
    }


def test_balance_request_is_a_get_with_accept_and_key_and_no_body() -> None:
    """Guide, 406: Accept on every call; the balance is `GET /balance` (docs/picsart-api.md)."""
    request = make_client("https://api.picsart.io/tools/1.0/").build_balance_request()
    assert (request.method, request.url, request.body) == ("GET", "https://api.picsart.io/tools/1.0/balance", b"")
    assert header(request.headers, "Accept") == "application/json"
    assert header(request.headers, API_KEY_HEADER) == API_KEY


def test_key_is_fetched_per_request_so_a_rotated_secret_is_used() -> None:
    keys = iter(["key-before-rotation", "key-after-rotation"])
    client = PicsartClient("https://api.picsart.io/tools/1.0", lambda: next(keys), timeout_seconds=5)
    first = client.build_tool_request(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    second = client.build_tool_request(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert first.headers[API_KEY_HEADER] == "key-before-rotation"
    assert second.headers[API_KEY_HEADER] == "key-after-rotation"


def test_reprs_never_show_the_api_key_nor_the_presigned_url() -> None:
    """The key is a secret and the presigned URL a credential: neither may reach a log through a repr."""
    client = make_client()
    request = client.build_tool_request(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert API_KEY in request.headers[API_KEY_HEADER]  # the secret is really in there...
    for text in (repr(client), str(client), repr(request), str(request)):
        assert API_KEY not in text  # ...and never shown
        assert "X-Amz-Signature" not in text
    assert "api.picsart.io" in repr(request)


# --- Reading answers ---------------------------------------------------------------------------------------


def response_of(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_response(status, headers or {}, raw)


def test_success_result_url_is_data_url_exactly_as_given() -> None:
    """Guide: "Avoid manually dissecting URLs ... reference the URL value directly instead of stripping off
    the parameters"."""
    url = "https://cdn.picsart.io/9a2c6b1e.png?token=a%2Fb%3D&expires=1717000000&sig=xyz"
    response = response_of(200, {"status": "success", "data": {"id": "9a2c6b1e", "url": url}})
    assert response.status == 200
    assert response.result_url == url


@pytest.mark.parametrize(
    "body", [{"status": "success"}, {"status": "success", "data": {"url": ""}}, {"data": ["x"]}, {"data": {"url": 5}}]
)
def test_success_without_usable_data_url_has_no_result_url(body: dict[str, Any]) -> None:
    """No result URL is ever built or guessed (guide: "anticipate the configuration of future URLs")."""
    assert response_of(200, body).result_url is None


def test_error_body_detail_contains_message_and_detail() -> None:
    """Guide: "consult the API's provided error message"; "Record the response body if it is an error"."""
    body = {"code": 422, "message": "Validation failed", "detail": "bg_blur must be less than or equal to 100"}
    response = response_of(422, body)
    assert "Validation failed" in response.error_detail
    assert "bg_blur must be less than or equal to 100" in response.error_detail
    assert json.loads(response.raw_body) == body


def test_gateway_429_fault_body_detail_is_the_faultstring() -> None:
    """Some of Picsart's gateways answer 429 with `{"fault": {"faultstring": ...}}` (docs/picsart-api.md)."""
    body = {"fault": {"faultstring": "Rate limit quota violation. Quota limit exceeded", "detail": {"errorcode": "x"}}}
    assert response_of(429, body).error_detail == "Rate limit quota violation. Quota limit exceeded"


def test_non_json_body_is_kept_raw() -> None:
    """Guide: "Record the response body if it is an error response", whatever it is (an HTML 502 page)."""
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    response = response_of(502, html)
    assert response.body is None
    assert response.raw_body == html.decode()
    assert "502 Bad Gateway" in response.error_detail


def test_empty_body_error_detail_names_the_status() -> None:
    response = response_of(503, b"")
    assert response.body is None
    assert response.error_detail == "HTTP 503"


def test_long_error_body_is_kept_within_the_record_limit() -> None:
    response = response_of(500, b"x" * (MAX_ERROR_BODY_CHARS * 3))
    assert response.raw_body == "x" * MAX_ERROR_BODY_CHARS


@pytest.mark.parametrize("case", [str.title, str.lower, str.upper])
def test_headers_are_read_case_insensitively(case: Any) -> None:
    """Header names are case-insensitive: the spec writes `Ratelimit`, the guide `RateLimit` (docs/picsart-api.md).
    Guide: "Capture the value of the X-Picsart-Correlation-Id response header"."""
    names = {
        "X-Picsart-Correlation-Id": "corr-1234",
        "X-Picsart-RateLimit-Limit": "500",
        "X-Picsart-RateLimit-Available": "0",
        "X-Picsart-RateLimit-Reset-Time": "1717000000000",
        "X-Picsart-Credit-Available": "199",
    }
    response = response_of(429, {"code": 429, "message": "Too Many Requests"}, {case(k): v for k, v in names.items()})
    assert response.correlation_id == "corr-1234"
    assert response.rate_limit == RateLimitHeaders(limit=500, available=0, reset_time="1717000000000", credits=199)


def test_spec_and_guide_spellings_of_ratelimit_headers_are_both_read() -> None:
    spec_spelling = response_of(200, {}, {"X-Picsart-Ratelimit-Available": "7"})
    guide_spelling = response_of(200, {}, {"X-Picsart-RateLimit-Available": "7"})
    lower = response_of(200, {}, {"x-picsart-ratelimit-available": "7"})
    assert spec_spelling.rate_limit.available == guide_spelling.rate_limit.available == lower.rate_limit.available == 7


def test_missing_headers_are_none() -> None:
    response = response_of(200, {"status": "success", "data": {"url": "https://cdn.picsart.io/a.png"}})
    assert response.correlation_id is None
    assert response.rate_limit == RateLimitHeaders(None, None, None, None)
    assert response.rate_limit.as_record() == {}


def test_unreadable_number_headers_are_none_and_reset_time_is_kept_as_given() -> None:
    """Reset-Time is interpreted later (`rate_limit`), so it is kept as text; counts that are not numbers are
    not guessed."""
    response = response_of(429, {}, {"X-Picsart-RateLimit-Available": "many", "X-Picsart-RateLimit-Reset-Time": " 30 "})
    assert response.rate_limit.available is None
    assert response.rate_limit.reset_time == " 30 "
    assert response.rate_limit.as_record() == {"reset_time": " 30 "}


@pytest.mark.parametrize("value", ["1e400", "inf", "-Infinity"])
def test_overflowing_number_header_is_none_not_an_exception(value: str) -> None:
    """Guide: "Capture the value of the X-Picsart-Correlation-Id" -- a bad rate-limit header must not cost
    the rest of the answer."""
    response = response_of(200, {"data": {"url": "https://cdn.picsart.io/a.png"}}, {"X-Picsart-RateLimit-Limit": value})
    assert response.rate_limit.limit is None
    assert response.result_url == "https://cdn.picsart.io/a.png"


# --- Real HTTP round trips on loopback ---------------------------------------------------------------------


def test_round_trip_sends_multipart_with_accept_and_key_and_reads_the_answer(http_server: RecordingServer) -> None:
    """Guide: 406 (Accept), one input, multipart body; correlation id and rate-limit headers captured."""
    result_url = "https://cdn.picsart.io/result.png?sig=abc"
    http_server.responder = lambda _r: Reply(
        200,
        {
            **JSON,
            "X-Picsart-Correlation-Id": "corr-ok-1",
            "X-Picsart-Ratelimit-Available": "499",
            "X-Picsart-Ratelimit-Limit": "500",
        },
        json.dumps({"status": "success", "data": {"id": "r1", "url": result_url}}).encode(),
    )
    client = make_client(http_server.url + "/tools/1.0/")
    parameters = RemoveBackgroundParameters.model_validate({"output_type": "mask"})
    response = client.call_tool(TOOLS["removebg"], PRESIGNED_URL, parameters)

    assert len(http_server.requests) == 1
    sent = http_server.requests[0]
    assert (sent.method, sent.path) == ("POST", "/tools/1.0/removebg")
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers[API_KEY_HEADER] == API_KEY
    assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert dict(form_parts(sent.headers["Content-Type"], sent.body)) == {
        "output_type": "mask",
        "image_url": PRESIGNED_URL,
    }
    assert response.status == 200
    assert response.result_url == result_url
    assert response.correlation_id == "corr-ok-1"
    assert (response.rate_limit.available, response.rate_limit.limit) == (499, 500)
    assert response.duration_ms >= 0


def test_error_answer_is_returned_not_raised(http_server: RecordingServer) -> None:
    """Guide: "Avoid overlooking errors" -- a 4xx comes back with status, body and correlation id."""
    body = {"code": 422, "message": "Unprocessable Entity", "detail": "image_url is not reachable"}
    http_server.responder = lambda _r: Reply(
        422, {**JSON, "X-Picsart-Correlation-Id": "corr-422"}, json.dumps(body).encode()
    )
    response = make_client(http_server.url).call_tool(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert (response.status, response.correlation_id, response.body) == (422, "corr-422", body)
    assert "image_url is not reachable" in response.error_detail


def test_client_does_not_retry_a_503(http_server: RecordingServer) -> None:
    """Guide: "Persisting in sending requests while facing rate limitations can lead to the suspension of your
    integration" -- retries go through the delay queue, never inside the client."""
    http_server.responder = lambda _r: Reply(503, JSON, b'{"code": 503, "message": "Service Unavailable"}')
    response = make_client(http_server.url).call_tool(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert response.status == 503
    assert len(http_server.requests) == 1


def test_client_does_not_retry_a_429(http_server: RecordingServer) -> None:
    """Guide: on a rate limit error, pause (here: through the delay queue), do not persist."""
    http_server.responder = lambda _r: Reply(429, {**JSON, "X-Picsart-RateLimit-Reset-Time": "30"}, b"{}")
    response = make_client(http_server.url).call_tool(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert response.status == 429
    assert response.rate_limit.reset_time == "30"
    assert len(http_server.requests) == 1


def test_redirect_is_not_followed_with_the_key(http_server: RecordingServer) -> None:
    """The key is sent only to the Picsart base URL: a redirect elsewhere is returned, not followed."""
    http_server.responder = lambda r: Reply(302, {"Location": "http://example.invalid/steal"}, b"")
    response = make_client(http_server.url).call_tool(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert response.status == 302
    assert len(http_server.requests) == 1


def assert_key_not_shown(error: BaseException) -> None:
    shown = "".join(traceback.format_exception(error)) + repr(error) + str(error)
    assert API_KEY not in shown


def test_connection_closed_without_answer_is_a_connection_error(http_server: RecordingServer) -> None:
    """No answer at all is a transport error (then TRANSIENT), raised once: no retry inside the client."""
    http_server.responder = lambda _r: Reply(action="close")
    with pytest.raises(PicsartTransportError) as caught:
        make_client(http_server.url).call_tool(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert caught.value.kind == "connection"
    assert str(caught.value).startswith("connection: ")
    assert len(http_server.requests) == 1
    assert_key_not_shown(caught.value)


def test_server_slower_than_the_timeout_is_a_timeout_error(http_server: RecordingServer) -> None:
    """A call that outlives its timeout is given up (then TRANSIENT), without the key in the message."""
    http_server.responder = lambda _r: Reply(action="stall")
    with pytest.raises(PicsartTransportError) as caught:
        make_client(http_server.url, timeout=0.3).call_tool(
            TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters()
        )
    assert caught.value.kind == "timeout"
    assert len(http_server.requests) == 1
    assert_key_not_shown(caught.value)


def _closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/tools/1.0"


def test_refused_connection_is_raised_without_the_key() -> None:
    """Nothing listens on the port: a transport error (then TRANSIENT), never an exception carrying the key."""
    with pytest.raises(PicsartTransportError) as caught:
        make_client(_closed_port_url()).call_tool(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert_key_not_shown(caught.value)


def test_refused_connection_is_a_connection_error() -> None:
    """PicsartTransportError's contract: `kind` is "timeout" or "connection"; a refusal is not a timeout."""
    with pytest.raises(PicsartTransportError) as caught:
        make_client(_closed_port_url()).call_tool(TOOLS["removebg"], PRESIGNED_URL, RemoveBackgroundParameters())
    assert caught.value.kind == "connection"


def test_download_result_fetches_the_url_as_given_without_the_key(http_server: RecordingServer) -> None:
    """Guide: "reference the URL value directly instead of stripping off the parameters"; the key goes to the
    Picsart API only, never to a result (CDN) URL."""
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    http_server.responder = lambda _r: Reply(200, {"Content-Type": "image/png"}, png)
    url = http_server.url + "/results/9a2c.png?token=a%2Fb%3D&expires=1717000000"
    body, content_type = make_client(http_server.url).download_result(url)
    assert (body, content_type) == (png, "image/png")
    sent = http_server.requests[0]
    assert (sent.method, sent.path) == ("GET", "/results/9a2c.png?token=a%2Fb%3D&expires=1717000000")
    assert header(sent.headers, API_KEY_HEADER) is None
    assert API_KEY not in str(sent.headers)


def test_download_result_error_status_is_a_download_error(http_server: RecordingServer) -> None:
    http_server.responder = lambda _r: Reply(404, JSON, b'{"message": "expired"}')
    with pytest.raises(ResultDownloadError, match="404"):
        make_client(http_server.url).download_result(http_server.url + "/results/gone.png")


def test_download_result_without_answer_is_a_download_error(http_server: RecordingServer) -> None:
    http_server.responder = lambda _r: Reply(action="close")
    with pytest.raises(ResultDownloadError):
        make_client(http_server.url).download_result(http_server.url + "/results/x.png")


def test_balance_round_trip_is_a_get_with_accept_and_key(http_server: RecordingServer) -> None:
    """Guide, 406: Accept on every call; `GET /balance` answers `{"credits": N}` (docs/picsart-api.md)."""
    http_server.responder = lambda _r: Reply(200, JSON, b'{"credits": 187}')
    response = make_client(http_server.url + "/tools/1.0").balance()
    assert response.body == {"credits": 187}
    sent = http_server.requests[0]
    assert (sent.method, sent.path, sent.body) == ("GET", "/tools/1.0/balance", b"")
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers[API_KEY_HEADER] == API_KEY


def test_download_result_follows_a_cdn_redirect_without_the_key(http_server: RecordingServer) -> None:
    """A result URL may redirect (CDNs do); following it is safe because no key is sent there."""
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16

    def answer(request: RecordedRequest) -> Reply:
        if request.path.startswith("/results/moved.png"):
            return Reply(302, {"Location": http_server.url + "/cdn/final.png"}, b"")
        return Reply(200, {"Content-Type": "image/png"}, png)

    http_server.responder = answer
    body, _ = make_client(http_server.url).download_result(http_server.url + "/results/moved.png")
    assert body == png
    assert [r.path for r in http_server.requests] == ["/results/moved.png", "/cdn/final.png"]
    assert all(header(r.headers, API_KEY_HEADER) is None for r in http_server.requests)
