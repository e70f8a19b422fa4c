"""The emulator's HTTP server: Picsart's contract for /removebg, /upscale, /upscale/ultra and /balance.

Every request to ``/tools/1.0/...`` goes through these checks, in this order; the first that fails
answers:

1. Path: a double slash anywhere in the raw path (``/tools/1.0//removebg``) or an unknown path
   -> 404; a known path with the wrong method -> 405.
2. ``X-Picsart-API-Key`` missing or wrong -> 401 (``{"code": 401, "message": "Unauthorized", ...}``).
3. ``Accept`` not naming ``application/json`` -> 406.
4. Injected faults, drawn once per request from the seeded RNG: dropped connection (no answer at
   all), slow answer (sleep, then carry on), 500, 503, bare 429 (no rate-limit headers).
5. Spike arrest: more than ``spike_per_second`` requests in this wall-clock second -> 429 with the
   gateway's ``{"fault": ...}`` body.
6. Quota: fixed window opened by the first counted request; none left -> 429. Requests rejected
   by steps 5 and 6 consume no quota; every request reaching step 6 is counted.
7. Credits: a tool call with no credits left -> 402 (a credit is reserved here and refunded if
   the call fails later; /balance costs nothing).
8. Body type: tool calls need ``multipart/form-data`` or ``application/json`` -> otherwise 415;
   malformed bodies -> 400; a body over the input limit -> 413.
9. Parameters (see `validation`) -> 422 naming the field.
10. Fetching ``image_url``: failure or non-2xx -> 400; too large -> 413; not an image -> 415;
    upscale input over ``max_upscale_input_pixels`` -> 413.
11. Processing with Pillow (see `imaging`), after ``latency_ms``.
12. 200 ``{"status": "success", "data": {"id": ..., "url": ".../results/<id>.<ext>"}}``; or, for
    ``/upscale/ultra`` with ``Prefer: respond-async``, 202 ``{"status": "processing", "transaction_id": ...}``.
    ``GET /upscale/ultra/<transaction_id>`` then answers 202 (same body) for ``async_processing_seconds``,
    then 200 with the result; an unknown id is a 404. Polls go through steps 2-6 but cost no credit.

The body of a POST is read right after step 3 (its errors still answer at step 8), so that the
call log holds the ``image_url`` path (never its query string) even when a fault or a limit
answers first.

Every answer on a ``/tools/1.0`` path carries ``X-Picsart-Correlation-Id``,
``X-Picsart-RateLimit-Limit``, ``-Available``, ``-Reset-Time`` and ``X-Picsart-Credit-Available``,
except the bare-429 fault (correlation id only) and dropped connections.

Besides the API, the server answers ``GET /results/<id>.<ext>`` (results, no key needed, like a
CDN) and the admin endpoints ``GET /_emulator/calls``, ``GET|POST /_emulator/settings`` and
``POST /_emulator/reset`` (no key, not counted, not logged). All other requests are logged.
Result URLs are built from the request's ``Host`` header, so a client that reached the emulator
under another name (e.g. from a container) can also fetch the result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

import urllib3
from PIL import Image
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from picsart_local.wsgi_server import make_threaded_server

from . import imaging
from .errors import ApiError
from .settings import EmulatorSettings
from .state import Admission, CallRecord, GatewayState, RateSnapshot, Throttle, format_reset_time
from .validation import (
    ImageSource,
    RawParams,
    ToolName,
    ToolRequest,
    Upload,
    UpscaleOptions,
    first_text,
    url_path,
    validate,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

TOOLS_PREFIX = "/tools/1.0"
ADMIN_PREFIX = "/_emulator/"
RESULTS_PREFIX = "/results/"

# path -> (method, tool name)
ROUTES: dict[str, tuple[str, str]] = {
    f"{TOOLS_PREFIX}/removebg": ("POST", "removebg"),
    f"{TOOLS_PREFIX}/upscale": ("POST", "upscale"),
    f"{TOOLS_PREFIX}/upscale/ultra": ("POST", "ultra-upscale"),
    f"{TOOLS_PREFIX}/balance": ("GET", "balance"),
}
#: GET <prefix><transaction_id>: the result of an asynchronous job.
POLL_PREFIXES: dict[str, str] = {f"{TOOLS_PREFIX}/upscale/ultra/": "ultra-upscale"}
_TRANSACTION_ID = re.compile(r"[0-9a-f]{32}")

# Room for form fields and multipart framing on top of the image itself.
_BODY_OVERHEAD_BYTES = 1024 * 1024
_RESULT_NAME = re.compile(r"([0-9a-f]{32})\.(jpg|png|webp)")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
_SHUTDOWN_POLL_SECONDS = 0.05
RAW_TARGET_KEY = "picsart_emulator.raw_target"


class _DropConnection(Exception):
    """Raised inside the app to close the socket without answering."""


@dataclasses.dataclass
class _Call:
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


@dataclasses.dataclass(frozen=True)
class _Body:
    """A parsed tool-call body, or the error that parsing it produced."""

    kind: Literal["form", "json"] = "form"
    params: RawParams = dataclasses.field(default_factory=dict)
    error: ApiError | None = None


class ResultStore:
    """Results kept in memory, dropping the oldest beyond a count or a total size."""

    def __init__(self, max_items: int = 2000, max_bytes: int = 512 * 1024 * 1024) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, imaging.EncodedImage] = OrderedDict()
        self._bytes = 0
        self._max_items = max_items
        self._max_bytes = max_bytes

    def put(self, result: imaging.EncodedImage) -> str:
        """Store a result; return its opaque id."""
        result_id = uuid.uuid4().hex
        with self._lock:
            self._items[result_id] = result
            self._bytes += len(result.data)
            while len(self._items) > 1 and (len(self._items) > self._max_items or self._bytes > self._max_bytes):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.data)
        return result_id

    def get(self, result_id: str) -> imaging.EncodedImage | None:
        """A stored result, or None if unknown or dropped."""
        with self._lock:
            return self._items.get(result_id)

    def clear(self) -> None:
        """Drop all results."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


