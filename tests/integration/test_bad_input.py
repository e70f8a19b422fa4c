"""Objects Picsart cannot process get a recorded reason and cost no API call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from picsart_local.environment import LocalEnvironment

from .conftest import png_bytes, start_environment

pytestmark = pytest.mark.integration


def calls_for(env: LocalEnvironment, key: str) -> list[object]:
    assert env.emulator is not None
    return [c for c in env.emulator.calls() if c.image_url_path and c.image_url_path.endswith(key)]


def test_empty_object_is_skipped_without_a_call(env: LocalEnvironment) -> None:
    env.upload("uploads/empty.png", b"")
    outcome = env.wait_for(["uploads/empty.png"], timeout=60)["uploads/empty.png"]
    assert outcome.status == "skipped"
    assert outcome.reason is not None
    assert "empty" in outcome.reason
    assert outcome.record is not None
    assert outcome.record["skip_code"] == "empty-object"
    assert calls_for(env, "/empty.png") == []


def test_text_named_like_an_image_is_skipped_without_a_call(env: LocalEnvironment) -> None:
    env.upload("uploads/notes.jpg", b"these are meeting notes, not a photo\n" * 10)
    outcome = env.wait_for(["uploads/notes.jpg"], timeout=60)["uploads/notes.jpg"]
    assert outcome.status == "skipped"
    assert outcome.record is not None
    assert outcome.record["skip_code"] == "not-an-image"
    assert calls_for(env, "/notes.jpg") == []


def test_every_created_object_reaches_the_function_whatever_its_extension(env: LocalEnvironment) -> None:
    """S3's suffix filters are case-sensitive: the trigger has none, and the content decides."""
    env.upload("uploads/readme.txt", b"hello")
    env.upload("uploads/SHOT.Png", png_bytes())
    outcomes = env.wait_for(["uploads/readme.txt", "uploads/SHOT.Png"], timeout=60)
    assert outcomes["uploads/SHOT.Png"].status == "succeeded"
    assert (outcomes["uploads/readme.txt"].status, outcomes["uploads/readme.txt"].record["skip_code"]) == (  # type: ignore[index]
        "skipped",
        "not-an-image",
    )


def test_s3_test_event_is_acknowledged(env: LocalEnvironment, repository_root: Path) -> None:
    assert env.runner is not None
    event = json.loads((repository_root / "events" / "s3-test-event.json").read_text())
    result = env.runner.invoke("UploadFunction", event)
    assert result.ok, result
    assert result.payload == {"results": [], "test_event": True}


def test_unsupported_type_by_direct_invoke_is_skipped(env: LocalEnvironment, repository_root: Path) -> None:
    """The content says what an object is: a GIF is not an image Picsart takes, whatever invokes the handler."""
    assert env.runner is not None
    env.client("s3").put_object(Bucket=env.input_bucket, Key="uploads/anim.gif", Body=b"GIF89a....")
    event = json.loads((repository_root / "events" / "s3-put.json").read_text())
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = env.input_bucket
    record["object"]["key"] = "uploads/anim.gif"
    result = env.runner.invoke("UploadFunction", event)
    assert result.ok, result
    (answer,) = result.payload["results"]
    assert answer["status"] == "skipped"
    assert "not a JPG, PNG, WEBP, TIFF or HEIC image" in answer["reason"]
    assert calls_for(env, "/anim.gif") == []


def test_object_deleted_before_processing_is_recorded(
    tmp_path_factory: pytest.TempPathFactory, repository_root: Path
) -> None:
    with start_environment(tmp_path_factory, "deleted", event_sources=False) as quiet:
        assert quiet.runner is not None
        quiet.upload("uploads/gone.png", png_bytes())
        quiet.client("s3").delete_object(Bucket=quiet.input_bucket, Key="uploads/gone.png")
        event = json.loads((repository_root / "events" / "s3-put.json").read_text())
        event["Records"][0]["s3"]["bucket"]["name"] = quiet.input_bucket
        event["Records"][0]["s3"]["object"]["key"] = "uploads/gone.png"
        result = quiet.runner.invoke("UploadFunction", event)
        assert result.ok, result
        (answer,) = result.payload["results"]
        assert answer["status"] == "skipped"
        assert "no longer exists" in answer["reason"]
        outcome = quiet.outcome("uploads/gone.png")
        assert outcome is not None
        assert outcome.status == "skipped"
        assert quiet.emulator is not None
        assert quiet.emulator.calls() == []


def test_malformed_event_fails_loudly_naming_the_field(env: LocalEnvironment) -> None:
    assert env.runner is not None
    result = env.runner.invoke("UploadFunction", {"Records": [{"eventSource": "aws:s3", "s3": {}}]})
    assert not result.ok
    assert result.error_type == "MalformedEventError"
    assert result.error_message is not None
    assert "s3.bucket.name" in result.error_message
