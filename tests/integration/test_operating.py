"""`picsart-local redrive` and `reprocess` on the local stack, run as an operator would (in-process `main`, the
names from the variables `picsart-local stack` prints)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from picsart_local import reprocess
from picsart_local.cli import main
from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LOCAL_API_KEY, LocalEnvironment

from .conftest import png_bytes, start_environment

pytestmark = pytest.mark.integration


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def export_names(env: LocalEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an operator exports from `picsart-local stack`'s output."""
    assert env.stack is not None
    for name, value in env.stack.aws_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("INPUT_BUCKET", env.input_bucket)
    monkeypatch.setenv("JOBS_TABLE", env.outputs["JobsTableName"])
    monkeypatch.setenv("DELAY_QUEUE_URL", env.outputs["DelayQueueUrl"])
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", env.outputs["DeadLetterQueueUrl"])


def tool_calls(env: LocalEnvironment) -> int:
    assert env.emulator is not None
    return sum(1 for call in env.emulator.calls() if call.tool)


def queued(env: LocalEnvironment, output: str) -> int:
    """Messages in a queue, visible or delayed."""
    attributes = env.client("sqs").get_queue_attributes(
        QueueUrl=env.outputs[output],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesDelayed"])


def fail_an_upload_invocation(env: LocalEnvironment, key: str) -> None:
    """Upload `key` while no function runs, and put its S3 event in the dead-letter queue as Lambda's on-failure
    destination does after the invocation and its retries failed (the runner's `_send_to_dead_letter_queue`)."""
    assert env.runner is not None
    assert env.stack is not None
    # Stopped mid-invocation, a job dead-lettered a moment ago could lose its record's last write.
    env.runner.wait_idle(timeout=60)
    env.runner.stop()
    env.upload(key, png_bytes())
    sqs = env.client("sqs")
    notifications = env.stack.notification_queues["UploadFunction"]
    found: list[Any] = []
    wait_until(lambda: bool(found.extend(sqs.receive_message(QueueUrl=notifications).get("Messages", [])) or found))
    (event,) = found
    sqs.delete_message(QueueUrl=notifications, ReceiptHandle=event["ReceiptHandle"])
    sqs.send_message(
        QueueUrl=env.outputs["DeadLetterQueueUrl"],
        MessageBody=event["Body"],
        MessageAttributes={
            "RequestID": {"DataType": "String", "StringValue": "0f3c-request"},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": "Task timed out after 30.00 seconds"},
        },
    )
    env.runner.start()


def test_redrive_sends_given_up_work_and_a_failed_invocation_back_and_both_end_processed(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = EmulatorSettings(fault_503_rate=1.0)
    with start_environment(tmp_path_factory, "redrive", emulator=emulator, parameters={"MaxAttempts": "2"}) as env:
        assert env.emulator is not None
        given_up, failed = "redrive/given-up.png", "redrive/failed invocation.png"
        env.upload(given_up, png_bytes())
        wait_until(lambda: given_up in env.dead_lettered_keys())
        fail_an_upload_invocation(env, failed)
        env.emulator.reconfigure(fault_503_rate=0.0)  # Picsart is healthy again
        export_names(env, monkeypatch)
        capsys.readouterr()
        code = main(["redrive", "--yes"])
        printed = capsys.readouterr().out
        assert code == 0, printed
        outcomes = env.wait_for([given_up, failed], timeout=90)
        record = env.jobs.for_object(env.input_bucket, given_up)[-1]
        left = queued(env, "DeadLetterQueueUrl")
    assert "given-up: s3://" in printed
    assert "gave up after 2 attempts; last: transient: HTTP 503" in printed
    assert "failed-invocation: s3://" in printed
    assert "the upload function's invocation failed (request 0f3c-request): Task timed out" in printed
    assert "Moved 2, 2 jobs to the delay queue: one by one" in printed
    assert LOCAL_API_KEY not in printed
    assert {key: outcome.status for key, outcome in outcomes.items()} == {given_up: "succeeded", failed: "succeeded"}
    assert str(record["replay"]).startswith("redrive ")
    assert [attempt["http_status"] for attempt in record["attempts"]] == [503, 503, 200], "earlier attempts kept"
    assert "dead_lettered" not in record
    assert left == 0


RULES: dict[str, Any] = {
    "rules": [{"name": "again", "match": {"prefix": "again/"}, "pipelines": ["cut", "white"]}],
    "pipelines": {
        "cut": {"steps": [{"tool": "removebg", "parameters": {"format": "PNG"}}]},
        "white": {"steps": [{"tool": "removebg", "parameters": {"format": "JPG", "bg_color": "#ffffff"}}]},
    },
}


def test_reprocess_runs_a_changed_pipeline_and_skips_the_unchanged_one(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path_factory.mktemp("reprocess-rules") / "rules.json"
    rules.write_text(json.dumps(RULES))
    with start_environment(tmp_path_factory, "reprocess", rules_file=rules) as env:
        assert env.runner is not None
        keys = ["again/one.png", "again/two.png"]
        for key in keys:
            env.upload(key, png_bytes())
        assert {o.status for o in env.wait_for(keys, timeout=60).values()} == {"succeeded"}
        # A record says succeeded before its invocation has put the event and kept the step's result: shutting
        # the environments down then would kill it, and Lambda's retry would run "white" anew with the new rules.
        env.runner.wait_idle(timeout=60)
        before = {key: {r["pipeline"]: r for r in env.jobs.for_object(env.input_bucket, key)} for key in keys}
        calls_before = tool_calls(env)
        # The "white" pipeline changes and is deployed: new execution environments read the new rules.
        changed = json.loads(json.dumps(RULES))
        changed["pipelines"]["white"]["steps"][0]["parameters"]["bg_color"] = "#000000"
        rules.write_text(json.dumps(changed))
        env.runner._shutdown_environments()
        export_names(env, monkeypatch)
        command = ["--rules", str(rules), "reprocess", "--prefix", "again/"]
        capsys.readouterr()

        assert main([*command, "--dry-run"]) == 0
        dry_run = capsys.readouterr().out
        assert queued(env, "DelayQueueUrl") == 0, "a dry run sends nothing"

        monkeypatch.setattr(reprocess, "CONFIRM_ABOVE_CALLS", 1)
        monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
        assert main(command) == 1
        refused = capsys.readouterr().out
        assert queued(env, "DelayQueueUrl") == 0, "refused: nothing sent"
        # What reprocess would change when it sends: a record reopened (status, replay, completion). Other
        # fields may still move after `succeeded` (a late duplicate delivery's bookkeeping).
        unchanged = {key: {r["pipeline"]: r for r in env.jobs.for_object(env.input_bucket, key)} for key in keys}
        assert reopening_fields(unchanged) == reopening_fields(before)

        assert main([*command, "--yes"]) == 0
        sent = capsys.readouterr().out
        wait_until(
            lambda: all(
                r.get("status") == "succeeded" and r.get("replay")
                for key in keys
                for r in env.jobs.for_object(env.input_bucket, key)
                if r.get("pipeline") == "white"
            )
        )
        after = {key: {r["pipeline"]: r for r in env.jobs.for_object(env.input_bucket, key)} for key in keys}
        calls_after = tool_calls(env)
    for text in (dry_run, refused, sent):
        assert text.count("white (") == 2
        assert text.count(": queue, 1 call: its outputs are of an earlier definition") == 2
        assert text.count("cut (") == 2
        assert text.count(": up to date: succeeded with this definition") == 2
        assert "Picsart calls it will cost: 2 calls" in text
    assert "Dry run: nothing was sent." in dry_run
    assert "Queue 2 jobs, 2 calls to Picsart? [y/N]" in refused
    assert "Nothing was sent." in refused
    assert "Queued 2 jobs (2 calls)" in sent
    assert calls_after - calls_before == 2, "one call per changed pipeline and object, none for the unchanged one"
    for key in keys:
        assert after[key]["cut"] == before[key]["cut"], "the unchanged pipeline's record is untouched"
        assert after[key]["white"]["pipeline_hash"] != before[key]["white"]["pipeline_hash"]


def test_reprocess_needs_the_names_of_a_stack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("INPUT_BUCKET", "JOBS_TABLE", "DELAY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["reprocess", "--prefix", "x/"]) == 2
    assert "set INPUT_BUCKET, JOBS_TABLE, DELAY_QUEUE_URL, DEAD_LETTER_QUEUE_URL" in capsys.readouterr().err


def test_a_deployed_stacks_outputs_name_the_resources(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--stack NAME`: CloudFormation's outputs of the stack (here moto's, naming the local stack's resources)."""
    with start_environment(tmp_path_factory, "deployed") as env:
        assert env.stack is not None
        for name, value in env.stack.aws_environment().items():
            monkeypatch.setenv(name, value)
        for name in ("INPUT_BUCKET", "JOBS_TABLE", "DELAY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL"):
            monkeypatch.delenv(name, raising=False)
        wanted = ("InputBucketName", "JobsTableName", "DelayQueueUrl", "DeadLetterQueueUrl")
        template = {
            "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {name: {"Value": env.outputs[name]} for name in wanted},
        }
        env.client("cloudformation").create_stack(StackName="deployed-adapter", TemplateBody=json.dumps(template))
        env.upload("deployed/photo.png", png_bytes())
        assert env.wait_for(["deployed/photo.png"], timeout=60)["deployed/photo.png"].status == "succeeded"
        capsys.readouterr()
        redrive_code = main(["redrive", "--stack", "deployed-adapter", "--dry-run"])
        reprocess_code = main(["reprocess", "--stack", "deployed-adapter", "--prefix", "deployed/", "--dry-run"])
        printed = capsys.readouterr().out
        dead_letter_queue = env.outputs["DeadLetterQueueUrl"]
    assert (redrive_code, reprocess_code) == (0, 0)
    assert printed.count("(names from stack deployed-adapter)") == 2
    assert f"Dead-letter queue {dead_letter_queue}: 0 messages" in printed
    assert "deployed/photo.png" in printed
    assert ": up to date: succeeded with this definition: removebg/deployed/photo.png" in printed
    assert "Nothing to queue." in printed


def reopening_fields(records: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Per key and pipeline, the fields a reprocess that sends work changes (`JobStore.reopen`)."""
    return {
        key: {
            pipeline: tuple(record.get(name) for name in ("status", "replay", "completed_at", "due_at"))
            for pipeline, record in by_pipeline.items()
        }
        for key, by_pipeline in records.items()
    }
