"""The threaded WSGI server the local stack's HTTP services (moto, the Picsart emulator) run on.

Werkzeug's threaded server starts a thread per connection, and `threading.Thread.start` waits until that
thread runs. In a process whose GIL is shared by dozens of threads (moto, the emulator, the runner's
pollers), each such start waits for the GIL, so the one thread accepting connections falls behind and a
request waits longer for its connection to be accepted than moto takes to handle it. Starting the
connection's thread without waiting for it keeps the accept loop at the pace of the arrivals.
"""

from __future__ import annotations

import _thread
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def make_threaded_server(
    host: str, port: int, app: WSGIApplication, request_handler: type[WSGIRequestHandler]
) -> BaseWSGIServer:
    """A werkzeug server with one thread per connection, started without waiting for it to run."""
    server = make_server(host, port, app, threaded=True, request_handler=request_handler)

    def process_request(request: Any, client_address: Any) -> None:
        # What socketserver.ThreadingMixIn does for daemon threads (werkzeug's), without Thread.start's wait.
        _thread.start_new_thread(server.process_request_thread, (request, client_address))  # type: ignore[attr-defined]

    server.process_request = process_request  # type: ignore[method-assign]
    return server
