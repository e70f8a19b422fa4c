"""Rules and pipelines on the local stack: real S3 events, both functions, the delay queue, the fleet's limiter and the
Picsart emulator doing the image work. Each step's input is the step before's result URL, as the emulator gave it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LocalEnvironment
from tests.integration.conftest import png_bytes, start_environment

#: The upscale input limit the emulator is given here: small enough that a 200x200 upload's second step is refused
#: (413) while 64x64 uploads go through three steps (64x64, then 128x128 into the third).
UPSCALE_LIMIT = 20_000

RULES: dict[str, Any] = {
    "rules": [
        {"name": "three", "match": {"prefix": "three/"}, "pipelines": ["chain"]},
        {"name": "variants", "match": {"prefix": "variants/"}, "pipelines": ["v-png", "v-jpg", "v-webp"]},
        {"name": "async", "match": {"prefix": "async/"}, "pipelines": ["ultra-middle"]},
        {"name": "copy", "match": {"prefix": "copy/"}, "pipelines": ["cut-up"], "on_failure": "copy-original"},
        {"name": "fail", "match": {"prefix": "fail/"}, "pipelines": ["cut-up"]},
    ],
    "pipelines": {
        "chain": {
            "steps": [
                {"tool": "removebg", "parameters": {"format": "PNG"}},
                {"tool": "upscale", "parameters": {"upscale_factor": 2, "format": "PNG"}},
                {"tool": "upscale", "parameters": {"upscale_factor": 2, "format": "JPG"}},
            ],
            "output": "chain/{dir}{stem}.{ext}",
        },
        "v-png": {"steps": [{"tool": "removebg", "parameters": {"format": "PNG"}}]},
        "v-jpg": {"steps": [{"tool": "removebg", "parameters": {"format": "JPG", "bg_color": "#ffffff"}}]},
        "v-webp": {"steps": [{"tool": "removebg", "parameters": {"format": "WEBP"}}]},
        "ultra-middle": {
            "steps": [
                {"tool": "removebg", "parameters": {"format": "PNG"}},
                {"tool": "ultra-upscale", "parameters": {"format": "PNG"}},
                {"tool": "upscale", "parameters": {"upscale_factor": 2, "format": "PNG"}},
            ]
        },
        "cut-up": {
            "steps": [
                {"tool": "removebg", "parameters": {"format": "PNG"}},
                {"tool": "upscale", "parameters": {"upscale_factor": 2, "format": "PNG"}},
            ]
        },
    },
}


def small_png(size: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png_bytes())).convert("RGB").resize((size, size)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_rules(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "rules.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    rules = write_rules(tmp_path_factory.mktemp("pipeline-rules"), RULES)
    emulator = EmulatorSettings(max_upscale_input_pixels=UPSCALE_LIMIT, async_processing_seconds=1.0)
    with start_environment(tmp_path_factory, "pipelines", emulator=emulator, rules_file=rules) as environment:
        yield environment


def output(env: LocalEnvironment, key: str) -> tuple[Image.Image, dict[str, Any]]:
    answer = env.client("s3").get_object(Bucket=env.output_bucket, Key=key)
    return Image.open(io.BytesIO(answer["Body"].read())), answer


def tool_calls(env: LocalEnvironment) -> list[Any]:
    assert env.emulator is not None
    return [call for call in env.emulator.calls() if call.tool]


def test_a_three_step_pipeline_chains_result_urls_and_stores_one_output(env: LocalEnvironment) -> None:
    before = len(tool_calls(env))
    env.upload("three/shoe.png", small_png(64))

    outcome = env.wait_for(["three/shoe.png"], timeout=90)["three/shoe.png"]

    assert outcome.status == "succeeded", outcome
    assert outcome.output_key == "chain/three/shoe.jpg"
    image, answer = output(env, "chain/three/shoe.jpg")
    assert (image.format, image.size) == ("JPEG", (256, 256)), "64 px, upscaled twice by 2"
    calls = tool_calls(env)[before:]
    assert [call.tool for call in calls] == ["removebg", "upscale", "upscale"]
    assert calls[0].image_url_path.endswith("three/shoe.png")
    assert not any(call.image_url_path.endswith("three/shoe.png") for call in calls[1:]), (
        "later steps read the step before's result, not the upload"
    )
    metadata = answer["Metadata"]
    assert metadata["picsart-correlation-ids"].split(",") == [call.correlation_id for call in calls]
    assert (metadata["rule"], metadata["pipeline"], metadata["source-key"]) == ("three", "chain", "three/shoe.png")
    attempts = outcome.record["attempts"]  # type: ignore[index]
    assert [(a["step"], a["tool"]) for a in attempts] == [(1, "removebg"), (2, "upscale"), (3, "upscale")]


def test_a_rule_with_three_pipelines_makes_three_variants(env: LocalEnvironment) -> None:
    env.upload("variants/bag.png", small_png(64))

    outcome = env.wait_for(["variants/bag.png"], timeout=90)["variants/bag.png"]

    assert outcome.status == "succeeded", outcome
    assert outcome.output_keys == {
        "v-png": "v-png/variants/bag.png",
        "v-jpg": "v-jpg/variants/bag.png.jpg",
        "v-webp": "v-webp/variants/bag.png.webp",
    }
    formats = {name: output(env, key)[0].format for name, key in outcome.output_keys.items()}
    assert formats == {"v-png": "PNG", "v-jpg": "JPEG", "v-webp": "WEBP"}


def test_an_asynchronous_step_in_the_middle_is_polled_then_the_pipeline_goes_on(env: LocalEnvironment) -> None:
    assert env.emulator is not None
    before = len(env.emulator.calls())
    env.upload("async/face.png", small_png(32))

    outcome = env.wait_for(["async/face.png"], timeout=120)["async/face.png"]

    assert outcome.status == "succeeded", outcome
    calls = env.emulator.calls()[before:]
    submitted = [call.tool for call in calls if call.method == "POST"]
    assert submitted == ["removebg", "ultra-upscale", "upscale"]
    assert any(call.method == "GET" and "/upscale/ultra/" in call.path for call in calls), "its result was polled"
    assert output(env, str(outcome.output_key))[0].format == "PNG"


@pytest.mark.parametrize(("prefix", "copied"), [("copy", True), ("fail", False)])
def test_a_step_that_fails_for_good_follows_the_rules_policy(env: LocalEnvironment, prefix: str, copied: bool) -> None:
    key = f"{prefix}/too-big.png"
    env.upload(key, small_png(200))

    outcome = env.wait_for([key], timeout=90)[key]

    assert outcome.status == "failed", outcome
    assert str(outcome.reason).startswith("step 2 (upscale): Picsart refused the request: HTTP 413")
    s3 = env.client("s3")
    listed = s3.list_objects_v2(Bucket=env.output_bucket, Prefix=f"cut-up/{prefix}/").get("Contents", [])
    if copied:
        assert outcome.output_key == f"cut-up/{key}"
        assert [item["Key"] for item in listed] == [f"cut-up/{key}"]
        original = env.client("s3").get_object(Bucket=env.input_bucket, Key=key)["Body"].read()
        assert s3.get_object(Bucket=env.output_bucket, Key=f"cut-up/{key}")["Body"].read() == original
        assert "the original was copied" in str(outcome.reason)
    else:
        assert listed == []
        assert outcome.output_key is None


def test_a_redelivered_event_costs_no_second_call_for_any_step(env: LocalEnvironment, repository_root: Path) -> None:
    assert env.runner is not None
    env.upload("three/again.png", small_png(64))
    assert env.wait_for(["three/again.png"], timeout=90)["three/again.png"].status == "succeeded"
    calls = len(tool_calls(env))
    head = env.client("s3").head_object(Bucket=env.input_bucket, Key="three/again.png")
    event = json.loads((repository_root / "events" / "s3-put.json").read_text())
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = env.input_bucket
    record["object"].update({"key": "three/again.png", "eTag": head["ETag"].strip('"'), "versionId": head["VersionId"]})

    result = env.runner.invoke("UploadFunction", event)

    assert result.ok, result
    (answer,) = result.payload["results"]
    assert (answer["pipeline"], answer["status"], answer["duplicate"]) == ("chain", "succeeded", True)
    assert len(tool_calls(env)) == calls


def test_steps_throttled_by_the_quota_are_resumed_at_their_step(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Six calls against a quota of four a window: the fleet parks steps until the reset instead of sending them,
    and they resume at their step (no step called twice, no 429)."""
    rules = write_rules(tmp_path_factory.mktemp("throttled-rules"), RULES)
    emulator = EmulatorSettings(quota=4, window_seconds=3.0, max_upscale_input_pixels=UPSCALE_LIMIT)
    with start_environment(tmp_path_factory, "pipeline-quota", emulator=emulator, rules_file=rules) as quota_env:
        keys = ["three/a.png", "three/b.png"]
        for key in keys:
            quota_env.upload(key, small_png(64))

        outcomes = quota_env.wait_for(keys, timeout=120)

        assert {key: o.status for key, o in outcomes.items()} == dict.fromkeys(keys, "succeeded")
        calls = tool_calls(quota_env)
        assert [call.status for call in calls] == [200] * 6, "six calls, none refused"
        for key in keys:
            steps = [a["step"] for a in outcomes[key].record["attempts"]]  # type: ignore[index]
            assert steps == [1, 2, 3], f"{key}: each step called once"
