"""The local stack's model of DynamoDB's per-item throughput cap (moto_throttle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from picsart_local.moto_throttle import ItemThrottle, ThrottleLimits
from picsart_local.stack import LocalStack


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_item_is_throttled_beyond_its_cap_and_not_below() -> None:
    clock = Clock()
    model = ItemThrottle(ThrottleLimits(write_units_per_second=10, read_units_per_second=30), clock=clock)
    # A steady 10 writes a second for 10 s: at the cap, never refused.
    for _ in range(100):
        assert model.admit("ratelimit#a", "write", 1.0)
        clock.now += 0.1
    # One second's worth at once, then one more in the same moment: refused.
    assert all(model.admit("ratelimit#b", "write", 1.0) for _ in range(10))
    assert not model.admit("ratelimit#b", "write", 1.0)
    assert model.admit("ratelimit#c", "write", 1.0), "another item has its own cap"
    assert model.admit("ratelimit#b", "read", 1.0), "reads have their own cap"
    clock.now += 0.15
    assert model.admit("ratelimit#b", "write", 1.0), "a tenth of a second later, one more unit"
    assert model.throttled == {("ratelimit", "write"): 1}
    assert model.throttled_total("ratelimit") == 1


def test_a_refused_request_consumes_nothing() -> None:
    clock = Clock()
    model = ItemThrottle(ThrottleLimits(write_units_per_second=2, read_units_per_second=2), clock=clock)
    assert model.admit("x", "write", 2.0)
    for _ in range(5):
        assert not model.admit("x", "write", 1.0)
    clock.now += 0.5
    assert model.admit("x", "write", 1.0), "the refused requests took no units"


def test_only_the_items_named_by_prefix_are_capped_when_prefixes_are_given() -> None:
    model = ItemThrottle(ThrottleLimits(1, 1, prefixes=("ratelimit",)), clock=Clock())
    assert model.admit("ratelimit#a", "write", 1.0)
    assert not model.admit("ratelimit#a", "write", 1.0)
    assert all(model.admit("idempotency#picsart-call", "write", 1.0) for _ in range(10)), "not capped"


def test_limits_must_be_positive_and_scale_with_time() -> None:
    with pytest.raises(ValueError, match="positive"):
        ThrottleLimits(write_units_per_second=0)
    assert ThrottleLimits(1000, 3000).scaled(10) == ThrottleLimits(100, 300)
    assert ThrottleLimits(10, 30, prefixes=("circuit",)).scaled(2) == ThrottleLimits(5, 15, prefixes=("circuit",))


def test_a_stack_without_a_cap_never_throttles_and_one_with_a_cap_does(repository_root: Path) -> None:
    for name, limits in (("throttle-off", None), ("throttle-on", ThrottleLimits(3, 3))):
        stack = LocalStack(template_path=repository_root / "template.yaml", stack_name=name, item_throttle=limits)
        stack.start()
        try:
            client = stack.client("dynamodb")
            table = stack.outputs["JobsTableName"]
            refused = []
            for _ in range(12):
                try:
                    client.put_item(TableName=table, Item={"pk": {"S": "ratelimit#x"}, "sk": {"S": "state"}})
                except client.exceptions.ProvisionedThroughputExceededException as error:
                    refused.append(error.response.get("ThrottlingReasons"))
            if limits is None:
                assert refused == []
                assert stack.throttles == {}
            else:
                # The SDK retries a throttle a few times (and sleeps between); some writes are still refused.
                assert stack.throttles[table].throttled_total("ratelimit") >= 1
                assert all(
                    r == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": "local"}] for r in refused
                )
        finally:
            stack.stop()