class _QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler without its access log: the emulator logs calls itself, without queries."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Skip werkzeug's per-request line."""

    def make_environ(self) -> WSGIEnvironment:
        """werkzeug's environ plus the request target exactly as sent.

        http.server folds a leading ``//`` of the path into ``/`` before werkzeug sees it, so the
        double-slash check needs the raw request line.
        """
        environ = super().make_environ()
        parts = self.raw_requestline.decode("latin-1").split()
        if len(parts) >= 2:
            environ[RAW_TARGET_KEY] = parts[1]
        return environ


class PicsartEmulator:
    """A local stand-in for the Picsart Image API, served from a background thread."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self._state = GatewayState(settings or EmulatorSettings())
        self._results = ResultStore()
        #: transaction id -> (when the asynchronous job is done, its result id)
        self._transactions: dict[str, tuple[float, str]] = {}
        self._transactions_lock = threading.Lock()
        self._pool = urllib3.PoolManager(num_pools=16, maxsize=16)
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._root_url: str | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port`` (0 picks a free port) from a background thread."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping.clear()
        server = make_threaded_server(host, port, self._wsgi, _QuietRequestHandler)
        self._server = server
        url_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self._root_url = f"http://{url_host}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_SECONDS},
            name=f"picsart-emulator-{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("Picsart emulator listening on %s", self.base_url)

    def stop(self) -> None:
        """Stop serving and join the server thread. Safe to call twice."""
        server, thread = self._server, self._thread
        self._stopping.set()  # wakes requests sleeping for latency or a slow-answer fault
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        self._server = None
        self._thread = None
        self._pool.clear()

    def __enter__(self) -> PicsartEmulator:
        if self._server is None:
            self.start(port=0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- public state ------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._root_url is None or self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._root_url

    @property
    def base_url(self) -> str:
        """The API base, ``http://host:port/tools/1.0`` (no trailing slash)."""
        return self.root_url + TOOLS_PREFIX

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return int(self._server.server_port)

    @property
    def settings(self) -> EmulatorSettings:
        """The settings in force."""
        return self._state.settings

    @property
    def credits(self) -> int:
        """Credits left on the balance."""
        return self._state.credits

    def reconfigure(self, **changes: Any) -> EmulatorSettings:
        """Change settings at runtime (validated; raises `pydantic.ValidationError`).

        A change of quota or window restarts the window; a change of credits sets the balance.
        """
        settings = EmulatorSettings.model_validate({**self._state.settings.model_dump(), **changes})
        self._state.configure(settings)
        return settings

    def reset(self) -> None:
        """Clear counters, call log, window and asynchronous jobs; restore credits from the settings."""
        self._state.reset()
        with self._transactions_lock:
            self._transactions.clear()

    def calls(self) -> list[CallRecord]:
        """The call log, in arrival order."""
        return self._state.calls()

    # --- WSGI ----------------------------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)(environ, start_response)

        call = _Call(
            at=time.time(),
            started=time.perf_counter(),
            method=request.method,
            # As sent (a folded "//" stays visible), without the query string.
            path=_raw_path(request),
            correlation_id=str(uuid.uuid4()),
        )
        try:
            response = self._dispatch(request, call)
        except _DropConnection:
            self._record(call, 0, None)
            _shutdown_socket(environ.get("werkzeug.socket"))
            # werkzeug treats a ConnectionError as a dropped connection and writes nothing.
            raise ConnectionAbortedError("connection dropped by fault injection") from None
        except Exception as exc:
            # Never let werkzeug answer with its HTML error page: keep Picsart's JSON shape.
            logger.exception("unexpected error (correlation_id=%s)", call.correlation_id)
            error = ApiError(500, f"Internal Server Error ({type(exc).__name__})")
            response = self._error_response(error, call, with_rate_headers=True)
        available = response.headers.get("X-Picsart-RateLimit-Available")
        self._record(call, response.status_code, int(available) if available is not None else None)
        return response(environ, start_response)

    def _record(self, call: _Call, status: int, available: int | None) -> None:
        record = CallRecord(
            at=call.at,
            method=call.method,
            path=call.path,
            status=status,
            correlation_id=call.correlation_id,
            tool=call.tool,
            image_url_path=call.image_url_path,
            ratelimit_available=available,
            throttled=call.throttled,
            duration_ms=(time.perf_counter() - call.started) * 1000.0,
            image_url_expires=call.image_url_expires,
        )
        self._state.record(record)
        logger.info(
            "%s %s -> %s (tool=%s, correlation_id=%s, %.1f ms)",
            record.method,
            record.path,
            record.status or "dropped",
            record.tool,
            record.correlation_id,
            record.duration_ms,
        )

    def _dispatch(self, request: Request, call: _Call) -> Response:
        """Steps 1-12 of the module docstring for one request."""
        raw_path, path = call.path, request.path
        in_tools = re.sub("/+", "/", raw_path).startswith(TOOLS_PREFIX + "/")

        def answer(error: ApiError) -> Response:
            return self._error_response(error, call, with_rate_headers=in_tools)

        # 1. Path and method.
        if "//" in raw_path:
            return answer(ApiError(404, "Not found: the path contains a double slash"))
        if path.startswith(RESULTS_PREFIX) and not in_tools:
            return self._result(request, call)
        route = ROUTES.get(path)
        transaction_id: str | None = None
        for prefix, polled_tool in POLL_PREFIXES.items():
            if path.startswith(prefix) and route is None:
                route, transaction_id = ("GET", f"{polled_tool}:result"), path[len(prefix) :]
        if route is None:
            return answer(ApiError(404, f"Not found: no endpoint {path}"))
        method, tool = route
        call.tool = tool
        if request.method != method:
            response = answer(ApiError(405, f"Method {request.method} is not allowed; use {method}"))
            response.headers["Allow"] = method
            return response

        # 2. API key. 3. Accept.
        settings = self._state.settings
        key = request.headers.get("X-Picsart-API-Key")
        if key is None or key == "":
            return answer(ApiError(401, "Missing X-Picsart-API-Key header"))
        if not hmac.compare_digest(key.encode(), settings.api_key.encode()):
            return answer(ApiError(401, "Invalid API key"))
        if not _accepts_json(request.headers.get("Accept")):
            return answer(ApiError(406, "Not Acceptable: send Accept: application/json"))

        # The body is read now (not at step 8) so that the call log has the image_url path
        # even when a fault or a limit answers first, and so that a dropped connection ends cleanly.
        body = self._read_body(request, settings) if method == "POST" else _Body()
        call.image_url_path = url_path(first_text(body.params, "image_url"))
        call.image_url_expires = _presigned_expires(first_text(body.params, "image_url"))

        # 4. Faults.
        faults = self._state.draw_faults()
        if faults.drop_connection:
            raise _DropConnection
        if faults.slow_answer:
            self._stopping.wait(settings.slow_answer_seconds)
        if faults.error_500:
            return answer(ApiError(500, "Internal Server Error (injected fault)"))
        if faults.error_503:
            return answer(ApiError(503, "Service Unavailable (injected fault)"))
        if faults.bare_429:
            return self._bare_429(call)

        # 5-7. Spike arrest, quota, credits: counted at the request's arrival, as a gateway counts it (not
        # after this thread read the body, which a busy machine can delay past a second's end).
        admission = self._state.admit(call.at, charges_credit=tool != "balance" and transaction_id is None)
        call.snapshot = admission.snapshot
        call.throttled = admission.throttled
        if admission.throttled == "spike":
            return answer(_spike_error(settings.spike_per_second))
        if admission.throttled == "quota":
            return answer(ApiError(429, "Rate limit quota violation. Quota limit exceeded."))
        if admission.payment_required:
            return answer(ApiError(402, "Payment Required: no credits left on the balance"))

        if tool == "balance":
            return self._json_response(200, {"credits": self._state.credits}, call, with_rate_headers=True)
        if transaction_id is not None:
            return self._poll(request, call, transaction_id)
        return self._run_tool(request, call, cast(ToolName, tool), body, admission)

    def _run_tool(
        self,
        request: Request,
        call: _Call,
        tool: ToolName,
        body: _Body,
        admission: Admission,
    ) -> Response:
        """Steps 8-12: body, parameters, fetch, process; the reserved credit is kept on success."""
        settings = self._state.settings
        try:
            if body.error is not None:
                raise body.error
            tool_request = validate(tool, body.params, body.kind)
            if settings.latency_ms > 0:
                self._stopping.wait(settings.latency_ms / 1000.0)
            result = self._process(tool_request, settings)
            result_id = self._results.put(result)
        except ApiError as error:
            if admission.credit_reserved:
                self._state.refund_credit()
            return self._error_response(error, call, with_rate_headers=True)
        except Exception as exc:
            # A bug or an unexpected image: answer like Picsart would rather than with HTML.
            logger.exception("unexpected error in /%s (correlation_id=%s)", tool, call.correlation_id)
            if admission.credit_reserved:
                self._state.refund_credit()
            internal = ApiError(500, f"Internal Server Error ({type(exc).__name__})")
            return self._error_response(internal, call, with_rate_headers=True)
        if tool == "ultra-upscale" and "respond-async" in request.headers.get("Prefer", ""):
            transaction_id = uuid.uuid4().hex
            with self._transactions_lock:
                self._transactions[transaction_id] = (time.time() + settings.async_processing_seconds, result_id)
            payload: dict[str, Any] = {"status": "processing", "transaction_id": transaction_id}
            return self._json_response(202, payload, call, with_rate_headers=True)
        return self._success(request, call, result_id)

    def _success(self, request: Request, call: _Call, result_id: str) -> Response:
        result = self._results.get(result_id)
        assert result is not None
        url = f"{_public_root(request, self.root_url)}{RESULTS_PREFIX}{result_id}.{result.extension}"
        payload = {"status": "success", "data": {"id": result_id, "url": url}}
        return self._json_response(200, payload, call, with_rate_headers=True)

    def _poll(self, request: Request, call: _Call, transaction_id: str) -> Response:
        """``GET /upscale/ultra/<transaction_id>``: 202 while the job runs, then its result."""
        with self._transactions_lock:
            job = self._transactions.get(transaction_id) if _TRANSACTION_ID.fullmatch(transaction_id) else None
        if job is None or self._results.get(job[1]) is None:
            error = ApiError(404, f"Not found: no transaction {transaction_id}")
            return self._error_response(error, call, with_rate_headers=True)
        ready_at, result_id = job
        if time.time() < ready_at:
            payload = {"status": "processing", "transaction_id": transaction_id}
            return self._json_response(202, payload, call, with_rate_headers=True)
        return self._success(request, call, result_id)

    def _process(self, tool_request: ToolRequest, settings: EmulatorSettings) -> imaging.EncodedImage:
        """Fetch or take the input, run the tool, encode the result."""
        options = tool_request.options
        if isinstance(options, UpscaleOptions):
            image = self._load("image", tool_request.source, settings, max_pixels=settings.max_upscale_input_pixels)
            return imaging.encode(imaging.upscale(image, options.upscale_factor), options.format)
        image = self._load("image", tool_request.source, settings)
        bg_image = self._load("bg_image", options.bg_image, settings) if options.bg_image is not None else None
        result = imaging.remove_background(
            image, output_type=options.output_type, bg_color=options.bg_color, bg_image=bg_image
        )
        return imaging.encode(result, options.format)

    def _load(
        self, field: str, source: ImageSource, settings: EmulatorSettings, *, max_pixels: int | None = None
    ) -> Image.Image:
        """An input image, fetched or uploaded, checked for size and decoded."""
        if source.url is not None:
            data = imaging.fetch(self._pool, source.url, f"{field}_url", settings.max_input_bytes)
        elif source.upload is not None:
            data = source.upload.data
            if len(data) > settings.max_input_bytes:
                raise ApiError(413, f"{field}: the file is larger than {settings.max_input_bytes} bytes")
        else:
            raise ApiError(422, f"{field}: no image given")
        return imaging.decode(data, field, max_pixels)

    # --- request bodies ------------------------------------------------------------------------

    def _read_body(self, request: Request, settings: EmulatorSettings) -> _Body:
        """Parse a tool call's body; keep any error for step 8."""
        limit = settings.max_input_bytes + _BODY_OVERHEAD_BYTES
        mimetype = request.mimetype
        try:
            if mimetype == "multipart/form-data":
                _, form, files = parse_form_data(request.environ, max_content_length=limit, silent=False)
                params: dict[str, list[object]] = {name: list(form.getlist(name)) for name in form}
                for name in files:
                    uploads = [_read_upload(storage, settings.max_input_bytes) for storage in files.getlist(name)]
                    params.setdefault(name, []).extend(uploads)
                return _Body("form", params)
            if mimetype == "application/json":
                if request.content_length is not None and request.content_length > limit:
                    raise ApiError(413, f"The request body is larger than {limit} bytes")
                raw = request.stream.read(limit + 1)
                if len(raw) > limit:
                    raise ApiError(413, f"The request body is larger than {limit} bytes")
                try:
                    decoded = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "Bad Request: the body is not valid JSON") from None
                if not isinstance(decoded, dict):
                    raise ApiError(400, "Bad Request: the JSON body must be an object")
                return _Body("json", cast(dict[str, object], decoded))
            shown = mimetype or "none"
            raise ApiError(
                415,
                f"Unsupported Media Type: Content-Type {shown}; use multipart/form-data or application/json",
            )
        except ApiError as error:
            return _Body(error=error)
        except RequestEntityTooLarge:
            return _Body(error=ApiError(413, f"The request body is larger than {limit} bytes"))
        except ValueError as exc:
            return _Body(error=ApiError(400, f"Bad Request: malformed multipart/form-data body ({exc})"))

    # --- answers -------------------------------------------------------------------------------

    def _rate_headers(self, call: _Call) -> dict[str, str]:
        settings = self._state.settings
        now = time.time()
        snapshot = call.snapshot or self._state.snapshot(now)
        return {
            "X-Picsart-RateLimit-Limit": str(snapshot.limit),
            "X-Picsart-RateLimit-Available": str(snapshot.available),
            "X-Picsart-RateLimit-Reset-Time": format_reset_time(snapshot.reset_at, now, settings.reset_time_format),
            "X-Picsart-Credit-Available": str(self._state.credits),
        }

    def _json_response(self, status: int, payload: object, call: _Call, *, with_rate_headers: bool) -> Response:
        response = Response(json.dumps(payload), status=status, mimetype="application/json")
        response.headers["X-Picsart-Correlation-Id"] = call.correlation_id
        if with_rate_headers:
            response.headers.update(self._rate_headers(call))
        return response

    def _error_response(self, error: ApiError, call: _Call, *, with_rate_headers: bool) -> Response:
        return self._json_response(error.status, error.body, call, with_rate_headers=with_rate_headers)

    def _bare_429(self, call: _Call) -> Response:
        """A 429 as some gateways send it: no rate-limit or credit headers at all."""
        call.throttled = "quota"
        body = {
            "fault": {
                "faultstring": "Rate limit quota violation. Quota limit exceeded. Identifier : _default",
                "detail": {"errorcode": "policies.ratelimit.QuotaViolation"},
            }
        }
        return self._json_response(429, body, call, with_rate_headers=False)

    def _result(self, request: Request, call: _Call) -> Response:
        """``GET /results/<id>.<ext>``: a stored result, no key needed."""
        match = _RESULT_NAME.fullmatch(request.path[len(RESULTS_PREFIX) :])
        result = self._results.get(match.group(1)) if match else None
        if match is None or result is None or result.extension != match.group(2):
            return self._error_response(ApiError(404, "Not found: unknown result"), call, with_rate_headers=False)
        if request.method not in ("GET", "HEAD"):
            response = self._error_response(
                ApiError(405, f"Method {request.method} is not allowed; use GET"),
                call,
                with_rate_headers=False,
            )
            response.headers["Allow"] = "GET, HEAD"
            return response
        response = Response(result.data, status=200, mimetype=result.content_type)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    # --- admin ---------------------------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        """The JSON admin endpoints: no key, not counted, not logged."""
        endpoints = {
            "/_emulator/calls": ("GET",),
            "/_emulator/settings": ("GET", "POST"),
            "/_emulator/reset": ("POST",),
        }
        methods = endpoints.get(request.path)
        if methods is None:
            return _plain_json(404, {"code": 404, "message": "Not Found", "detail": "unknown admin endpoint"})
        if request.method not in methods:
            response = _plain_json(
                405, {"code": 405, "message": "Method Not Allowed", "detail": f"use {' or '.join(methods)}"}
            )
            response.headers["Allow"] = ", ".join(methods)
            return response
        if request.path == "/_emulator/calls":
            return _plain_json(200, [dataclasses.asdict(record) for record in self.calls()])
        if request.path == "/_emulator/reset":
            self.reset()
            return _plain_json(200, {"status": "reset"})
        if request.method == "GET":
            return _plain_json(200, self.settings.model_dump())
        try:
            changes = json.loads(request.get_data(cache=False) or b"{}")
        except ValueError:
            return _plain_json(400, {"code": 400, "message": "Bad Request", "detail": "the body is not valid JSON"})
        if not isinstance(changes, dict):
            return _plain_json(400, {"code": 400, "message": "Bad Request", "detail": "the body must be a JSON object"})
        try:
            settings = self.reconfigure(**changes)
        except ValidationError as exc:
            return _plain_json(
                422,
                {
                    "code": 422,
                    "message": "Unprocessable Entity",
                    "detail": str(exc),
                    "errors": json.loads(exc.json(include_url=False)),
                },
            )
        return _plain_json(200, settings.model_dump())


