"""Credits on the whole local stack (docs/credits.md): the balance function makes exactly one `GET /balance`
through the fleet's limiter and puts the figure on the fleet's item; a rule whose floor is above the balance holds
its work with no call made, while a rule without a floor runs; after a top-up and a balance check the held work
runs. Held work looks again every CREDIT_FLOOR_HOLD_SECONDS (shortened here from 300)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from picsart_adapter.rate_limit import key_fingerprint
from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LOCAL_API_KEY, LocalEnvironment

from .conftest import png_bytes, start_environment

pytestmark = pytest.mark.integration

FLOOR = 500
RULES = {
    "rules": [
        {"name": "vip", "match": {"prefix": "vip/"}, "pipelines": ["cutout"]},
        {"name": "bulk", "match": {"prefix": "bulk/"}, "pipelines": ["cutout"], "credit_floor": FLOOR},
    ],
    "pipelines": {"cutout": {"steps": [{"tool": "removebg", "parameters": {"output_type": "cutout"}}]}},
}


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def limiter_item(env: LocalEnvironment) -> dict[str, Any]:
    table = env.client("dynamodb")
    key = {"pk": {"S": f"ratelimit#{key_fingerprint(LOCAL_API_KEY)}"}, "sk": {"S": "state"}}
    item = table.get_item(TableName=env.outputs["JobsTableName"], Key=key, ConsistentRead=True).get("Item") or {}
    return {name: next(iter(value.values())) for name, value in item.items()}


def calls_to(env: LocalEnvironment, path: str) -> int:
    assert env.emulator is not None
    return sum(1 for call in env.emulator.calls() if call.path.endswith(path))


def tool_calls(env: LocalEnvironment) -> int:
    """Calls of an image tool (the emulator names `GET /balance` a free call of tool "balance")."""
    assert env.emulator is not None
    return sum(1 for call in env.emulator.calls() if call.tool and call.tool != "balance")


def test_a_floor_above_the_balance_holds_work_until_a_top_up_and_a_balance_check(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(RULES))
    with start_environment(
        tmp_path_factory,
        "credits",
        emulator=EmulatorSettings(credits=100),
        function_environment={"CREDIT_FLOOR_HOLD_SECONDS": "2"},
        rules_file=rules_file,
    ) as env:
        assert env.emulator is not None
        checked = env.runner.run_schedule("BalanceFunction")
        assert checked.ok, checked.error_message
        assert checked.payload["status"] == "checked"
        assert checked.payload["credits"] == 100
        assert calls_to(env, "/balance") == 1, "exactly one GET /balance"
        item = limiter_item(env)
        assert int(item["credits"]) == 100, "the figure is on the fleet's item"
        assert int(item["granted"]) == 1, "taken from the fleet's budget like any call"

        env.upload("vip/a.png", png_bytes())
        vip = env.wait_for(["vip/a.png"], timeout=60)["vip/a.png"]
        assert vip.status == "succeeded", "a rule without a floor runs at any balance"
        assert int(limiter_item(env)["credits"]) == 100, "99 crosses no floor and is within a step: no write"

        held = [f"bulk/{index}.png" for index in range(3)]
        for key in held:
            env.upload(key, png_bytes())

        def all_held() -> bool:
            outcomes = [env.outcome(key) for key in held]
            return all(o is not None and o.status == "waiting" and "credit floor" in str(o.reason) for o in outcomes)

        wait_until(all_held)
        time.sleep(3)  # the held work looks again at least once
        assert all_held()
        assert tool_calls(env) == 1, "no call for held work: only the vip upload's"
        outcome = env.outcome(held[0])
        assert outcome is not None
        assert outcome.reason == f'credit floor: 100 credits left, rule "bulk" keeps the last {FLOOR}'

        env.emulator.reconfigure(credits=10_000)  # a top-up
        topped_up = env.runner.run_schedule("BalanceFunction")
        assert topped_up.payload["credits"] == 10_000
        assert calls_to(env, "/balance") == 2
        assert int(limiter_item(env)["credits"]) == 10_000
        outcomes = env.wait_for(held, timeout=60)
        assert {o.status for o in outcomes.values()} == {"succeeded"}, outcomes
        assert tool_calls(env) == 1 + len(held), "one call each, once released"
