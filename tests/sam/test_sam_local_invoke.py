"""`sam local invoke` of each function with the project's events, against the local stack; each answer is also
the answer `picsart-local invoke` (the local runner) gives for the same event."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from picsart_adapter.s3_events import parse_s3_event
from picsart_local.cli import main
from picsart_local.environment import LocalEnvironment

from .conftest import SamInvoke, json_log_lines, start_environment

pytestmark = pytest.mark.sam

EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SAMPLE = SAMPLES / "red-mug.png"
#: Each S3 put event of events/, with a sample of the type its key names.
PUT_EVENTS = {"s3-put.json": SAMPLE, "s3-put-encoded-key.json": SAMPLES / "blue-ball.jpg"}


def event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def s3_put_event(env: LocalEnvironment, name: str) -> tuple[dict[str, Any], str]:
    """An S3 put event of events/ naming the local input bucket, its object uploaded (a new version each time);
    and the object's key, as decoded from the event."""
    document = event(name)
    document["Records"][0]["s3"]["bucket"]["name"] = env.input_bucket
    key = parse_s3_event(document).uploads[0].key
    env.upload(key, PUT_EVENTS[name].read_bytes())
    return document, key


def without_picsart_ids(answer: Any) -> Any:
    """An upload function's answer with each Picsart correlation id (one per call) replaced by whether it is set."""
    return {
        **answer,
        "results": [{**r, "picsart_correlation_id": bool(r["picsart_correlation_id"])} for r in answer["results"]],
    }


@pytest.mark.parametrize("name", sorted(PUT_EVENTS))
def test_an_s3_put_is_processed_in_the_container(env: LocalEnvironment, sam_invoke: SamInvoke, name: str) -> None:
    put, key = s3_put_event(env, name)
    s3_request_id = put["Records"][0]["responseElements"]["x-amz-request-id"]

    result = sam_invoke(env, "UploadFunction", put)

    assert result.ok, result.stdout + result.stderr
    (answer,) = result.payload["results"]
    assert (answer["key"], answer["status"], answer["duplicate"]) == (key, "succeeded", False)
    picsart_id = answer["picsart_correlation_id"]
    assert picsart_id
    output = env.client("s3").head_object(Bucket=env.output_bucket, Key=answer["output_key"])
    assert output["ContentLength"] > 0
    outcome = env.outcome(key)
    assert outcome is not None
    assert (outcome.status, outcome.picsart_correlation_id) == ("succeeded", picsart_id)
    logs = json_log_lines(result.stderr)
    assert any(
        line.get("correlation_id") == s3_request_id and line.get("picsart_correlation_id") == picsart_id
        for line in logs
    ), result.stderr
    assert "REPORT RequestId" in result.stderr  # the runtime interface emulator's line, as Lambda writes it

    local = env.runner.invoke("UploadFunction", s3_put_event(env, name)[0])  # type: ignore[union-attr]
    assert local.ok, local.error_message
    assert without_picsart_ids(local.payload) == without_picsart_ids(result.payload)


def test_an_s3_test_event_is_acknowledged(env: LocalEnvironment, sam_invoke: SamInvoke) -> None:
    result = sam_invoke(env, "UploadFunction", event("s3-test-event.json"))

    assert result.ok, result.stdout + result.stderr
    assert result.payload == {"results": [], "test_event": True}
    local = env.runner.invoke("UploadFunction", event("s3-test-event.json"))  # type: ignore[union-attr]
    assert local.payload == result.payload


def retry_batch(env: LocalEnvironment, unreadable_id: str) -> dict[str, Any]:
    """events/sqs-retry.json for an uploaded version, due now, with an unreadable record beside it."""
    key = "uploads/retried.png"
    env.upload(key, SAMPLE.read_bytes())
    head = env.client("s3").head_object(Bucket=env.input_bucket, Key=key)
    document = event("sqs-retry.json")
    (good,) = document["Records"]
    body = json.loads(good["body"])
    body.update(
        bucket=env.input_bucket, key=key, version_id=head["VersionId"], etag=head["ETag"].strip('"'), due_at=time.time()
    )
    good["body"] = json.dumps(body)
    unreadable = {**good, "messageId": unreadable_id, "body": "{not json"}
    document["Records"] = [good, unreadable]
    return document


def dead_lettered_bodies(env: LocalEnvironment) -> list[str]:
    answer = env.client("sqs").receive_message(
        QueueUrl=env.outputs["DeadLetterQueueUrl"], MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return [message["Body"] for message in answer.get("Messages", [])]


def test_a_retry_batch_answers_per_record(env: LocalEnvironment, sam_invoke: SamInvoke) -> None:
    """The good record is processed, the unreadable one dead-lettered at once with its reason: the partial batch
    response names no failure, so SQS deletes both."""
    batch = retry_batch(env, "unreadable-sam")

    result = sam_invoke(env, "RetryFunction", batch)

    assert result.ok, result.stdout + result.stderr
    assert result.payload == {"batchItemFailures": []}
    outcome = env.outcome("uploads/retried.png")
    assert outcome is not None
    assert outcome.status == "succeeded"
    assert "{not json" in dead_lettered_bodies(env)
    messages = [line.get("message") for line in json_log_lines(result.stderr)]
    assert "unreadable delay-queue message dead-lettered" in messages

    local = env.runner.invoke("RetryFunction", retry_batch(env, "unreadable-local"))  # type: ignore[union-attr]
    assert local.payload == result.payload


@pytest.fixture(scope="module")
def misconfigured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    environment = start_environment(tmp_path_factory, "misconfigured", {"PicsartToolParameters": "not json"})
    yield environment
    environment.stop()


def test_a_configuration_error_fails_at_init_naming_the_variable(
    misconfigured: LocalEnvironment, sam_invoke: SamInvoke
) -> None:
    result = sam_invoke(misconfigured, "UploadFunction", event("s3-test-event.json"))

    assert not result.ok
    assert "PICSART_TOOL_PARAMETERS" in result.payload["errorMessage"], result.payload
    assert "PICSART_TOOL_PARAMETERS is not valid JSON" in result.stderr
    # Where it ran: the handler from /var/task, the package from the layer in /opt, Python 3.13.
    trace = "".join(result.payload["stackTrace"])
    assert "/var/task/upload_handler.py" in trace
    assert "/opt/python/picsart_adapter/config.py" in trace
    assert "python3.13" in trace
    local = misconfigured.runner.invoke("UploadFunction", event("s3-test-event.json"))  # type: ignore[union-attr]
    assert not local.ok
    assert (local.error_type, local.error_message) == (result.payload["errorType"], result.payload["errorMessage"])


def test_the_documented_command_runs_sam_local_invoke(
    sam_ready: None,
    repository_root: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/local-stack.md's first `picsart-local sam-invoke` command, as written (its own build folder here)."""
    monkeypatch.chdir(repository_root)
    build_dir = tmp_path / "build"
    command = ["sam-invoke", "UploadFunction", "-e", "events/s3-put.json", "--put", "samples/red-mug.png"]
    code = main(["--log-dir", str(tmp_path / "logs"), *command, "--build-dir", str(build_dir)])
    printed, logs = capfd.readouterr()
    assert code == 0, printed + logs
    (result,) = json.loads(printed)["results"]
    assert (result["key"], result["status"]) == ("uploads/product.png", "succeeded")
    assert "REPORT RequestId" in logs
