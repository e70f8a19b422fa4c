"""Every 429's reset honoured, end to end: the emulator's spike arrest is lower than the adapter is told.

The fleet is told 6 calls a second, the emulator admits 2: calls beyond its 2 a second are answered 429, with
the quota window's reset (a few seconds away). Guide: after a 429 with a reset time, no request until that
time. A look at the fleet's item and the call it clears cannot be one step, so the rule the fleet keeps is
(docs/rate-limit.md, rule 18): once a 429 is recorded in the item, the only calls that still go before its
reset are those cleared by a look DynamoDB served before the record, and each of them is sent straight after
its look, in the second it was counted in and before that second's last 250 ms. So none is sent after the
second in which the 429 was recorded. The test holds every call to that, from:

- the emulator's call log: each call's arrival, status and the reset its answer named;
- the job records: when each call was started (after its last look at the item), by correlation id;
- moto's writes of the limiter item, seen from this process (moto runs in it): when each 429's reset was
  recorded (the time is taken once the write has returned, so it is never early). The answers to the other
  writes of the item are slowed down, so that most grants are for the next second and wait for it.

No time in it is a slack: each bound is one the code enforces (a grant's second, its last 250 ms).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from picsart_local.emulator import EmulatorSettings

from .conftest import not_succeeded, png_bytes, start_environment

pytestmark = pytest.mark.integration

#: The emulator's spike arrest, lower than the adapter's `SpikeArrestPerSecond`.
PICSART_SPIKE, TOLD_SPIKE = 2, 6
QUOTA, WINDOW_S = 1000, 4.0
UPLOADS, AT_A_TIME = 24, 8
#: How late the answers to the limiter's writes (but a 429's record) come back: a slow DynamoDB.
SLOW_WRITE_S = 0.35
#: A 429 whose reset is this far after its arrival is one the fleet has time to record (its answer, then one
#: write): every such 429 must have been recorded.
RECORDABLE_S = 2.0


class LimiterWrites:
    """moto's writes of the limiter item, seen from this process: when `blocked_until_ms` was written (epoch s,
    as each write returns, so never early), and the answers to the other writes slowed down."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._lock = threading.Lock()
        self.blocks: list[tuple[float, int]] = []

    def install(self) -> None:
        """Once the stack has started, around the write moto_atomic serialises (the test's monkeypatch undoes it).

        The answer to each write that is not a 429's record comes back `SLOW_WRITE_S` late, the write itself
        done: environments that time their writes so count most grants in the next second and wait for it,
        which is when a 429 recorded meanwhile must hold them (rule 26). Without it the race is rare."""
        update_item = DynamoDBBackend.update_item

        def recording(backend: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            item = update_item(backend, table_name, key, *args, **kwargs)
            if not str(key.get("pk", {}).get("S", "")).startswith("ratelimit#"):
                return item
            if "#blocked" in str(kwargs.get("update_expression") or (args[0] if args else "")):
                blocked = item.to_json()["Attributes"].get("blocked_until_ms", {}).get("N")
                with self._lock:
                    self.blocks.append((time.time(), int(blocked)))
            else:
                time.sleep(SLOW_WRITE_S)
            return item

        self._monkeypatch.setattr(DynamoDBBackend, "update_item", recording)

    def recorded(self, reset_ms: int) -> float | None:
        """When the item first held the fleet until `reset_ms` or later."""
        with self._lock:
            return min((at for at, until in self.blocks if until >= reset_ms), default=None)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_no_call_is_sent_after_a_429_was_recorded_before_its_reset(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter_writes = LimiterWrites(monkeypatch)
    picsart = EmulatorSettings(quota=QUOTA, window_seconds=WINDOW_S, spike_per_second=PICSART_SPIKE)
    with start_environment(
        tmp_path_factory,
        "every-reset",
        emulator=picsart,
        parameters={"SpikeArrestPerSecond": str(TOLD_SPIKE), "MaxAttempts": "30"},
        upload_concurrency=AT_A_TIME,
        prewarm=True,
    ) as env:
        limiter_writes.install()
        keys = [f"uploads/reset-{n:02d}.png" for n in range(UPLOADS)]
        image = png_bytes()
        for key in keys:
            env.upload(key, image)
        outcomes = env.wait_for(keys, timeout=300)
        assert not_succeeded(env, outcomes) == {}, "every upload processed in the end"

        assert env.emulator is not None
        calls = [c for c in env.emulator.calls() if c.tool == "removebg"]
        throttled = [c for c in calls if c.status == 429]
        assert throttled, "the emulator's lower spike arrest answered 429s"
        started = {
            attempt["picsart_correlation_id"]: epoch(attempt["started_at"])
            for outcome in outcomes.values()
            for attempt in (outcome.record or {}).get("attempts", [])
            if attempt.get("picsart_correlation_id")
        }
        assert {c.correlation_id for c in calls} <= set(started), "each call's start is in its job's record"

        checked, in_flight = 0, set()
        for answer in throttled:
            assert answer.reset_at is not None, "the 429 named its reset"
            recorded_at = limiter_writes.recorded(round(answer.reset_at * 1000))
            if recorded_at is None:
                assert answer.reset_at - answer.at < RECORDABLE_S, f"a 429 not recorded: {answer}"
                continue
            checked += 1
            # Calls still sent once the 429 is recorded were cleared by a look served before the record, and left
            # in the second they were counted in, before its last 250 ms: within the record's own second.
            in_flight_until = math.floor(recorded_at) + 1
            early = [
                (round(started[c.correlation_id] - recorded_at, 3), round(c.at - answer.at, 3), c.status)
                for c in calls
                if started[c.correlation_id] >= in_flight_until and c.at < answer.reset_at
            ]
            in_flight |= {c.correlation_id for c in calls if answer.at < c.at < answer.reset_at}
            assert early == [], (
                f"calls sent after the second in which a 429 (arrived {answer.at:.3f}, reset {answer.reset_at:.3f}) "
                f"was recorded ({recorded_at:.3f}) reached Picsart before its reset "
                "(sent s after the record, arrived s after the 429, status)"
            )
        assert checked, "at least one 429 was recorded and checked"
        # Shown with -s: how much the run exercised (calls that arrived after a 429 and before its reset were all
        # sent within the second of its record).
        print(f"{len(calls)} calls, {len(throttled)} answered 429, {checked} recorded; {len(in_flight)} in flight")
