"""What the emulator keeps between calls: encoded results (served like a CDN) and asynchronous jobs."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import OrderedDict

from .imaging import EncodedImage

_TRANSACTION_ID = re.compile(r"[0-9a-f]{32}")


class ResultStore:
    """Results kept in memory, dropping the oldest beyond a count or a total size."""

    def __init__(self, max_items: int = 2000, max_bytes: int = 512 * 1024 * 1024) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, EncodedImage] = OrderedDict()
        self._bytes = 0
        self._max_items = max_items
        self._max_bytes = max_bytes

    def put(self, result: EncodedImage) -> str:
        """Store a result; return its opaque id."""
        result_id = uuid.uuid4().hex
        with self._lock:
            self._items[result_id] = result
            self._bytes += len(result.data)
            while len(self._items) > 1 and (len(self._items) > self._max_items or self._bytes > self._max_bytes):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.data)
        return result_id

    def get(self, result_id: str) -> EncodedImage | None:
        """A stored result, or None if unknown or dropped."""
        with self._lock:
            return self._items.get(result_id)

    def clear(self) -> None:
        """Drop all results."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


class Transactions:
    """Asynchronous jobs: transaction id -> (when the job is done, its result id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[float, str]] = {}

    def start(self, result_id: str, processing_seconds: float) -> str:
        """Register a job whose result is ready after ``processing_seconds``; return its transaction id."""
        transaction_id = uuid.uuid4().hex
        with self._lock:
            self._jobs[transaction_id] = (time.time() + processing_seconds, result_id)
        return transaction_id

    def get(self, transaction_id: str) -> tuple[float, str] | None:
        """(ready at, result id) of a known job, else None (also for ids not shaped like ours)."""
        if not _TRANSACTION_ID.fullmatch(transaction_id):
            return None
        with self._lock:
            return self._jobs.get(transaction_id)

    def clear(self) -> None:
        """Forget every job."""
        with self._lock:
            self._jobs.clear()
