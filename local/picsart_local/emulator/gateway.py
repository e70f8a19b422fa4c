"""Picsart's gateway as the emulator plays it: the checks every ``/tools/1.0`` request goes through, then the tool.

Every request to ``/tools/1.0/...`` goes through these checks, in this order; the first that fails
answers:

1. Path: a double slash anywhere in the raw path (``/tools/1.0//removebg``) or an unknown path
   -> 404; a known path with the wrong method -> 405 (with ``Allow``).
2. ``X-Picsart-API-Key`` missing or wrong -> 401 (``{"code": 401, "message": "Unauthorized", ...}``).
3. ``Accept`` not naming ``application/json`` -> 406.
4. Injected faults, drawn once per request from the seeded RNG: dropped connection (no answer at
   all), slow answer (sleep, then carry on), 500, 503, bare 429 (no rate-limit headers).
5. Spike arrest: more than ``spike_per_second`` requests in this wall-clock second -> 429 with the
   gateway's ``{"fault": ...}`` body.
6. Quota: fixed window opened by the first counted request; none left -> 429. Requests rejected
   by steps 5 and 6 consume no quota; every request reaching step 6 is counted.
7. Credits: a tool call with no credits left -> 402 (a credit is reserved here and refunded if
   the call fails later; /balance, GET /effects and polls cost nothing).
8. Body type: tool calls need ``multipart/form-data`` or ``application/json`` -> otherwise 415;
   malformed bodies -> 400; a body over the input limit -> 413.
9. Parameters (the tool's table in `tools`, checked by `validation`) -> 422 naming the field.
10. Fetching ``image_url``: failure or non-2xx -> 400; too large -> 413; not an image -> 415;
    upscale input over ``max_upscale_input_pixels`` -> 413. An ``image_id`` names an earlier result's
    ``data.id``; an unknown one -> 400.
11. Processing with Pillow, after ``latency_ms``.
12. An image tool answers 200 ``{"status": "success", "data": {"id": ..., "url": ".../results/<id>.<ext>"}}``;
    a data tool (``/tags``) 200 ``{"status": "success", "data": {...}}``. An asynchronous tool
    (``/upscale/ultra``) called with ``Prefer: respond-async`` answers 202
    ``{"status": "processing", "transaction_id": ...}``; ``GET <tool path>/<transaction_id>`` then answers 202
    (same body) for ``async_processing_seconds``, then 200 with the result; an unknown id is a 404. Polls go
    through steps 2-6 but cost no credit.

The body of a POST is read right after step 3 (its errors still answer at step 8), so that the
call log holds the ``image_url`` path (never its query string) even when a fault or a limit
answers first.

Every answer on a ``/tools/1.0`` path carries ``X-Picsart-Correlation-Id``,
``X-Picsart-RateLimit-Limit``, ``-Available``, ``-Reset-Time`` and ``X-Picsart-Credit-Available``,
except the bare-429 fault (correlation id only) and dropped connections.

Besides the API, the gateway answers ``GET /results/<id>.<ext>`` (results, no key needed, like a CDN); a share
``result_fault_rate`` of those downloads is answered 503 (the result stays there for the next download); the
emulator's own fetch of a result given as the next call's ``image_url`` is spared, as Picsart reads its own.
Result URLs are built from the request's ``Host`` header, so a client that reached the emulator under
another name (e.g. from a container) can also fetch the result, and a result URL is a valid ``image_url``
for the next call.
"""

from __future__ import annotations

import hmac
import logging
import random
import re
import threading
import time
from typing import Any

import urllib3
from PIL import Image
from werkzeug.wrappers import Request, Response

from . import imaging
from .answers import Answers, Call, accepts_json, presigned_expires, public_root, spike_error
from .bodies import Body, read_body
from .errors import ApiError
from .results import ResultStore, Transactions
from .state import Admission, GatewayState
from .toolkit import Tool, ToolCall
from .tools import FREE_CALLS, ROUTES, TOOLS
from .validation import ImageSource, first_text, url_path

logger = logging.getLogger(__name__)

TOOLS_PREFIX = "/tools/1.0"
RESULTS_PREFIX = "/results/"
_RESULT_NAME = re.compile(r"([0-9a-f]{32})\.(jpg|png|webp)")


class DropConnection(Exception):
    """Raised inside the app to close the socket without answering."""


