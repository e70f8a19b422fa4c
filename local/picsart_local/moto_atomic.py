"""DynamoDB applies each conditional write atomically; moto's in-memory backend does not lock.

Under the concurrent invocations the local stack runs, two moto threads could both pass the same
condition and both write, which real DynamoDB never allows. Serialising moto's DynamoDB writes restores
the guarantee the fleet's rate limiter (and the idempotency records) rely on.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_LOCK = threading.RLock()
_installed = False


def serialize_dynamodb_writes() -> None:
    """Make every DynamoDB write in this process's moto atomic (idempotent; for the process's lifetime)."""
    global _installed
    with _LOCK:
        if _installed:
            return
        for name in _WRITES:
            original = getattr(DynamoDBBackend, name, None)
            if original is not None:
                setattr(DynamoDBBackend, name, _locked(original))
        _installed = True


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return write
