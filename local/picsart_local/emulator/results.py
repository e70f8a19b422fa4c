"""What the emulator keeps between calls: encoded results (served like a CDN) and asynchronous jobs."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from .imaging import EncodedImage

_TRANSACTION_ID = re.compile(r"[0-9a-f]{32}")


class ResultStore:
    """Results kept in memory for as long as Picsart keeps a result URL valid (`lifetime_seconds`, read at each use
    so that a reconfigured emulator applies it at once), the oldest dropped first beyond a total size that guards
    the process's memory. Work that waits minutes between two steps of a pipeline (a soak whose limiter item is
    capped) passes the first step's result URL on long after thousands of later results were stored
    (test_a_result_is_served_for_its_lifetime_however_many_follow, test_a_result_past_its_lifetime_is_gone)."""

    def __init__(self, lifetime_seconds: Callable[[], float], max_bytes: int = 1024 * 1024 * 1024) -> None:
        self._lock = threading.Lock()
        #: Oldest first: id -> (stored at, result).
        self._items: OrderedDict[str, tuple[float, EncodedImage]] = OrderedDict()
        self._bytes = 0
        self._lifetime_seconds = lifetime_seconds
        self._max_bytes = max_bytes

    def put(self, result: EncodedImage) -> str:
        """Store a result; return its opaque id."""
        result_id = uuid.uuid4().hex
        with self._lock:
            self._items[result_id] = (time.monotonic(), result)
            self._bytes += len(result.data)
            self._drop_expired_and_excess()
        return result_id

    def get(self, result_id: str) -> EncodedImage | None:
        """A stored result, or None if unknown, past its lifetime or dropped."""
        with self._lock:
            self._drop_expired_and_excess()
            kept = self._items.get(result_id)
            return kept[1] if kept is not None else None

    def clear(self) -> None:
        """Drop all results."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _drop_expired_and_excess(self) -> None:
        """Drop the oldest results while they are past their lifetime or the total size is over (lock held)."""
        expired_before = time.monotonic() - self._lifetime_seconds()
        while self._items:
            stored_at, oldest = next(iter(self._items.values()))
            over_size = self._bytes > self._max_bytes and len(self._items) > 1
            if stored_at >= expired_before and not over_size:
                return
            self._items.popitem(last=False)
            self._bytes -= len(oldest.data)


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
