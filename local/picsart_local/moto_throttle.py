"""DynamoDB's per-partition throughput cap, which moto does not model: a hot item answers with a throttling error.

DynamoDB serves one partition at most about 1,000 write units and 3,000 read units a second, on-demand tables
too, and answers a request beyond that with `ProvisionedThroughputExceededException` (HTTP 400), its
`ThrottlingReasons` naming `TableWriteKeyRangeThroughputExceeded` or `TableReadKeyRangeThroughputExceeded`.
Every item of the adapter's table has its own partition key, so the model keeps one token bucket per item
(table and key) for writes and one for reads: each fills at its cap per second and holds at most one second of
it. A request that finds too few units is refused and consumes none, as DynamoDB's throttled requests do.

Units are DynamoDB's billing rule (`bench.metering`): a write one per started KB of the larger of the item before
and after, a read one per started 4 KB (half for an eventually consistent read).

The model is off until a `ThrottleLimits` is given for a table (`LocalStack(item_throttle=...)`); the wrapper
it installs on moto's DynamoDB handler stays for the process's lifetime and lets through every request of a
table without limits (test_moto_throttle.py).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from moto.dynamodb.responses import DynamoHandler

from picsart_local.bench.metering import THROTTLE_ERROR, _item_size, _target_action, read_units, write_units

#: DynamoDB's per-partition caps (units per second): the defaults of a model that is switched on.
PARTITION_WRITE_UNITS: Final = 1000.0
PARTITION_READ_UNITS: Final = 3000.0
_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
_READS: Final = frozenset({"GetItem"})


@dataclass(frozen=True)
class ThrottleLimits:
    """Each item's cap: write and read units per second (DynamoDB's per-partition caps by default)."""

    write_units_per_second: float = PARTITION_WRITE_UNITS
    read_units_per_second: float = PARTITION_READ_UNITS
    #: The partition key prefixes (before "#": "ratelimit", "circuit", "idempotency", "object") whose items are
    #: capped; None: every item, as in DynamoDB.
    prefixes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.write_units_per_second <= 0 or self.read_units_per_second <= 0:
            raise ValueError("an item's write and read caps must be positive units per second")

    def scaled(self, time_scale: float) -> ThrottleLimits:
        """The caps of a run whose time goes `time_scale` times slower (every duration times it)."""
        return replace(
            self,
            write_units_per_second=self.write_units_per_second / time_scale,
            read_units_per_second=self.read_units_per_second / time_scale,
        )

    def caps(self, item: str) -> bool:
        return self.prefixes is None or _prefix(item) in self.prefixes


@dataclass
class _Bucket:
    rate: float
    tokens: float
    at: float

    def take(self, units: float, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < units:
            return False
        self.tokens -= units
        return True


@dataclass
class ItemThrottle:
    """One table's model: a write bucket and a read bucket per item, and what it refused."""

    limits: ThrottleLimits
    clock: Callable[[], float] = time.monotonic
    #: Refused requests by (partition prefix before "#", "write" or "read").
    throttled: dict[tuple[str, str], int] = field(default_factory=dict)
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, item: str, kind: str, units: float) -> bool:
        """Whether the item has `units` of `kind` ("write" or "read") left this moment; taken if so."""
        if not self.limits.caps(item):
            return True
        rate = self.limits.write_units_per_second if kind == "write" else self.limits.read_units_per_second
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get((item, kind))
            if bucket is None:
                bucket = self._buckets[(item, kind)] = _Bucket(rate, rate, now)
            if bucket.take(units, now):
                return True
            prefix = _prefix(item)
            self.throttled[(prefix, kind)] = self.throttled.get((prefix, kind), 0) + 1
            return False

    def throttled_total(self, prefix: str | None = None) -> int:
        with self._lock:
            return sum(count for (name, _), count in self.throttled.items() if prefix in (None, name))


_models: dict[str, ItemThrottle] = {}
_models_lock = threading.Lock()
_installed = False


def throttle_table(table_name: str, limits: ThrottleLimits) -> ItemThrottle:
    """Cap each item of `table_name` (in this process's moto) until `release_table`."""
    _install()
    model = ItemThrottle(limits)
    with _models_lock:
        _models[table_name] = model
    return model


def release_table(table_name: str) -> None:
    with _models_lock:
        _models.pop(table_name, None)


def _install() -> None:
    global _installed
    with _models_lock:
        if _installed:
            return
        DynamoHandler.call_action = _throttled(DynamoHandler.call_action)  # type: ignore[method-assign]
        _installed = True


def _throttled(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def call_action(handler: Any) -> Any:
        params: Mapping[str, Any] = getattr(handler, "params", None) or {}
        model = _models.get(str(params.get("TableName", ""))) if _models else None
        if model is None:
            return original(handler)
        action = _target_action(handler)
        if action not in _WRITES and action not in _READS:
            return original(handler)
        table = str(params["TableName"])
        item = _item_identity(params)
        size = _item_size(handler, table, params)
        if action in _WRITES:
            # The item after the write is not known before it: the larger of before and the request's own
            # values is close enough for a bucket (the limiter's item stays well under one KB).
            kind, units = "write", write_units(size, size)
        else:
            kind, units = "read", read_units(size, bool(params.get("ConsistentRead", False)))
        if model.admit(item, kind, units):
            return original(handler)
        return _throttle_response(kind)

    return call_action


def _throttle_response(kind: str) -> tuple[int, dict[str, str], str]:
    """DynamoDB's answer to a request over a partition's cap (botocore reads the code after the "#")."""
    reason = "TableWriteKeyRangeThroughputExceeded" if kind == "write" else "TableReadKeyRangeThroughputExceeded"
    body = {
        "__type": f"com.amazonaws.dynamodb.v20120810#{THROTTLE_ERROR}",
        "message": "The level of configured provisioned throughput for the table was exceeded. Consider increasing "
        "your provisioning level with the UpdateTable API.",
        "ThrottlingReasons": [{"reason": reason, "resource": "local"}],
    }
    return 400, {"Content-Type": "application/x-amz-json-1.0", "status": "400"}, json.dumps(body)


def _item_identity(params: Mapping[str, Any]) -> str:
    """The item's partition key value as text (`ratelimit#…`, `object#…`)."""
    keys = params.get("Key") or params.get("Item") or {}
    value = keys.get("pk") if isinstance(keys, Mapping) else None
    text = value.get("S") if isinstance(value, Mapping) else None
    return text if isinstance(text, str) else json.dumps(keys, sort_keys=True, default=str)


def _prefix(item: str) -> str:
    return item.split("#", 1)[0]
