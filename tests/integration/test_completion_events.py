"""Completion events on the local stack: the functions put them on a bus of their own (EventBusName), and an
EventBridge rule with an SQS target, made on the moto server as a user would make it, receives exactly one per
job that ends, each valid against schemas/picsart-job-event.schema.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LOCAL_API_KEY, LocalEnvironment
from picsart_local.event_tap import EventTap, events_per_job
from tests.fakes import job_event_validator
from tests.integration.conftest import start_environment
from tests.integration.test_pipelines import UPSCALE_LIMIT, small_png, write_rules

pytestmark = pytest.mark.integration

BUS = "picsart-jobs-it"
RULES: dict[str, Any] = {
    "rules": [
        {"name": "pair", "match": {"prefix": "pair/"}, "pipelines": ["cut", "cut-up"]},
        {"name": "fail", "match": {"prefix": "fail/"}, "pipelines": ["cut-up"]},
    ],
    "pipelines": {
        "cut": {"steps": [{"tool": "removebg", "parameters": {"format": "PNG"}}]},
        "cut-up": {
            "steps": [
                {"tool": "removebg", "parameters": {"format": "PNG"}},
                {"tool": "upscale", "parameters": {"upscale_factor": 2, "format": "PNG"}},
            ]
        },
    },
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    rules = write_rules(tmp_path_factory.mktemp("event-rules"), RULES)
    emulator = EmulatorSettings(max_upscale_input_pixels=UPSCALE_LIMIT)
    with start_environment(
        tmp_path_factory, "events", emulator=emulator, rules_file=rules, parameters={"EventBusName": BUS}
    ) as environment:
        yield environment


@pytest.fixture(scope="module")
def tap(env: LocalEnvironment) -> Iterator[EventTap]:
    assert env.stack is not None
    with EventTap(env.stack) as subscribed:
        yield subscribed


def settled_events(env: LocalEnvironment, tap: EventTap, key: str) -> list[dict[str, Any]]:
    """Every event of `key` once nothing is left running: the functions put each before their invocation ends."""
    assert env.runner is not None
    env.runner.wait_idle(timeout=60)
    events = tap.for_key(key)
    for event in events:
        job_event_validator().validate(event)
        text = json.dumps(event)
        assert LOCAL_API_KEY not in text
        assert "X-Amz-Signature" not in text
    return events


def test_the_functions_put_on_the_bus_the_template_names(env: LocalEnvironment) -> None:
    assert env.stack is not None
    for function in ("UploadFunction", "RetryFunction"):
        assert env.stack.function_environment(function)["EVENT_BUS_NAME"] == BUS


def test_a_rule_with_two_pipelines_gets_one_event_per_pipeline(env: LocalEnvironment, tap: EventTap) -> None:
    key = "pair/mug.png"
    env.upload(key, small_png(64))
    outcome = env.wait_for([key], timeout=90)[key]
    assert outcome.status == "succeeded", outcome

    events = settled_events(env, tap, key)

    assert sorted(events_per_job(events).values()) == [1, 1]
    by_pipeline = {event["detail"]["pipeline"]: event for event in events}
    assert set(by_pipeline) == {"cut", "cut-up"}
    for name, event in by_pipeline.items():
        detail = event["detail"]
        assert (event["source"], event["detail-type"]) == ("picsart.adapter", "Picsart Job Succeeded")
        assert (detail["bucket"], detail["rule"], detail["status"]) == (env.input_bucket, "pair", "succeeded")
        assert detail["output_keys"] == [outcome.output_keys[name]]
        assert detail["output_bucket"] == env.output_bucket
        assert len(detail["picsart_correlation_ids"]) == detail["steps"] == (1 if name == "cut" else 2)
        assert detail["credits_available"] is not None
        head = env.client("s3").head_object(Bucket=env.input_bucket, Key=key)
        assert detail["version_id"] == head["VersionId"]


def test_a_redelivered_s3_event_puts_no_second_event(
    env: LocalEnvironment, tap: EventTap, repository_root: Path
) -> None:
    assert env.runner is not None
    key = "pair/again.png"
    env.upload(key, small_png(48))
    assert env.wait_for([key], timeout=90)[key].status == "succeeded"
    assert len(settled_events(env, tap, key)) == 2
    head = env.client("s3").head_object(Bucket=env.input_bucket, Key=key)
    event = json.loads((repository_root / "events" / "s3-put.json").read_text())
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = env.input_bucket
    record["object"].update({"key": key, "eTag": head["ETag"].strip('"'), "versionId": head["VersionId"]})

    result = env.runner.invoke("UploadFunction", event)

    assert result.ok, result
    assert [answer["duplicate"] for answer in result.payload["results"]] == [True, True]
    assert len(settled_events(env, tap, key)) == 2


def test_a_failure_gets_one_failed_event_with_picsarts_status(env: LocalEnvironment, tap: EventTap) -> None:
    key = "fail/too-big.png"
    env.upload(key, small_png(200))
    outcome = env.wait_for([key], timeout=90)[key]
    assert outcome.status == "failed", outcome

    (event,) = settled_events(env, tap, key)

    detail = event["detail"]
    assert event["detail-type"] == "Picsart Job Failed"
    assert (detail["http_status"], detail["step"], detail["reason"]) == (413, 2, outcome.reason)
    assert (detail["dead_lettered"], detail["output_keys"]) == (False, [])
    assert len(detail["picsart_correlation_ids"]) == 2


@pytest.mark.parametrize(
    ("key", "body", "code"),
    [("pair/notes.png", b"not an image, whatever its name", "not-an-image"), ("elsewhere/a.png", None, "no-rule")],
)
def test_a_skip_gets_one_skipped_event(
    env: LocalEnvironment, tap: EventTap, key: str, body: bytes | None, code: str
) -> None:
    env.upload(key, body if body is not None else small_png(32))
    outcome = env.wait_for([key], timeout=60)[key]
    assert outcome.status == "skipped", outcome

    (event,) = settled_events(env, tap, key)

    assert event["detail-type"] == "Picsart Job Skipped"
    assert (event["detail"]["skip_code"], event["detail"]["reason"]) == (code, outcome.reason)