def _plain_json(status: int, payload: object) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _spike_error(per_second: int) -> ApiError:
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


def _accepts_json(accept: str | None) -> bool:
    """Whether the Accept header lists application/json itself (wildcards do not count)."""
    if not accept:
        return False
    return any(part.split(";", 1)[0].strip().lower() == "application/json" for part in accept.split(","))


def _raw_path(request: Request) -> str:
    """The path as sent, before werkzeug's parsing could fold a leading double slash."""
    environ = request.environ
    raw = str(environ.get(RAW_TARGET_KEY) or environ.get("RAW_URI") or request.path)
    if raw.startswith(("http://", "https://")):
        # Absolute form ("GET http://host/path"): keep only the path.
        raw = urlsplit(raw).path
    return raw.split("?", 1)[0]


def _presigned_expires(value: object) -> int | None:
    """X-Amz-Expires of a presigned image_url (its lifetime in seconds), the one part of its query kept."""
    if not isinstance(value, str):
        return None
    try:
        expires = parse_qs(urlsplit(value).query).get("X-Amz-Expires", [])
        return int(expires[0]) if expires else None
    except ValueError:
        return None


def _public_root(request: Request, fallback: str) -> str:
    """``http://<Host header>`` if it looks like a host, else the emulator's own root URL."""
    host = request.headers.get("Host", "")
    return f"http://{host}" if _HOST.fullmatch(host) else fallback


def _read_upload(storage: FileStorage, max_bytes: int) -> Upload:
    data = storage.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(413, f"{storage.name}: the file is larger than {max_bytes} bytes")
    return Upload(data=data, filename=storage.filename)


def _shutdown_socket(sock: object) -> None:
    """Close both directions of the client socket so that no answer can be written."""
    if isinstance(sock, socket.socket):
        # OSError: the client may have closed it already.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
