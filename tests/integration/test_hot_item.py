"""A burst against a limiter item DynamoDB throttles (the local stack's per-item cap, moto_throttle.py): nothing is
lost, nothing is dead-lettered for it, no call is made without a grant, and the throttle is told (metric, log)."""

from __future__ import annotations

import pytest

from picsart_local.emulator import EmulatorSettings
from picsart_local.moto_throttle import ThrottleLimits

from .conftest import not_succeeded, png_bytes, start_environment

pytestmark = pytest.mark.integration

QUOTA, WINDOW_S, SPIKE = 10, 5.0, 5
UPLOADS, AT_A_TIME = 30, 16
#: Far below DynamoDB's 1,000 / 3,000 units a second, and below the burst's own writes for long enough that
#: throttles outlast the SDK's retries and reach the limiter. The limiter's and the circuit's items alone: the
#: idempotency records' shared partition throttled is another matter (docs/decisions.md, H5).
TIGHT = ThrottleLimits(write_units_per_second=3, read_units_per_second=20, prefixes=("ratelimit", "circuit"))


def test_a_throttled_limiter_item_loses_nothing_and_makes_no_call_without_a_grant(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    quota = EmulatorSettings(quota=QUOTA, window_seconds=WINDOW_S, spike_per_second=SPIKE)
    with start_environment(
        tmp_path_factory,
        "hot-item",
        emulator=quota,
        parameters={"SpikeArrestPerSecond": str(SPIKE)},
        upload_concurrency=AT_A_TIME,
        prewarm=True,
        item_throttle=TIGHT,
    ) as env:
        keys = [f"uploads/hot-{n:02d}.png" for n in range(UPLOADS)]
        image = png_bytes()
        for key in keys:
            env.upload(key, image)
        outcomes = env.wait_for(keys, timeout=300)
        assert not_succeeded(env, outcomes) == {}, "every upload processed, none dead-lettered"

        assert env.stack is not None
        throttled = sum(model.throttled_total("ratelimit") for model in env.stack.throttles.values())
        assert throttled > 0, "the limiter's item was throttled"

        assert env.emulator is not None
        calls = [c for c in env.emulator.calls() if c.tool == "removebg"]
        # Every call had a grant: the fleet's budget (10 per 5 s, 5 a second) is all the emulator let through,
        # and a call without one would have met a 429.
        assert [c.status for c in calls].count(429) == 0
        assert [c.status for c in calls].count(200) == UPLOADS, "one call per upload"

        assert env.runner is not None
        logs = "".join(path.read_text() for path in env.runner.log_dir.glob("*.log"))
        assert "the limiter item is throttled by DynamoDB" in logs, "a log line says so"
        assert '"LimiterThrottled"' in logs, "and a metric"
