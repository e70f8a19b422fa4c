"""DynamoDB applies each conditional write atomically; moto's in-memory backend does not lock.

Under the concurrent invocations the local stack runs, two moto threads could both pass the same
condition and both write, which real DynamoDB never allows. Serialising moto's DynamoDB writes to the same
partition key restores the guarantee the fleet's rate limiter (and the idempotency records) rely on.

Writes to different partition keys go on at once, as in DynamoDB: with one lock for every write, the
records' writes queued behind the rate limiter's on one item, and a write took 250 ms in the benchmark
where moto handles one in 6. The keys share a fixed set of locks (striped by the key's hash); a
transaction or a batch takes all of them, in order.

A write returns a copy of the item as it left it: moto returns the stored item itself and its response reads
it once the lock is released, so with writes truly concurrent a grant could be answered with the count of
the write after it (3-9 quota 429s a bench run once the stack stopped serialising requests).
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_STRIPES = tuple(threading.RLock() for _ in range(64))
_INSTALL_LOCK = threading.Lock()
_installed = False


def serialize_dynamodb_writes() -> None:
    """Make every DynamoDB write in this process's moto atomic (idempotent; for the process's lifetime)."""
    global _installed
    with _INSTALL_LOCK:
        if _installed:
            return
        DynamoDBBackend.put_item = _one_item(DynamoDBBackend.put_item)  # type: ignore[method-assign]
        DynamoDBBackend.update_item = _one_item(DynamoDBBackend.update_item)  # type: ignore[method-assign]
        DynamoDBBackend.delete_item = _one_item(DynamoDBBackend.delete_item)  # type: ignore[method-assign]
        for name in ("transact_write_items", "batch_write_item"):
            setattr(DynamoDBBackend, name, _all_items(getattr(DynamoDBBackend, name)))
        _installed = True


def _stripe(backend: DynamoDBBackend, table_name: str, attributes: dict[str, Any]) -> threading.RLock:
    """The lock of the item's partition key (the first one when the request does not name the key)."""
    try:
        hash_key = backend.get_table(table_name).hash_key_attr
        identity = json.dumps([table_name, attributes[hash_key]], sort_keys=True)
    except Exception:  # a request without the key: moto reports it
        return _STRIPES[0]
    return _STRIPES[hash(identity) % len(_STRIPES)]


def _one_item(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a write whose second argument holds the item's key (PutItem's item, UpdateItem's and DeleteItem's key)."""

    @functools.wraps(method)
    def write(self: DynamoDBBackend, table_name: str, attributes: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        with _stripe(self, table_name, attributes):
            # moto returns the stored item itself, which its response reads after this returns: a snapshot
            # taken here is the item as this write left it, as DynamoDB's ReturnValues are.
            return copy.deepcopy(method(self, table_name, attributes, *args, **kwargs))

    return write


def _all_items(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        with ExitStack() as held:
            for lock in _STRIPES:
                held.enter_context(lock)
            return method(*args, **kwargs)

    return write
