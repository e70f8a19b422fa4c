"""What the functions ask of AWS, counted where it is answered: in the moto server, which runs in this process.

While a `Meter` is active, every DynamoDB and SQS request moto handles is recorded with who sent it (read
from its User-Agent: botocore adds ``exec-env/AWS_Lambda_…`` inside an execution environment, the bench's
own clients add ``picsart-bench``; anything else is the local stack's own machinery, e.g. the runner's
event-source pollers), and every S3 object write with its time.

DynamoDB capacity units are computed from the item sizes moto holds (moto's own size rule: names and values
in bytes, numbers as their digits), by DynamoDB's billing rule:
- writes (PutItem, UpdateItem, DeleteItem, failed conditional writes included): one unit per started KB of
  the larger of the item before and after, at least one;
- reads (GetItem): one unit per started 4 KB of the item (half for an eventually consistent read), at least
  one even when there is no item.
Other actions are counted as requests with no units (the functions do not use them).
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from moto.dynamodb.responses import DynamoHandler
from moto.s3.models import S3Backend
from moto.sqs.responses import SQSResponse

BENCH_USER_AGENT: Final = "picsart-bench"
FUNCTION: Final = "function"
BENCH: Final = "bench"
LOCAL: Final = "local"
DYNAMODB_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
DYNAMODB_READS: Final = frozenset({"GetItem"})
#: DynamoDB's answer to a request over a partition's throughput cap (moto_throttle.py models it).
THROTTLE_ERROR: Final = "ProvisionedThroughputExceededException"


def origin_of(user_agent: str) -> str:
    """Who sent a request: a function (an execution environment), the bench itself, or the local stack."""
    if BENCH_USER_AGENT in user_agent:
        return BENCH
    if "exec-env/AWS_Lambda" in user_agent:
        return FUNCTION
    return LOCAL


def write_units(size_before: int | None, size_after: int | None) -> float:
    """Write units of one write: per started KB of the larger image, at least one."""
    size = max(size_before or 0, size_after or 0)
    return float(max(1, math.ceil(size / 1024)))


def read_units(size: int | None, consistent: bool) -> float:
    """Read units of one GetItem: per started 4 KB, at least one; half for an eventually consistent read."""
    units = max(1, math.ceil((size or 0) / 4096))
    return float(units) if consistent else units / 2.0


@dataclass(frozen=True)
class DynamoDBRequest:
    at: float
    origin: str
    action: str
    table: str
    #: The partition key's prefix (before the first "#"): "ratelimit" or "object" in the adapter's table.
    partition: str
    read_units: float | None
    write_units: float | None
    #: Refused for the partition's throughput cap: it consumed no units.
    throttled: bool = False


@dataclass(frozen=True)
class SqsRequest:
    at: float
    origin: str
    action: str
    queue: str  # the queue's name


@dataclass(frozen=True)
class ObjectWrite:
    at: float
    bucket: str
    key: str


@dataclass
class Meter:
    """Records of what moto answered while this meter was active."""

    dynamodb: list[DynamoDBRequest] = field(default_factory=list)
    sqs: list[SqsRequest] = field(default_factory=list)
    writes: list[ObjectWrite] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        """Forget everything recorded so far (e.g. the stack's creation)."""
        with self._lock:
            self.dynamodb.clear()
            self.sqs.clear()
            self.writes.clear()

    def snapshot(self) -> Meter:
        with self._lock:
            return Meter(list(self.dynamodb), list(self.sqs), list(self.writes))

    def written(self, bucket: str) -> dict[str, float]:
        """Key -> time of the first write of that key into `bucket`."""
        with self._lock:
            found: dict[str, float] = {}
            for write in self.writes:
                if write.bucket == bucket and write.key not in found:
                    found[write.key] = write.at
            return found

    def _add(self, record: DynamoDBRequest | SqsRequest | ObjectWrite) -> None:
        with self._lock:
            if isinstance(record, DynamoDBRequest):
                self.dynamodb.append(record)
            elif isinstance(record, SqsRequest):
                self.sqs.append(record)
            else:
                self.writes.append(record)


_active: Meter | None = None
_installed = False
_install_lock = threading.Lock()


@contextmanager
def metering() -> Iterator[Meter]:
    """Record what moto answers (in this process) until the block ends."""
    global _active
    _install()
    meter = Meter()
    _active = meter
    try:
        yield meter
    finally:
        _active = None


def _install() -> None:
    """Wrap moto's DynamoDB and SQS request handlers and S3's object writes (once per process; the
    wrappers do nothing while no meter is active)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        DynamoHandler.call_action = _metered_dynamodb(DynamoHandler.call_action)  # type: ignore[method-assign]
        SQSResponse.call_action = _metered_sqs(SQSResponse.call_action)  # type: ignore[method-assign,assignment]
        S3Backend.put_object = _metered_put(S3Backend.put_object)  # type: ignore[method-assign]
        _installed = True


def _metered_dynamodb(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def call_action(handler: Any) -> Any:
        meter = _active
        if meter is None:
            return original(handler)
        action = _target_action(handler)
        params: Mapping[str, Any] = getattr(handler, "params", None) or {}
        table = str(params.get("TableName", ""))
        if action in DYNAMODB_WRITES:
            # Read just before and after, not under moto's write lock (holding it for the whole request
            # would serialise the server): a concurrent write to the same item in between moves its size by
            # a few bytes, not by a unit.
            before = _item_size(handler, table, params)
            answer = original(handler)
            after = _item_size(handler, table, params)
            reads, writes = None, write_units(before, after)
        elif action in DYNAMODB_READS:
            size = _item_size(handler, table, params)
            answer = original(handler)
            reads, writes = read_units(size, bool(params.get("ConsistentRead", False))), None
        else:
            answer = original(handler)
            reads = writes = None
        throttled = _is_throttle(answer)
        if throttled:
            reads = writes = None
        origin = origin_of(str(handler.headers.get("User-Agent", "")))
        meter._add(DynamoDBRequest(time.time(), origin, action, table, _partition(params), reads, writes, throttled))
        return answer

    return call_action


def _metered_sqs(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def call_action(handler: Any) -> Any:
        meter = _active
        if meter is not None:
            try:
                action, queue = str(handler._get_action()), str(handler._get_queue_name())
            except Exception:  # never let counting break the server
                action, queue = "unknown", ""
            origin = origin_of(str(handler.headers.get("User-Agent", "")))
            meter._add(SqsRequest(time.time(), origin, action, queue))
        return original(handler)

    return call_action


def _metered_put(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def put_object(backend: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        answer = original(backend, bucket_name, key_name, *args, **kwargs)
        meter = _active
        if meter is not None:
            meter._add(ObjectWrite(time.time(), bucket_name, key_name))
        return answer

    return put_object


def _is_throttle(answer: Any) -> bool:
    """Whether moto's answer (status, headers, body) is a throughput-cap refusal."""
    if not isinstance(answer, tuple) or len(answer) != 3 or answer[0] != 400:
        return False
    body = answer[2]
    return THROTTLE_ERROR in (body.decode() if isinstance(body, bytes) else str(body))


def _target_action(handler: Any) -> str:
    target = handler.headers.get("X-Amz-Target") or handler.headers.get("x-amz-target") or ""
    return str(target).rpartition(".")[2] or "unknown"


def _item_size(handler: Any, table_name: str, params: Mapping[str, Any]) -> int | None:
    """Size in bytes of the item the request names, as moto holds it now (None: no such item)."""
    try:
        backend = handler.dynamodb_backend
        table = backend.get_table(table_name)
        keys = params.get("Key")
        if keys is None:  # PutItem names its item, key attributes included
            item = params.get("Item") or {}
            keys = {name: item[name] for name in (table.hash_key_attr, table.range_key_attr) if name in item}
        found = backend.get_item(table_name, keys)
        return int(found.size()) if found is not None else None
    except Exception:  # the request itself will fail and say why; it costs what a missing item costs
        return None


def _partition(params: Mapping[str, Any]) -> str:
    keys = params.get("Key") or params.get("Item") or {}
    value = keys.get("pk") if isinstance(keys, Mapping) else None
    text = value.get("S") if isinstance(value, Mapping) else None
    return text.split("#", 1)[0] if isinstance(text, str) else ""
