"""Two of moto's per-request costs that made every other request of the local stack wait.

- SQS receive checks each message it hands out against the queue's retention period by computing every
  attribute of the queue, the approximate counts among them: a few passes over all the queue's messages for
  each message received. With hundreds of messages parked in the delay queue, every other request (all of
  moto, the emulator) waits for those passes, as they share the process's GIL. Reading the retention period
  alone gives the same answer.
- Every request looks its backend up by account (`BackendDict.__getitem__`), and moto takes one process-wide
  lock for that lookup even when the account's backend exists. A thread preempted while holding it (the GIL
  switches among dozens of request threads) holds up all the others. An existing backend is returned without
  the lock; a new one is still created under it.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.base_backend import BackendDict
from moto.core.utils import unix_time
from moto.sqs.models import SQSBackend

_LOCK = threading.Lock()
_installed = False


def speed_up_moto() -> None:
    """Install both speed-ups (idempotent). moto's answers stay the same."""
    global _installed
    with _LOCK:
        if _installed:
            return
        SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
        BackendDict.__getitem__ = _account_backend  # type: ignore[method-assign]
        _installed = True


def _within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
    """moto's own rule (`is_message_valid_based_on_retention_period`), without computing the other attributes."""
    retention_period = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    return bool(retention_period + message.sent_timestamp / 1000 > unix_time())


_create_backend_locked = BackendDict.__getitem__


def _account_backend(self: BackendDict[Any], account_id: str) -> Any:
    """The account's backend: without moto's lock when it exists (a backend, once created, stays until reset)."""
    backend = dict.get(self, account_id)
    return backend if backend is not None else _create_backend_locked(self, account_id)
