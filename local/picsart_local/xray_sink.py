"""A stand-in for the X-Ray daemon: a UDP socket on 127.0.0.1 that keeps the segment documents it gets."""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

_MAX_DATAGRAM = 65535


class XRaySink:
    """Collects what aws-xray-sdk emits: datagrams of a header line, then one JSON document."""

    def __init__(self, journal_path: Path | None = None, host: str = "127.0.0.1") -> None:
        self._journal_path = journal_path
        self._host = host
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._documents: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def address(self) -> str:
        """host:port, the form AWS_XRAY_DAEMON_ADDRESS takes."""
        if self._socket is None:
            raise RuntimeError("the X-Ray sink is not started")
        host, port = self._socket.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def running(self) -> bool:
        return self._socket is not None

    def start(self) -> XRaySink:
        if self._socket is not None:
            return self
        if self._journal_path is not None:
            self._journal_path.write_text("")  # this run's documents only
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((self._host, 0))
        # A short timeout so the thread notices stop() without a wake-up datagram.
        self._socket.settimeout(0.2)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._receive, name="xray-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> XRaySink:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def documents(self) -> list[dict[str, Any]]:
        """Every segment / subsegment document received so far, oldest first."""
        with self._lock:
            return list(self._documents)

    def _receive(self) -> None:
        assert self._socket is not None
        while not self._stopping.is_set():
            try:
                datagram = self._socket.recv(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            document = parse_datagram(datagram)
            if document is None:
                logger.warning("X-Ray sink: ignored a datagram that is not header + JSON document")
                continue
            with self._lock:
                self._documents.append(document)
                if self._journal_path is not None:
                    with self._journal_path.open("a", encoding="utf-8") as journal:
                        journal.write(json.dumps(document) + "\n")


def parse_datagram(datagram: bytes) -> dict[str, Any] | None:
    """The document of one daemon datagram, or None when it is not one."""
    header, _, body = datagram.decode("utf-8", errors="replace").partition("\n")
    try:
        if json.loads(header).get("format") != "json":
            return None
        document = json.loads(body)
    except (ValueError, AttributeError):
        return None
    return document if isinstance(document, dict) else None
