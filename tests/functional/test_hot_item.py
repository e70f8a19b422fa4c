"""The limiter's and the circuit's items throttled by DynamoDB (the local stack's per-item cap, moto_throttle.py):
the adapter gets a `throttled` denial or a hold, never an error, and no call is made without a grant.

The clients here make one attempt (no SDK retries), so each throttle reaches the limiter at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from picsart_adapter.circuit import FleetCircuit, Open
from picsart_adapter.observability import metrics
from picsart_adapter.picsart_client import RateLimitHeaders
from picsart_adapter.rate_limit import Denial, FleetRateLimiter, Grant, key_fingerprint
from picsart_adapter.rate_limit.hot_item import THROTTLED, THROTTLED_BACKOFF_SECONDS, THROTTLED_JITTER_SECONDS
from picsart_local.moto_throttle import ThrottleLimits
from picsart_local.stack import LocalStack

from .conftest import Clock

T0 = 1_800_000_000.25
#: Two write units a second per item: a third write in the same moment is throttled.
LIMITS = ThrottleLimits(write_units_per_second=2, read_units_per_second=2)


@pytest.fixture(scope="module")
def hot_stack(repository_root: Path) -> Iterator[LocalStack]:
    local = LocalStack(
        template_path=repository_root / "template.yaml", stack_name="functional-hot-item", item_throttle=LIMITS
    ).start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def hot_table(hot_stack: LocalStack) -> Any:
    """The jobs table through a client that does not retry (total_max_attempts 1)."""
    credentials = hot_stack.aws_environment()
    session = boto3.session.Session(
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=hot_stack.region,
    )
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return session.resource("dynamodb", endpoint_url=hot_stack.endpoint_url, config=config).Table(
        hot_stack.outputs["JobsTableName"]
    )


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def _exhaust(table: Any, pk: str, writes: int = 3, reads: int = 0) -> None:
    """Spend the item's write (and read) units from outside the limiter, as the rest of the fleet does: the
    last of them is throttled."""
    codes = []
    for _ in range(writes):
        try:
            table.put_item(Item={"pk": f"{pk}-other", "sk": "x"})  # another item: never held back by this one
            table.update_item(
                Key={"pk": pk, "sk": "spent"}, UpdateExpression="SET touched = :t", ExpressionAttributeValues={":t": 1}
            )
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    for _ in range(reads):
        try:
            table.get_item(Key={"pk": pk, "sk": "spent"}, ConsistentRead=True)
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    assert codes, "the item's cap was not reached"
    assert set(codes) == {"ProvisionedThroughputExceededException"}


def test_a_throttled_acquire_is_a_short_jittered_denial_not_an_error(hot_table: Any) -> None:
    key, clock = f"key-{uuid.uuid4()}", Clock(T0)
    limiter = FleetRateLimiter(hot_table, lambda: key, clock=clock)
    _exhaust(hot_table, f"ratelimit#{key_fingerprint(key)}", writes=3, reads=3)
    decision = limiter.acquire()
    assert isinstance(decision, Denial), decision
    assert decision.reason == THROTTLED
    assert (
        T0 + THROTTLED_BACKOFF_SECONDS <= decision.retry_at <= T0 + THROTTLED_BACKOFF_SECONDS + THROTTLED_JITTER_SECONDS
    )
    assert "LimiterThrottled" in metrics.metric_set


def test_an_environment_that_found_the_item_throttled_leaves_it_alone_for_a_while(hot_table: Any) -> None:
    key, clock = f"key-{uuid.uuid4()}", Clock(T0)
    limiter = FleetRateLimiter(hot_table, lambda: key, clock=clock)
    _exhaust(hot_table, f"ratelimit#{key_fingerprint(key)}", writes=3, reads=3)
    first = limiter.acquire()
    assert isinstance(first, Denial)
    writes = limiter.writes
    assert limiter.known_denial() == first, "the rest of its work parks without touching the item"
    assert limiter.acquire() == first
    assert limiter.writes == writes, "no write while it leaves the item alone"
    clock.now = first.retry_at + 1
    known = limiter.known_denial()
    assert known is None or known.reason != THROTTLED, "after its time it asks again"


def test_a_throttled_answer_write_is_skipped_not_failed(hot_table: Any) -> None:
    key, clock = f"key-{uuid.uuid4()}", Clock(T0)
    limiter = FleetRateLimiter(hot_table, lambda: key, clock=clock)
    assert isinstance(limiter.acquire(), Grant), "the probe's grant (a read and a write: within the caps)"
    _exhaust(hot_table, f"ratelimit#{key_fingerprint(key)}", writes=3)
    headers = RateLimitHeaders(limit=60, available=59, reset_time=str(int((T0 + 10) * 1000)), credits=100)
    limiter.observe(headers, throttled=False)  # the answer would confirm the window: its write is throttled
    assert "LimiterAnswerWritesSkipped" in metrics.metric_set
    limiter.observe(RateLimitHeaders(None, None, None, None), throttled=True)  # the floor's write: skipped too


def test_a_throttled_circuit_read_holds_the_job_without_a_call(hot_table: Any) -> None:
    key, clock = f"key-{uuid.uuid4()}", Clock(T0)
    circuit = FleetCircuit(hot_table, lambda: key, clock=clock)
    _exhaust(hot_table, f"circuit#{key_fingerprint(key)}", writes=0, reads=6)
    admission = circuit.admit()
    assert isinstance(admission, Open)
    assert admission.retry_at >= T0 + THROTTLED_BACKOFF_SECONDS
    assert "throttled" in admission.reason


def test_other_errors_are_still_raised(hot_stack: LocalStack) -> None:
    limiter = FleetRateLimiter(hot_stack.resource("dynamodb").Table("no-such-table"), lambda: "k")
    with pytest.raises(ClientError) as raised:
        limiter.acquire()
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
