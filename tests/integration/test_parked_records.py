"""A parked job's "waiting" record never overwrites the end another environment gave it.

An upload environment that already knows the window's budget is spent parks new uploads before their
once-per-step section: it records each as waiting and sends its delay-queue message. The message is often due
at once, so a retry environment may run the job to its end while the upload environment is still busy. Here
the first write that records each job as waiting is applied `SLOW_WAITING_WRITE_S` late, as by an upload invocation
stalled between its two requests for longer than the job takes elsewhere. Sent before that write, a message
let the job succeed first, and the late "waiting" then stood for good.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from picsart_local.emulator import EmulatorSettings

from .conftest import not_succeeded, png_bytes, start_environment

pytestmark = pytest.mark.integration

#: A tight window, so that the one upload environment soon knows its budget is spent.
QUOTA, WINDOW_S, SPIKE = 2, 3.0, 5
UPLOADS = 6
#: Longer than a parked job takes to reach its turn in the next window and end there.
SLOW_WAITING_WRITE_S = 8.0


def test_a_late_waiting_record_never_overwrites_a_finished_job(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    picsart = EmulatorSettings(quota=QUOTA, window_seconds=WINDOW_S, spike_per_second=SPIKE)
    with start_environment(
        tmp_path_factory,
        "parked-records",
        emulator=picsart,
        parameters={"SpikeArrestPerSecond": str(SPIKE)},
        upload_concurrency=1,
        prewarm=True,
    ) as env:
        update_item = DynamoDBBackend.update_item  # moto_atomic's serialised write, installed by the stack
        slowed: set[str] = set()  # the records whose first "waiting" write was slowed

        def late_when_waiting(backend: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            record = json.dumps(key, sort_keys=True)
            if {"S": "waiting"} in (kwargs.get("expression_attribute_values") or {}).values() and record not in slowed:
                slowed.add(record)
                time.sleep(SLOW_WAITING_WRITE_S)
            return update_item(backend, table_name, key, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, "update_item", late_when_waiting)
        keys = [f"uploads/late-{n:02d}.png" for n in range(UPLOADS)]
        image = png_bytes()
        for key in keys:
            env.upload(key, image)
        outcomes = env.wait_for(keys, timeout=180)
        assert not_succeeded(env, outcomes) == {}, "every upload processed"
        assert env.runner is not None
        parked_by_uploads = {
            entry["key"]
            for entry in env.runner.log_records("UploadFunction")
            if entry.get("message") == "job parked in the delay queue"
        }
        assert parked_by_uploads, "the upload environment parked new uploads for the budget"
        assert slowed, "their waiting records came late"
        # A job may be seen to succeed before its late record lands: the records are read again once every
        # invocation, the stalled ones too, has ended.
        env.runner.wait_idle(timeout=60)
        assert sum(env.runner.counters().timeouts.values()) == 0, "no invocation ran out of time over a slowed write"
        settled = {key: env.outcome(key) for key in keys}
        assert {key: outcome.status if outcome else None for key, outcome in settled.items()} == dict.fromkeys(
            keys, "succeeded"
        ), "a late waiting record overwrote a finished job"
        assert env.emulator is not None
        calls = [c.status for c in env.emulator.calls() if c.tool == "removebg"]
        assert calls.count(200) == UPLOADS, "one successful call per upload"
