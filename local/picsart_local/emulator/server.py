"""The emulator's HTTP server: its lifecycle, the call log, and the split between API, results and admin.

What an API request goes through is `gateway`'s; the tools are in `tools`. The admin endpoints
(``GET /_emulator/calls``, ``GET|POST /_emulator/settings``, ``POST /_emulator/reset``; `admin`) need no key,
are not counted and not logged. All other requests are logged, without their query string.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from picsart_local.wsgi_server import make_threaded_server

from .admin import ADMIN_PREFIX, admin_answer
from .answers import RAW_TARGET_KEY, Call, raw_path, shutdown_socket
from .errors import ApiError
from .gateway import TOOLS_PREFIX, DropConnection, Gateway
from .settings import EmulatorSettings
from .state import CallRecord, GatewayState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

_SHUTDOWN_POLL_SECONDS = 0.05


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
        self._stopping = threading.Event()
        self._gateway = Gateway(self._state, self._stopping)
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
        self._gateway.close()

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
        self._gateway.transactions.clear()

    def calls(self) -> list[CallRecord]:
        """The call log, in arrival order."""
        return self._state.calls()

    # --- WSGI ----------------------------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith(ADMIN_PREFIX):
            return admin_answer(self, request)(environ, start_response)

        call = Call(
            at=time.time(),
            started=time.perf_counter(),
            method=request.method,
            # As sent (a folded "//" stays visible), without the query string.
            path=raw_path(request),
            correlation_id=str(uuid.uuid4()),
        )
        response: Response
        try:
            response = self._gateway.dispatch(request, call, self.root_url)
        except DropConnection:
            self._record(call, 0, None)
            shutdown_socket(environ.get("werkzeug.socket"))
            # werkzeug treats a ConnectionError as a dropped connection and writes nothing.
            raise ConnectionAbortedError("connection dropped by fault injection") from None
        except Exception as exc:
            # Never let werkzeug answer with its HTML error page: keep Picsart's JSON shape.
            logger.exception("unexpected error (correlation_id=%s)", call.correlation_id)
            response = self._gateway.answers.error(ApiError(500, f"Internal Server Error ({type(exc).__name__})"), call)
        available = response.headers.get("X-Picsart-RateLimit-Available")
        self._record(call, response.status_code, int(available) if available is not None else None)
        return response(environ, start_response)

    def _record(self, call: Call, status: int, available: int | None) -> None:
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
            reset_at=call.reset_at,
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
