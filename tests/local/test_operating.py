"""`redrive` and `reprocess`, their pure parts: what each dead-letter message is and what goes back for it, the
pace and the schedule, `--since`, the progress bar, and the stack's names from CloudFormation (moto).
The whole commands run on the local stack in tests/integration/test_operating.py."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws
from moto.server import ThreadedMotoServer

from picsart_adapter.delay_queue import GIVEN_UP_ATTRIBUTE, AnsweredStep, RetryMessage
from picsart_adapter.jobs import JobRef
from picsart_adapter.rate_limit import LimiterState
from picsart_local import redrive, reprocess
from picsart_local.stack_names import from_environment, from_stack, functions_rules

NOW = 1_800_000_000.0
S3_EVENT = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "responseElements": {"x-amz-request-id": "REQ1"},
            "s3": {
                "bucket": {"name": "input"},
                "object": {"key": "uploads/red+mug.png", "size": 10, "eTag": "e1", "versionId": "v7"},
            },
        }
    ]
}


def job(**fields: Any) -> RetryMessage:
    defaults = {"bucket": "input", "key": "uploads/a.png", "version_id": "v1", "attempt": 6, "due_at": NOW - 50}
    return RetryMessage.model_validate(
        defaults | {"reason": "transient: HTTP 503", "rule": "r", "pipeline": "p", "pipeline_hash": "h"} | fields
    )


def message(body: str, attributes: dict[str, str] | None = None, receives: int = 1) -> Any:
    return {
        "MessageId": "m1",
        "ReceiptHandle": "rh1",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": str(receives)},
        "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()},
    }


# -- redrive: what each message is -----------------------------------------------------------------------


def test_work_the_adapter_gave_up_goes_back_as_a_new_run_with_its_attempts_reset() -> None:
    reason = "step 1 (removebg): gave up after 6 attempts; last: transient: HTTP 503"
    parked = job(polls=3, in_line=True, turn_at=NOW - 60, in_flight_since=NOW - 2000)
    letter = redrive.classify(
        message(parked.model_dump_json(), {"reason": reason, GIVEN_UP_ATTRIBUTE: "adapter"}), NOW, "redrive X"
    )
    assert (letter.kind, letter.reason) == ("given-up", reason)
    (back,) = letter.outgoing
    assert (back.attempt, back.polls, back.in_line, back.turn_at, back.in_flight_since) == (0, 0, False, None, None)
    assert (back.replay, back.due_at, back.pipeline, back.step) == ("redrive X", NOW, "p", 0)
    assert back.reason == f"redrive X: {reason}"
    assert letter.reopened == (JobRef("input", "uploads/a.png", "version:v1", "p"),)


def test_given_up_work_keeps_what_its_paid_call_left() -> None:
    """A transaction to poll, or a step answered whose result could not be fetched: sent back, it is polled or
    fetched again rather than paid for twice."""
    answered = AnsweredStep(result_url="https://results.example/r.png", correlation_id="c1")
    parked = job(transaction_id="tx-1", answered=answered)
    letter = redrive.classify(message(parked.model_dump_json(), {"reason": "x", GIVEN_UP_ATTRIBUTE: "a"}), NOW, "R")
    (back,) = letter.outgoing
    assert (back.transaction_id, back.answered, back.replay) == ("tx-1", answered, "R")


def test_work_sqs_moved_after_its_receives_goes_back_as_it_is() -> None:
    parked = job(attempt=2, reason="rate limit: the fleet's quota budget is spent")
    letter = redrive.classify(message(parked.model_dump_json(), {"reason": parked.reason}, receives=6), NOW, "X")
    assert letter.kind == "moved-by-sqs"
    assert "after 6 receives" in letter.reason
    assert "quota budget is spent" in letter.reason
    assert letter.outgoing == (parked,)
    assert letter.reopened == ()


def test_unmarked_work_whose_record_says_dead_lettered_is_taken_for_given_up() -> None:
    """Dead-lettered before the adapter marked what it gives up: its record tells."""
    records = {JobRef("input", "uploads/a.png", "version:v1", "p"): {"status": "failed", "dead_lettered": True}}
    letter = redrive.classify(message(job().model_dump_json()), NOW, "X", records.get)
    assert letter.kind == "given-up"


def test_a_failed_upload_invocation_becomes_a_fresh_job_for_its_upload() -> None:
    attributes = {"RequestID": "req-9", "ErrorCode": "200", "ErrorMessage": "Task timed out after 30.00 seconds"}
    letter = redrive.classify(message(json.dumps(S3_EVENT), attributes), NOW, "X")
    assert letter.kind == "failed-invocation"
    assert (
        letter.reason == "the upload function's invocation failed (request req-9): Task timed out after 30.00 seconds"
    )
    (fresh,) = letter.outgoing
    assert (fresh.bucket, fresh.key, fresh.version_id, fresh.attempt, fresh.due_at) == (
        "input",
        "uploads/red mug.png",
        "v7",
        0,
        NOW,
    )
    assert (fresh.pipeline, fresh.replay) == (None, None), "a new upload: work the invocation finished is not redone"


def test_an_s3_test_event_names_no_upload_and_is_removed() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "input"})
    letter = redrive.classify(message(body, {"ErrorMessage": "Task timed out"}), NOW, "X")
    assert (letter.kind, letter.outgoing, letter.movable) == ("test-event", (), True)
    assert letter.reason == "an s3:TestEvent the upload function failed on: Task timed out"


def test_a_body_no_one_can_read_stays_in_the_dead_letter_queue() -> None:
    letter = redrive.classify(message("{not json", {"reason": "unreadable delay-queue message: body"}), NOW, "X")
    assert (letter.kind, letter.movable) == ("unreadable", False)
    assert letter.reason == "unreadable delay-queue message: body"


def test_the_plan_shows_each_reason_before_what_goes_back() -> None:
    plan = redrive.plan_redrive(
        [message(job().model_dump_json(), {"reason": "gave up", GIVEN_UP_ATTRIBUTE: "adapter"}), message("x")], NOW
    )
    text = redrive.render_plan(plan, "https://sqs/dlq")
    assert text.index("reason:  gave up") < text.index("back as: a new run, attempts reset")
    assert "stays in the dead-letter queue" in text
    assert plan.replay == "redrive 2027-01-15T08:00:00Z"
    assert not plan.native_applies, "SQS's move task would send the given-up job back as it is"


def test_sqs_move_task_applies_only_when_every_message_goes_back_as_it_is() -> None:
    moved = message(job(attempt=1).model_dump_json(), receives=6)
    assert redrive.plan_redrive([moved, moved], NOW).native_applies
    assert not redrive.plan_redrive([moved, message(json.dumps(S3_EVENT))], NOW).native_applies


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_without_sqs_move_task_the_messages_are_moved_one_by_one_unchanged(moto_server: str) -> None:
    """moto has no StartMessageMoveTask: the same effect by receive, send and delete."""
    session = boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1")
    sqs = session.client("sqs", endpoint_url=moto_server)
    mover = session.client("sqs", endpoint_url=moto_server, config=Config(retries={"total_max_attempts": 1}))
    dlq = sqs.create_queue(QueueName="op-dlq")["QueueUrl"]
    delay = sqs.create_queue(QueueName="op-delay")["QueueUrl"]
    parked = job(attempt=2)
    sqs.send_message(QueueUrl=dlq, MessageBody=parked.model_dump_json())
    plan = redrive.plan_redrive(redrive.list_dead_letters(sqs, dlq), NOW)
    assert plan.native_applies
    result = redrive.carry_out(plan, sqs, cast(Any, None), delay, dlq, mover=mover, now=lambda: NOW)
    assert (result.moved, result.jobs_sent) == (1, 1)
    assert result.how.startswith("one by one: SQS's message move task is not available here")
    (sent,) = sqs.receive_message(QueueUrl=delay, MessageAttributeNames=["All"])["Messages"]
    assert RetryMessage.model_validate_json(sent["Body"]) == parked
    assert sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", []) == []


# -- reprocess: its pure parts ----------------------------------------------------------------------------


def test_since_takes_durations_and_iso_times() -> None:
    now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert reprocess.parse_since("2h", now) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert reprocess.parse_since("90s", now) == datetime(2026, 12, 7, 9, 58, 30, tzinfo=UTC)
    assert reprocess.parse_since("7d", now) == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert reprocess.parse_since("2026-12-01T10:00Z", now) == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert reprocess.parse_since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="--since takes a duration"):
        reprocess.parse_since("yesterday", now)


def test_the_pace_is_half_the_fleets_learned_rate_or_a_default() -> None:
    learned = LimiterState(limit=10, window_ms=5000)
    assert reprocess.choose_pace(learned, 300).calls_per_second == 1.0
    assert reprocess.choose_pace(LimiterState(limit=1000, window_ms=1000), 300).calls_per_second == 150.0
    assert reprocess.choose_pace(None, 300).calls_per_second == reprocess.DEFAULT_PACE_PER_SECOND
    assert reprocess.choose_pace(learned, 300, given=4.0).calls_per_second == 4.0
    with pytest.raises(ValueError, match="--pace"):
        reprocess.choose_pace(learned, 300, given=0)


def work(key: str, calls: int) -> reprocess.ObjectWork:
    pipeline = reprocess.PipelineWork("r", "p", "h", calls, False, "queue", "never run")
    return reprocess.ObjectWork(key, "v1", "e", "version:v1", "r", (pipeline,))


def test_jobs_are_spread_by_the_calls_before_them_at_the_pace() -> None:
    plan = reprocess.ReprocessPlan("b", "", "rules", (work("a", 2), work("b", 1), work("c", 3)), "reprocess X")
    due = [at for _, _, at in reprocess.schedule(plan, reprocess.Pace(2.0, "test"), NOW)]
    assert due == [NOW, NOW + 1.0, NOW + 1.5]
    assert plan.calls == 6


def test_reprocess_asks_above_fifty_calls() -> None:
    assert not reprocess.asks_before_sending(50)
    assert reprocess.asks_before_sending(51)


def test_the_progress_bar_draws_on_a_terminal_and_stays_quiet_elsewhere() -> None:
    quiet = io.StringIO()
    bar = reprocess.Progress(4, quiet)
    bar.update(2)
    bar.finish()
    assert quiet.getvalue() == "", "a StringIO is not a terminal"
    shown = io.StringIO()
    bar = reprocess.Progress(4, shown, enabled=True)
    bar.update(2)
    bar.finish()
    assert shown.getvalue() == "\r[" + "#" * 15 + "-" * 15 + "] 2/4 queued\n"


# -- where the names come from ----------------------------------------------------------------------------


def test_a_deployed_stacks_outputs_and_parameters_name_everything() -> None:
    outputs = {
        "InputBucketName": "in-bucket",
        "JobsTableName": "jobs",
        "DelayQueueUrl": "https://sqs/delay",
        "DeadLetterQueueUrl": "https://sqs/dlq",
    }
    template = {
        "Parameters": {"PicsartTool": {"Type": "String"}, "PicsartToolParameters": {"Type": "String"}},
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(
            StackName="deployed",
            TemplateBody=json.dumps(template),
            Parameters=[
                {"ParameterKey": "PicsartTool", "ParameterValue": "upscale"},
                {"ParameterKey": "PicsartToolParameters", "ParameterValue": '{"upscale_factor": 2}'},
            ],
        )
        names = from_stack(cloudformation, "deployed")
        with pytest.raises(ValueError, match="no CloudFormation stack named 'missing'"):
            from_stack(cloudformation, "missing")
    assert (names.input_bucket, names.jobs_table, names.delay_queue_url, names.dead_letter_queue_url) == (
        "in-bucket",
        "jobs",
        "https://sqs/delay",
        "https://sqs/dlq",
    )
    rules, source = functions_rules(names.parameters)
    assert (source, [p.name for p in rules.pipelines.values()]) == ("PicsartTool upscale", ["upscale"])


def test_without_a_stack_the_variables_the_local_stack_prints_are_needed() -> None:
    with pytest.raises(ValueError, match="set DELAY_QUEUE_URL, DEAD_LETTER_QUEUE_URL"):
        from_environment({"INPUT_BUCKET": "b", "JOBS_TABLE": "t"})
