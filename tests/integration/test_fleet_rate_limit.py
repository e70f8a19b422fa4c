"""One rate limit for the whole fleet: many concurrent uploads against a tight quota.

The emulator keeps a fixed window (10 calls per 5 s) and a spike arrest (5 per second). The fleet learns the
limit from its first answer and, from then on, no call may receive 429: throttled work waits in the delay
queue until the window resets and is released within a few seconds after it.
"""

from __future__ import annotations

import itertools
import json

import pytest

from picsart_adapter.retry_policy import RESET_SPREAD_SECONDS
from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LocalEnvironment, UploadOutcome

from .conftest import not_succeeded, png_bytes, start_environment

pytestmark = pytest.mark.integration

QUOTA, WINDOW_S, SPIKE = 10, 5.0, 5
UPLOADS, AT_A_TIME = 50, 16
#: The longest a window's released work may wait after the reset: the reset header's precision (1 s for
#: the second forms), the spread, SQS's whole-second delays, the event source's polling, slack for a busy machine.
RELEASE_SLACK_S = 1.0 + RESET_SPREAD_SECONDS + 1.0 + 1.0 + 2.0
#: The floor after a 429 without a usable reset header, and how soon after its answer the fleet's block is
#: written, on a busy machine (a grant taken just before may also wait for its second: up to a further 0.25 s).
BARE_429_FLOOR_S, BLOCK_WRITTEN_WITHIN_S = 2, 1.0


def burst(env: LocalEnvironment, prefix: str) -> dict[str, UploadOutcome]:
    keys = [f"uploads/{prefix}-{n:02d}.png" for n in range(UPLOADS)]
    image = png_bytes()
    for key in keys:
        env.upload(key, image)
    return dict(env.wait_for(keys, timeout=240))


def tool_calls(env: LocalEnvironment) -> list[tuple[float, int]]:
    assert env.emulator is not None
    return sorted((c.at, c.status) for c in env.emulator.calls() if c.tool == "removebg")


def windows(calls: list[tuple[float, int]]) -> list[list[tuple[float, int]]]:
    """The emulator's fixed windows: each starts at the first call after the previous one ended."""
    grouped: list[list[tuple[float, int]]] = []
    for call in calls:
        if not grouped or call[0] >= grouped[-1][0][0] + WINDOW_S:
            grouped.append([])
        grouped[-1].append(call)
    return grouped


@pytest.mark.parametrize("reset_form", ["epoch_ms", "epoch_s", "seconds"])
def test_fleet_uses_the_quota_without_a_429(tmp_path_factory: pytest.TempPathFactory, reset_form: str) -> None:
    quota = EmulatorSettings(quota=QUOTA, window_seconds=WINDOW_S, spike_per_second=SPIKE, reset_time_format=reset_form)
    with start_environment(
        tmp_path_factory,
        f"fleet-{reset_form.replace('_', '-')}",
        emulator=quota,
        parameters={"SpikeArrestPerSecond": str(SPIKE)},
        upload_concurrency=AT_A_TIME,
        prewarm=True,
    ) as env:
        outcomes = burst(env, reset_form)
        assert not_succeeded(env, outcomes) == {}, "every upload processed"

        calls = tool_calls(env)
        assert [status for _, status in calls].count(200) == UPLOADS, "one successful call per upload"
        refused = [(round(at % 100, 3), status) for at, status in calls if status != 200]
        assert refused == [], (
            f"no call may be refused (429), got {refused} among {[round(at % 100, 3) for at, _ in calls]}"
        )
        assert env.runner is not None
        resumed = {
            json.loads(record["body"])["key"]
            for invocation in env.runner.history("RetryFunction")
            for record in invocation.event["Records"]
        }
        assert len(resumed) >= UPLOADS // 2, "most uploads waited in the delay queue for their window"

        grouped = windows(calls)
        assert len(grouped) >= UPLOADS // QUOTA
        for previous, current in itertools.pairwise(grouped):
            reset = previous[0][0] + WINDOW_S
            assert current[0][0] >= reset, "no call before the window resets"
            assert current[0][0] - reset <= RELEASE_SLACK_S, "released work starts soon after the reset"
        for window in grouped:
            per_second: dict[int, int] = {}
            for at, _ in window:
                per_second[int(at)] = per_second.get(int(at), 0) + 1
            assert max(per_second.values()) <= SPIKE, "the spike arrest is kept too"


def test_429_without_headers_waits_the_floor_then_finishes(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Guide: with no usable reset header, wait at least the floor (a minute; 2 s here), then back off."""
    faults = EmulatorSettings(quota=1000, window_seconds=60, spike_per_second=50, bare_429_rate=0.3, seed=7)
    with start_environment(
        tmp_path_factory,
        "bare429",
        emulator=faults,
        upload_concurrency=8,
        function_environment={"RATE_LIMIT_FLOOR_SECONDS": str(BARE_429_FLOOR_S)},
    ) as env:
        keys = [f"uploads/bare-{n:02d}.png" for n in range(12)]
        for key in keys:
            env.upload(key, png_bytes())
        outcomes = env.wait_for(keys, timeout=180)
        assert {o.status for o in outcomes.values()} == {"succeeded"}, outcomes
        bare = [o for o in outcomes.values() if o.record and o.record["attempts"][0]["http_status"] == 429]
        assert bare, "the fault was injected"
        for outcome in bare:
            assert outcome.record is not None
            first, *_ = outcome.record["attempts"]
            seen = first.get("rate_limit", {})
            assert not {"limit", "available", "reset_time"} & set(seen), "a 429 without rate-limit headers"
        assert env.emulator is not None
        calls = [c for c in env.emulator.calls() if c.tool == "removebg"]
        for throttled in (c for c in calls if c.status == 429):
            # Calls granted before the answer reached the fleet may still arrive: its block is written once
            # the answer is back (and a grant taken just before may wait for the second it was counted in).
            blocked_from = throttled.at + throttled.duration_ms / 1000 + BLOCK_WRITTEN_WITHIN_S
            resumed = [c.at for c in calls if blocked_from < c.at < throttled.at + BARE_429_FLOOR_S]
            assert resumed == [], "the whole fleet holds off for the floor after a bare 429"
