"""What AWS applies atomically and moto's in-memory backends do not: DynamoDB's conditional writes, and SQS's
changes to a queue's messages.

DynamoDB: under the concurrent invocations the local stack runs, two moto threads could both pass the same
condition and both write, which real DynamoDB never allows. Serialising moto's DynamoDB writes to the same
partition key restores the guarantee the fleet's rate limiter (and the idempotency records) rely on.

Writes to different partition keys go on at once, as in DynamoDB: one lock for every write would queue the
records' writes behind the rate limiter's on one item. The keys share a fixed set of locks (striped by the
key's hash); a transaction or a batch takes all of them, in order.

A write returns a copy of the item as it left it: moto returns the stored item itself and its response reads
it once the lock is released, so with writes truly concurrent a grant could be answered with the count of
the write after it.

SQS: moto's DeleteMessage builds a new list of the queue's messages from the one it walks and puts it in
place of the queue's, without a lock. Unlocked, a delete that overlaps another request (its thread preempted
midway) undoes what that request did: a message sent meanwhile is gone, even once received and in flight (a
batch whose invocation is killed never comes back), and a message deleted meanwhile is back (in flight, it
keeps the runner from being idle until its visibility timeout ends). So each of moto's operations on a
queue's messages holds the queue's own lock, the one moto takes to append a message; a long-polling receive
releases it while it waits (test_a_killed_batch_comes_back_whole_while_moto_serves_overlapping_deletes).
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
from moto.sqs.models import Queue, SQSBackend

_STRIPES = tuple(threading.RLock() for _ in range(64))
_INSTALL_LOCK = threading.Lock()
_installed: set[str] = set()


def serialize_dynamodb_writes() -> None:
    """Make every DynamoDB write in this process's moto atomic (idempotent; for the process's lifetime)."""
    with _INSTALL_LOCK:
        if "dynamodb" in _installed:
            return
        DynamoDBBackend.put_item = _one_item(DynamoDBBackend.put_item)  # type: ignore[method-assign]
        DynamoDBBackend.update_item = _one_item(DynamoDBBackend.update_item)  # type: ignore[method-assign]
        DynamoDBBackend.delete_item = _one_item(DynamoDBBackend.delete_item)  # type: ignore[method-assign]
        for name in ("transact_write_items", "batch_write_item"):
            setattr(DynamoDBBackend, name, _all_items(getattr(DynamoDBBackend, name)))
        _installed.add("dynamodb")


def serialize_sqs_queues() -> None:
    """Make each of moto's operations on a queue's messages atomic in this process (idempotent; for the
    process's lifetime). Batches go through these one message at a time."""
    with _INSTALL_LOCK:
        if "sqs" in _installed:
            return
        for name in ("add_message", "delete_message"):
            setattr(Queue, name, _queue_locked(getattr(Queue, name)))
        for name in ("receive_message", "change_message_visibility", "purge_queue"):
            setattr(SQSBackend, name, _named_queue_locked(getattr(SQSBackend, name)))
        _installed.add("sqs")


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


def _queue_locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a method of moto's Queue: it runs holding the queue's lock (re-entrant: a Condition on an RLock)."""

    @functools.wraps(method)
    def locked(queue: Queue, *args: Any, **kwargs: Any) -> Any:
        with queue._messages_lock:
            return method(queue, *args, **kwargs)

    return locked


def _named_queue_locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a method of moto's SQSBackend whose first argument names the queue (an unknown name raises as before)."""

    @functools.wraps(method)
    def locked(backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with backend.get_queue(queue_name)._messages_lock:
            return method(backend, queue_name, *args, **kwargs)

    return locked