class Gateway:
    """Handles one request to the API or to a result, against the shared state."""

    def __init__(self, state: GatewayState, stopping: threading.Event) -> None:
        self.state = state
        self.answers = Answers(state)
        self.results = ResultStore(lambda: self.state.settings.result_lifetime_seconds)
        self.transactions = Transactions()
        self._pool = urllib3.PoolManager(num_pools=16, maxsize=16)
        self._stopping = stopping

    def close(self) -> None:
        """Drop pooled connections."""
        self._pool.clear()

    def dispatch(self, request: Request, call: Call, root_url: str) -> Response:
        """Steps 1-12 of the module docstring for one request."""
        raw_path, path = call.path, request.path
        in_tools = re.sub("/+", "/", raw_path).startswith(TOOLS_PREFIX + "/")

        def answer(error: ApiError) -> Response:
            return self.answers.error(error, call, with_rate_headers=in_tools)

        # 1. Path and method.
        if "//" in raw_path:
            return answer(ApiError(404, "Not found: the path contains a double slash"))
        if path.startswith(RESULTS_PREFIX) and not in_tools:
            return self._result(request, call)
        route, transaction_id = _route(path)
        if route is None:
            return answer(ApiError(404, f"Not found: no endpoint {path}"))
        name = route.get(request.method)
        call.tool = name or next(iter(route.values()))
        if name is None:
            allowed = ", ".join(route)
            response = answer(ApiError(405, f"Method {request.method} is not allowed; use {allowed}"))
            response.headers["Allow"] = allowed
            return response

        # 2. API key. 3. Accept.
        settings = self.state.settings
        key = request.headers.get("X-Picsart-API-Key")
        if key is None or key == "":
            return answer(ApiError(401, "Missing X-Picsart-API-Key header"))
        if not hmac.compare_digest(key.encode(), settings.api_key.encode()):
            return answer(ApiError(401, "Invalid API key"))
        if not accepts_json(request.headers.get("Accept")):
            return answer(ApiError(406, "Not Acceptable: send Accept: application/json"))

        # The body is read now (not at step 8) so that the call log has the image_url path
        # even when a fault or a limit answers first, and so that a dropped connection ends cleanly.
        body = read_body(request, settings.max_input_bytes) if request.method == "POST" else Body()
        call.image_url_path = url_path(first_text(body.params, "image_url"))
        call.image_url_expires = presigned_expires(first_text(body.params, "image_url"))

        # 4. Faults.
        faults = self.state.draw_faults()
        if faults.drop_connection:
            raise DropConnection
        if faults.slow_answer:
            self._stopping.wait(settings.slow_answer_seconds)
        if faults.error_500:
            return answer(ApiError(500, "Internal Server Error (injected fault)"))
        if faults.error_503:
            return answer(ApiError(503, "Service Unavailable (injected fault)"))
        if faults.bare_429:
            return self.answers.bare_429(call)

        # 5-7. Spike arrest, quota, credits: counted at the request's arrival, as a gateway counts it (not
        # after this thread read the body, which a busy machine can delay past a second's end).
        tool = TOOLS.get(name) if transaction_id is None else None
        admission = self.state.admit(call.at, charges_credit=tool is not None)
        call.snapshot = admission.snapshot
        call.throttled = admission.throttled
        if admission.throttled == "spike":
            return answer(spike_error(settings.spike_per_second))
        if admission.throttled == "quota":
            return answer(ApiError(429, "Rate limit quota violation. Quota limit exceeded."))
        if admission.payment_required:
            return answer(ApiError(402, "Payment Required: no credits left on the balance"))

        if transaction_id is not None:
            return self._poll(request, call, transaction_id, root_url)
        if tool is not None:
            return self._run_tool(request, call, tool, body, admission, root_url)
        return self.answers.json(200, FREE_CALLS[name].answer(self.state.credits), call)

    def _run_tool(
        self, request: Request, call: Call, tool: Tool, body: Body, admission: Admission, root_url: str
    ) -> Response:
        """Steps 8-12: body, parameters, fetch, process; the reserved credit is kept on success."""
        settings = self.state.settings
        try:
            if body.error is not None:
                raise body.error
            checked = tool.check(body.params, body.kind)
            latency_ms = settings.latency_ms + random.random() * settings.latency_spread_ms
            if latency_ms > 0:
                self._stopping.wait(latency_ms / 1000.0)
            output = tool.run(ToolCall(checked, self._load, settings, tool.default_format))
        except ApiError as error:
            if admission.credit_reserved:
                self.state.refund_credit()
            return self.answers.error(error, call)
        except Exception as exc:
            # A bug or an unexpected image: answer like Picsart would rather than with HTML.
            logger.exception("unexpected error in /%s (correlation_id=%s)", tool.name, call.correlation_id)
            if admission.credit_reserved:
                self.state.refund_credit()
            return self.answers.error(ApiError(500, f"Internal Server Error ({type(exc).__name__})"), call)
        if isinstance(output, dict):
            return self.answers.json(200, {"status": "success", "data": output}, call)
        result_id = self.results.put(output)
        if tool.asynchronous and "respond-async" in request.headers.get("Prefer", ""):
            transaction_id = self.transactions.start(result_id, settings.async_processing_seconds)
            payload: dict[str, Any] = {"status": "processing", "transaction_id": transaction_id}
            return self.answers.json(202, payload, call)
        return self._success(request, call, result_id, root_url)

    def _success(self, request: Request, call: Call, result_id: str, root_url: str) -> Response:
        result = self.results.get(result_id)
        assert result is not None
        url = f"{public_root(request, root_url)}{RESULTS_PREFIX}{result_id}.{result.extension}"
        return self.answers.json(200, {"status": "success", "data": {"id": result_id, "url": url}}, call)

    def _poll(self, request: Request, call: Call, transaction_id: str, root_url: str) -> Response:
        """``GET <tool path>/<transaction_id>``: 202 while the job runs, then its result."""
        job = self.transactions.get(transaction_id)
        if job is None or self.results.get(job[1]) is None:
            return self.answers.error(ApiError(404, f"Not found: no transaction {transaction_id}"), call)
        ready_at, result_id = job
        if time.time() < ready_at:
            return self.answers.json(202, {"status": "processing", "transaction_id": transaction_id}, call)
        return self._success(request, call, result_id, root_url)

    def _load(self, field: str, source: ImageSource, *, max_pixels: int | None = None) -> Image.Image:
        """An input image, fetched or uploaded, checked for size and decoded."""
        settings = self.state.settings
        if source.url is not None:
            data = imaging.fetch(self._pool, source.url, f"{field}_url", settings.max_input_bytes)
        elif source.upload is not None:
            data = source.upload.data
            if len(data) > settings.max_input_bytes:
                raise ApiError(413, f"{field}: the file is larger than {settings.max_input_bytes} bytes")
        elif source.image_id is not None:
            # The spec's deprecated *_id inputs name "a result image ID from a different API": here, a data.id
            # the emulator answered earlier (and still keeps).
            stored = self.results.get(source.image_id)
            if stored is None:
                raise ApiError(400, f"{field}_id: no result with this id (ids are the data.id of earlier results)")
            data = stored.data
        else:
            raise ApiError(422, f"{field}: no image given")
        return imaging.decode(data, field, max_pixels)

    def _result(self, request: Request, call: Call) -> Response:
        """``GET /results/<id>.<ext>``: a stored result, no key needed."""
        match = _RESULT_NAME.fullmatch(request.path[len(RESULTS_PREFIX) :])
        result = self.results.get(match.group(1)) if match else None
        if match is None or result is None or result.extension != match.group(2):
            return self.answers.error(ApiError(404, "Not found: unknown result"), call, with_rate_headers=False)
        if request.method not in ("GET", "HEAD"):
            response = self.answers.error(
                ApiError(405, f"Method {request.method} is not allowed; use GET"), call, with_rate_headers=False
            )
            response.headers["Allow"] = "GET, HEAD"
            return response
        if request.headers.get("User-Agent") != imaging.FETCH_USER_AGENT and self.state.draw_result_fault():
            return self.answers.error(
                ApiError(503, "Service Unavailable (injected result fault)"), call, with_rate_headers=False
            )
        response = Response(result.data, status=200, mimetype=result.content_type)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def _route(path: str) -> tuple[dict[str, str] | None, str | None]:
    """The methods of an API path (method -> call name), and the transaction id when it polls a job."""
    if not path.startswith(TOOLS_PREFIX + "/"):
        return None, None
    sub = path[len(TOOLS_PREFIX) :]
    route = ROUTES.get(sub)
    if route is not None:
        return dict(route), None
    for tool in TOOLS.values():
        if tool.asynchronous and sub.startswith(tool.path + "/"):
            return {"GET": f"{tool.name}:result"}, sub[len(tool.path) + 1 :]
    return None, None
