"""moto's SQS receive checks each message it hands out against the queue's retention period by computing every
attribute of the queue, the approximate counts among them: a few passes over all the queue's messages for
each message received. With a few hundred parked messages in the delay queue, that was a third of the local
stack's process time in the benchmark, and every other request (all of moto, the emulator) waited for it.
Reading the retention period alone gives the same answer.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.utils import unix_time
from moto.sqs.models import SQSBackend

_LOCK = threading.Lock()
_installed = False


def check_retention_without_counting() -> None:
    """Make moto's per-message retention check read the queue's retention period only (idempotent)."""
    global _installed
    with _LOCK:
        if _installed:
            return
        SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
        _installed = True


def _within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
    """moto's own rule (`is_message_valid_based_on_retention_period`), without computing the other attributes."""
    retention_period = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    return bool(retention_period + message.sent_timestamp / 1000 > unix_time())
