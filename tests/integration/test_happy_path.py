"""Upload -> S3 notification -> UploadFunction -> Picsart (emulator) -> output bucket + job record."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from picsart_local.environment import LOCAL_API_KEY, LocalEnvironment

from .conftest import jpeg_bytes, log_lines, open_image, png_bytes

pytestmark = pytest.mark.integration


def test_upload_is_processed_into_a_cutout_with_alpha(env: LocalEnvironment) -> None:
    env.upload("uploads/red-mug.png", png_bytes())
    outcome = env.wait_for(["uploads/red-mug.png"], timeout=60)["uploads/red-mug.png"]

    assert outcome.status == "succeeded", outcome
    assert outcome.output_key == "removebg/uploads/red-mug.png"
    result = open_image(env.download_output(outcome.output_key))
    assert result.mode == "RGBA"
    alpha = result.getchannel("A")
    low, high = alpha.getextrema()
    assert (low, high) == (0, 255), "a cut-out has both transparent background and opaque object"
    assert result.size == (320, 240)


def test_job_record_and_output_carry_the_correlation_ids(env: LocalEnvironment) -> None:
    env.upload("uploads/blue-ball.jpg", jpeg_bytes(colour=(40, 90, 200), shape="ball"))
    outcome = env.wait_for(["uploads/blue-ball.jpg"], timeout=60)["uploads/blue-ball.jpg"]
    assert outcome.status == "succeeded", outcome
    record = outcome.record
    assert record is not None

    calls = [c for c in env.emulator.calls() if c.image_url_path and c.image_url_path.endswith("/blue-ball.jpg")]
    assert len(calls) == 1, "one upload costs exactly one Picsart call"
    picsart_id = calls[0].correlation_id
    assert record["picsart_correlation_id"] == picsart_id
    attempt = record["attempts"][0]
    assert attempt["http_status"] == 200
    assert attempt["picsart_correlation_id"] == picsart_id
    assert {"limit", "available", "reset_time", "credits"} <= set(attempt["rate_limit"])
    assert record["s3_request_id"], "the S3 request id of the upload is recorded"
    assert record["version_id"], "the input bucket is versioned: the exact version is recorded"

    head = env.client("s3").head_object(Bucket=env.output_bucket, Key=outcome.output_key)
    metadata = head["Metadata"]
    assert metadata["picsart-correlation-id"] == picsart_id
    assert unquote(metadata["source-key"]) == "uploads/blue-ball.jpg"
    assert metadata["tool"] == "removebg"


def test_picsart_is_given_a_presigned_url_of_the_upload_only(env: LocalEnvironment) -> None:
    """Troubleshooting guide: one input only. The emulator answers 422 to two; it saw the S3 object path."""
    env.upload("uploads/one-input.png", png_bytes(shape="cone"))
    outcome = env.wait_for(["uploads/one-input.png"], timeout=60)["uploads/one-input.png"]
    assert outcome.status == "succeeded", outcome
    (call,) = [c for c in env.emulator.calls() if c.image_url_path and c.image_url_path.endswith("/one-input.png")]
    assert call.image_url_path == f"/{env.input_bucket}/uploads/one-input.png"
    assert call.status == 200


def test_keys_with_spaces_plus_and_unicode_are_decoded(env: LocalEnvironment) -> None:
    """S3 sends keys URL-encoded with + for a space; the adapter must find the real object."""
    key = "uploads/summer sale + café 100%.png"
    env.upload(key, png_bytes())
    outcome = env.wait_for([key], timeout=60)[key]
    assert outcome.status == "succeeded", outcome
    assert outcome.output_key == "removebg/uploads/summer sale + café 100%.png"


def test_logs_carry_both_correlation_ids_and_never_the_key(env: LocalEnvironment) -> None:
    env.upload("uploads/logged.png", png_bytes())
    outcome = env.wait_for(["uploads/logged.png"], timeout=60)["uploads/logged.png"]
    assert outcome.status == "succeeded", outcome
    record = outcome.record
    assert record is not None

    lines = log_lines(env.options.log_dir)
    assert lines, "the functions' logs are captured"
    assert not [line for line in lines if LOCAL_API_KEY in line], "the API key never appears in a log"
    assert not [line for line in lines if "X-Amz-Signature" in line], "presigned URLs are never logged"
    answered = [
        json.loads(line)
        for line in lines
        if line.startswith("{") and '"Picsart answered"' in line and record["picsart_correlation_id"] in line
    ]
    assert len(answered) == 1
    entry = answered[0]
    assert entry["correlation_id"] == record["s3_request_id"]
    assert entry["picsart_correlation_id"] == record["picsart_correlation_id"]
    assert entry["http_status"] == 200
