"""The runner: execution environments (cold/warm, errors, timeouts, kills, logs) and the event sources."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from moto.sqs.models import Message

from picsart_local import runner
from picsart_local.runner import (
    ExecutionEnvironment,
    InvocationResult,
    LocalRunner,
    batch_item_failures,
    scheduled_event,
)
from picsart_local.stack import LocalStack

from .conftest import receive_all, recorded

#: Memory the test process holds while it starts a worker (MB), more than a small worker uses.
BALLAST_MB = 512
#: How long a preempted moto request thread waits before it goes on (when nothing lets it go sooner).
PREEMPTED_FOR_S = 3.0


def environment_of(stack: LocalStack, function: str, log_dir: Path) -> ExecutionEnvironment:
    return ExecutionEnvironment(stack.template.function(function), stack.function_environment(function), log_dir)


def log_text(environment: ExecutionEnvironment) -> str:
    path = environment.log_path
    return path.read_text() if path is not None and path.exists() else ""


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


# ------------------------------------------------------------------------------- execution environments


def test_environment_is_cold_once_then_warm_and_survives_handler_errors(
    fixture_stack: LocalStack, tmp_path: Path
) -> None:
    with environment_of(fixture_stack, "OnUpload", tmp_path) as environment:
        first = environment.invoke({"action": "none"})
        failed = environment.invoke({"action": "raise"})
        third = environment.invoke({"action": "none"})

    assert first.ok
    assert first.cold_start
    assert first.init_duration_ms is not None
    # The function's environment was in place before the module was imported.
    assert first.payload["environment_at_import"] == {
        "GREETING": "hello",
        "OVERRIDDEN": "from-function",
        "AWS_LAMBDA_FUNCTION_NAME": fixture_stack.template.function("OnUpload").name,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    }
    assert not failed.ok
    assert not failed.cold_start
    assert (failed.error_type, failed.error_message) == ("RuntimeError", "asked to raise")
    assert failed.payload["errorType"] == "RuntimeError"
    assert failed.payload["requestId"] == failed.request_id
    assert third.ok
    assert not third.cold_start
    assert third.payload["invocations"] == 3
    assert third.payload["pid"] == first.payload["pid"]


def test_max_memory_used_is_the_workers_own_not_its_parents(fixture_stack: LocalStack, tmp_path: Path) -> None:
    """Workers are spawned (fork, then exec) and getrusage's peak survives the exec: a worker started by a process
    holding much memory (the soak's, with moto and the emulator in it) reported that process's peak, beyond the
    function's memory size, though it used a fraction of it."""
    ballast = bytearray(BALLAST_MB * 1024 * 1024)
    for page in range(0, len(ballast), 4096):
        ballast[page] = 1
    with environment_of(fixture_stack, "OnUpload", tmp_path) as environment:
        assert environment.invoke({"action": "none"}).ok
        report = re.search(r"Max Memory Used: (\d+) MB", log_text(environment))
    del ballast
    assert report is not None
    assert 0 < int(report.group(1)) < BALLAST_MB // 2


def test_a_prewarmed_environment_is_initialised_as_provisioned_concurrency(
    fixture_stack: LocalStack, tmp_path: Path
) -> None:
    """Like Lambda's provisioned concurrency, the init runs ahead of traffic and the function is told so."""
    with environment_of(fixture_stack, "OnUpload", tmp_path) as environment:
        assert environment.prewarm() is None
        result = environment.invoke({"action": "none"})

    assert result.ok
    assert not result.cold_start
    assert result.payload["environment_at_import"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"


def test_handler_gets_a_lambda_context(fixture_stack: LocalStack, tmp_path: Path) -> None:
    function = fixture_stack.template.function("OnUpload")
    with environment_of(fixture_stack, "OnUpload", tmp_path) as environment:
        result = environment.invoke(
            {"action": "none"}, trace_header="Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        )

    (document,) = recorded(fixture_stack, "s3")
    assert document["request_id"] == result.request_id
    assert re.fullmatch(r"[0-9a-f-]{36}", result.request_id)
    assert document["function_name"] == function.name
    assert document["invoked_function_arn"] == function.arn
    assert document["memory_limit_in_mb"] == 256
    assert 0 < document["remaining_ms"] <= function.timeout_s * 1000
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", document["log_stream_name"])
    assert document["trace_header"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"


def test_timeout_kills_the_environment_and_the_next_invocation_is_cold(
    make_stack: Callable[..., LocalStack], tmp_path: Path
) -> None:
    stack = make_stack(parameter_overrides={"FunctionTimeout": "1"})  # the template's Timeout, from a parameter
    with environment_of(stack, "OnUpload", tmp_path) as environment:
        warm = environment.invoke({"action": "none"})
        timed_out = environment.invoke({"action": "sleep", "seconds": 30})
        after = environment.invoke({"action": "none"})

    assert warm.ok
    assert not timed_out.ok
    assert timed_out.error_type == "Sandbox.Timedout"
    assert timed_out.error_message == "Task timed out after 1.00 seconds"
    assert 1000 <= timed_out.duration_ms < 10000
    assert after.ok
    assert after.cold_start
    assert after.payload["pid"] != warm.payload["pid"]
    assert timed_out.log_path is not None
    assert f"{timed_out.request_id} Task timed out after 1.00 seconds" in timed_out.log_path.read_text()


def test_kill_ends_an_invocation_in_progress(fixture_stack: LocalStack, tmp_path: Path) -> None:
    results: list[InvocationResult] = []
    with environment_of(fixture_stack, "OnUpload", tmp_path) as environment:
        worker = threading.Thread(target=lambda: results.append(environment.invoke({"action": "sleep", "seconds": 30})))
        worker.start()
        wait_for(lambda: "START RequestId" in log_text(environment))
        environment.kill()
        worker.join(timeout=10)
        after = environment.invoke({"action": "none"})

    (killed,) = results
    assert killed.error_type == "Runtime.ExitError"
    assert killed.error_message is not None
    assert "signal: killed" in killed.error_message
    assert after.ok
    assert after.cold_start


class _WorkerSlowToEnd:
    """A worker process that is still running when the wait for its end is over."""

    exitcode: int | None = None

    def __init__(self) -> None:
        self.killed = False

    def is_alive(self) -> bool:
        return True

    def kill(self) -> None:
        self.killed = True

    def join(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        raise ValueError("Cannot close a process while it is still running.")


def test_a_worker_slow_to_end_is_left_unclosed_rather_than_failing_the_invocation(
    fixture_stack: LocalStack, tmp_path: Path
) -> None:
    """On a loaded machine a killed worker can outlast the wait; closing it then raised, and the S3 notification
    the invocation carried failed to deliver."""
    with environment_of(fixture_stack, "OnUpload", tmp_path) as environment:
        slow = _WorkerSlowToEnd()
        environment._process = slow  # type: ignore[assignment]
        assert environment._end_process() == "without an exit status"
        assert slow.killed
        assert environment._process is None


class _WorkerReapedByAStart:
    """A killed worker that another thread's `Process.start` reaped: its exit status is there once that thread
    has recorded it."""

    def __init__(self) -> None:
        self.recorded: int | None = None

    @property
    def exitcode(self) -> int | None:
        return self.recorded

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def test_an_exit_status_reaped_by_a_starting_worker_is_read(fixture_stack: LocalStack, tmp_path: Path) -> None:
    """A kill read as "without an exit status" is not told from a handler that failed (the soak counted one)."""
    with environment_of(fixture_stack, "OnUpload", tmp_path) as environment:
        worker = _WorkerReapedByAStart()
        environment._process = worker  # type: ignore[assignment]
        ended: list[str] = []
        with runner._REAPING:  # another worker is starting, and reaps this one
            reader = threading.Thread(target=lambda: ended.append(environment._end_process()))
            reader.start()
            time.sleep(0.2)
            worker.recorded = 1
        reader.join(timeout=10)
        assert ended == ["with error: exit status 1"]


def test_an_import_error_is_the_invocations_error(fixture_stack: LocalStack, tmp_path: Path) -> None:
    function = dataclasses.replace(fixture_stack.template.function("OnUpload"), handler="no_such_module.handler")
    with ExecutionEnvironment(function, fixture_stack.function_environment("OnUpload"), tmp_path) as environment:
        result = environment.invoke({})

    assert result.error_type == "Runtime.ImportModuleError"
    assert result.error_message is not None
    assert "Unable to import module 'no_such_module'" in result.error_message
    assert not environment.warm


def test_each_worker_logs_to_its_own_file(fixture_stack: LocalStack, tmp_path: Path) -> None:
    first = environment_of(fixture_stack, "OnUpload", tmp_path)
    second = environment_of(fixture_stack, "OnUpload", tmp_path)
    with first, second:
        one = first.invoke({"action": "stderr"})
        two = second.invoke({"action": "none"})

    assert one.log_path is not None
    assert two.log_path is not None
    assert one.log_path != two.log_path
    one_log, two_log = one.log_path.read_text(), two.log_path.read_text()
    assert f"START RequestId: {one.request_id}" in one_log
    assert one.request_id not in two_log
    assert "to stderr" in one_log  # stderr goes to the same file
    lines = [json.loads(line) for line in two_log.splitlines() if line.startswith("{")]
    assert {"level": "INFO", "message": "recorded", "kind": "s3", "request_id": two.request_id} in lines
    assert re.search(rf"REPORT RequestId: {two.request_id}\tDuration: [\d.]+ ms.*Init Duration", two_log)


# --------------------------------------------------------------------------------- S3 notifications


def test_only_matching_uploads_trigger_the_function_with_real_s3_fields(
    fixture_stack: LocalStack, runner: LocalRunner
) -> None:
    s3 = fixture_stack.client("s3")
    bucket = fixture_stack.outputs["UploadBucketName"]
    put = s3.put_object(Bucket=bucket, Key="photos/my photo.png", Body=b"png")
    s3.put_object(Bucket=bucket, Key="photos/notes.txt", Body=b"text")
    runner.wait_idle(timeout=20)

    events = [document["event"] for document in recorded(fixture_stack, "s3")]
    # moto's s3:TestEvent is delivered like any message (in parallel, so in any order); the handler decides.
    (test_event,) = [event for event in events if "Records" not in event]
    assert test_event["Event"] == "s3:TestEvent"
    (upload,) = [event for event in events if "Records" in event]
    (record,) = upload["Records"]
    assert record["s3"]["object"]["key"] == "photos/my+photo.png"
    assert record["s3"]["object"]["versionId"] == put["VersionId"]
    assert record["responseElements"]["x-amz-request-id"]
    assert runner.counters().invocations["OnUpload"] == 2
    assert runner.counters().errors["OnUpload"] == 0


def test_failed_events_are_retried_then_sent_to_the_dead_letter_queue(
    fixture_stack: LocalStack, runner: LocalRunner
) -> None:
    function = fixture_stack.template.function("OnUpload")
    fixture_stack.client("s3").put_object(Bucket=fixture_stack.outputs["UploadBucketName"], Key="fail.png", Body=b"x")
    runner.wait_idle(timeout=20)

    attempts = [d for d in recorded(fixture_stack, "s3") if "Records" in d["event"]]
    assert len(attempts) == 1 + function.maximum_retry_attempts
    assert len({attempt["request_id"] for attempt in attempts}) == 1  # one request id across retries
    (dead,) = receive_all(fixture_stack, fixture_stack.outputs["DeadLetterQueueUrl"])
    assert json.loads(dead["Body"]) == attempts[0]["event"]
    attributes = dead["MessageAttributes"]
    assert attributes["ErrorMessage"] == {"StringValue": "cannot process fail.png", "DataType": "String"}
    assert attributes["RequestID"]["StringValue"] == attempts[0]["request_id"]
    assert attributes["ErrorCode"] == {"StringValue": "200", "DataType": "Number"}
    counters = runner.counters()
    assert counters.dead_lettered["OnUpload"] == 1
    assert counters.errors["OnUpload"] == 1 + function.maximum_retry_attempts


def test_upload_concurrency_bounds_the_environments(
    fixture_stack: LocalStack, make_runner: Callable[..., LocalRunner]
) -> None:
    runner = make_runner(fixture_stack, upload_concurrency=1)
    s3 = fixture_stack.client("s3")
    for index in range(3):
        s3.put_object(Bucket=fixture_stack.outputs["UploadBucketName"], Key=f"{index}.png", Body=b"x")
    runner.wait_idle(timeout=20)

    documents = recorded(fixture_stack, "s3")
    assert len(documents) == 4  # the test event and three uploads
    assert len({document["pid"] for document in documents}) == 1
    assert runner.counters().cold_starts["OnUpload"] == 1
    assert len(runner.log_files("OnUpload")) == 1
    assert any(r.get("message") == "recorded" for r in runner.log_records("OnUpload"))


# ------------------------------------------------------------------------------------- SQS event source


def test_sqs_partial_batch_failure_redelivers_only_the_failed_message(
    fixture_stack: LocalStack, runner: LocalRunner
) -> None:
    sqs = fixture_stack.client("sqs")
    queue_url = fixture_stack.outputs["WorkQueueUrl"]
    for body in ("ok-1", "fail", "ok-2"):
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=body,
            MessageAttributes={"origin": {"DataType": "String", "StringValue": f"test-{body}"}},
        )
    with pytest.raises(TimeoutError):
        runner.wait_idle(timeout=0.1)
    runner.wait_idle(timeout=30)

    batches = [document["event"]["Records"] for document in recorded(fixture_stack, "sqs")]
    deliveries = [
        (record["body"], record["attributes"]["ApproximateReceiveCount"]) for batch in batches for record in batch
    ]
    # The batching window gathers all three; only "fail" comes back (after the visibility timeout) until
    # the redrive policy's maxReceiveCount (2) moves it to the dead-letter queue.
    assert sorted(deliveries) == [("fail", "1"), ("fail", "2"), ("ok-1", "1"), ("ok-2", "1")]
    assert len(batches[0]) == 3
    record = batches[0][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == fixture_stack.template.resources["WorkQueue"].attribute("Arn")
    assert record["awsRegion"] == "us-east-1"
    assert record["messageAttributes"]["origin"] == {
        "stringValue": f"test-{record['body']}",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["md5OfBody"]
    assert record["attributes"]["SentTimestamp"].isdigit()
    (dead,) = receive_all(fixture_stack, fixture_stack.outputs["DeadLetterQueueUrl"])
    assert dead["Body"] == "fail"
    assert runner.counters().batch_item_failures["OnWork"] == 2


class _MissesTheFirstCount:
    """The runner's SQS client, except that its first count of each queue's messages is zero in every
    attribute: what moto answers when a message turns from delayed to visible between two of its counts."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.counted: list[str] = []

    def get_queue_attributes(self, **request: Any) -> Any:
        answer = self._client.get_queue_attributes(**request)
        if request["QueueUrl"] not in self.counted:
            answer["Attributes"] = dict.fromkeys(answer["Attributes"], "0")
        self.counted.append(request["QueueUrl"])
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_message_missed_by_one_count_is_not_taken_for_idle(
    fixture_stack: LocalStack, make_runner: Callable[..., LocalRunner]
) -> None:
    """A delayed message due while the queue is counted is in none of the counts; the confirming look sees
    it, so the soak does not account for its uploads while one still waits in the delay queue."""
    runner = make_runner(fixture_stack)
    runner.wait_idle(timeout=20)  # the queues as they start
    sqs = fixture_stack.client("sqs")
    sqs.send_message(QueueUrl=fixture_stack.outputs["WorkQueueUrl"], MessageBody="ok-later", DelaySeconds=30)
    counting = _MissesTheFirstCount(runner._sqs)
    runner._sqs_client = counting  # type: ignore[assignment]

    with pytest.raises(TimeoutError, match="messages pending"):
        runner.wait_idle(timeout=0)
    assert counting.counted.count(fixture_stack.outputs["WorkQueueUrl"]) == 2  # the empty look, then the true one


def _kill_the_first_batch(runner: LocalRunner) -> threading.Event:
    """The runner's first SQS invocation finds its worker dead, as a crash leaves it; the event is set once
    that invocation has failed."""
    killed = threading.Event()
    invoke = runner._invoke

    def invoke_or_kill(environment: ExecutionEnvironment, source: str, event: Any, **options: Any) -> InvocationResult:
        if source != "sqs" or killed.is_set():
            return invoke(environment, source, event, **options)
        environment.prewarm()
        environment.kill()
        wait_for(lambda: not environment.warm)
        result = invoke(environment, source, event, **options)
        killed.set()
        return result

    runner._invoke = invoke_or_kill  # type: ignore[method-assign]
    return killed


def test_a_killed_batch_comes_back_whole_while_moto_serves_overlapping_deletes(
    fixture_stack: LocalStack, make_runner: Callable[..., LocalRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete whose request thread is preempted midway through the queue's messages overlaps a second delete
    and a batch's sending, receiving and killed invocation. The batch comes back after the visibility timeout
    and both its messages are processed; both deleted messages stay deleted. Unlocked, moto's delete puts the
    list it walked in place of the queue's: without the batch, with the second deleted message in flight
    (moto_atomic.serialize_sqs_queues)."""
    sqs = fixture_stack.client("sqs")
    queue_url = fixture_stack.outputs["WorkQueueUrl"]
    for body in ("deleted-first", "deleted-second"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    taken = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=2, VisibilityTimeout=60)["Messages"]
    handles = {message["Body"]: message["ReceiptHandle"] for message in taken}
    preempted, resumed = threading.Event(), threading.Event()
    had_receipt_handle = Message.had_receipt_handle

    def preempt_the_first_delete(message: Message, receipt_handle: str) -> bool:
        # moto's delete asks each message of the queue in turn whether it had the receipt handle.
        if message.body == "deleted-second" and receipt_handle == handles["deleted-first"] and not preempted.is_set():
            preempted.set()
            resumed.wait(PREEMPTED_FOR_S)
        return had_receipt_handle(message, receipt_handle)

    monkeypatch.setattr(Message, "had_receipt_handle", preempt_the_first_delete)
    runner = make_runner(fixture_stack)
    killed = _kill_the_first_batch(runner)

    first = threading.Thread(
        target=lambda: sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=handles["deleted-first"])
    )
    first.start()
    assert preempted.wait(10)
    # With the queue's operations atomic, these wait until the first delete has finished.
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=handles["deleted-second"])
    sqs.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": "a", "MessageBody": "ok-a"}, {"Id": "b", "MessageBody": "ok-b"}]
    )
    assert killed.wait(30)
    resumed.set()
    first.join(10)

    def processed() -> list[tuple[str, str]]:
        return sorted(
            (record["body"], record["attributes"]["ApproximateReceiveCount"])
            for invocation in runner.history("OnWork")
            if invocation.result.ok
            for record in invocation.event["Records"]
        )

    with contextlib.suppress(TimeoutError):
        wait_for(lambda: len(processed()) >= 2, timeout=15)
    killed_invocation = runner.history("OnWork")[0]
    assert killed_invocation.result.error_type == "Runtime.ExitError"
    assert sorted(record["body"] for record in killed_invocation.event["Records"]) == ["ok-a", "ok-b"]
    assert processed() == [("ok-a", "2"), ("ok-b", "2")]
    runner.wait_idle(timeout=10)  # nothing is left in the queue: neither deleted message comes back


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "a"}]}, {"a"}),
        ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{}]}, None),
    ],
)
def test_batch_item_failures_are_read_as_lambda_reads_them(payload: object, expected: set[str] | None) -> None:
    assert batch_item_failures(payload, {"a", "b"}) == expected


# ------------------------------------------------------------------------------- invoke, X-Ray


def test_invoke_runs_in_a_fresh_environment_each_time(
    fixture_stack: LocalStack, make_runner: Callable[..., LocalRunner]
) -> None:
    runner = make_runner(fixture_stack, event_sources=False)
    first = runner.invoke("OnUpload", {"action": "none"})
    failed = runner.invoke("OnUpload", {"action": "raise"})

    assert first.ok
    assert first.cold_start
    assert failed.cold_start
    assert failed.error_type == "RuntimeError"
    assert first.payload["invocations"] == 1
    assert [record.source for record in runner.history("OnUpload")] == ["invoke", "invoke"]
    assert recorded(fixture_stack, "s3")[0]["event"] == {"action": "none"}  # no S3 event source running


def test_traces_reach_the_local_xray_daemon(fixture_stack: LocalStack, make_runner: Callable[..., LocalRunner]) -> None:
    runner = make_runner(fixture_stack, event_sources=False)
    marker = uuid.uuid4().hex
    result = runner.invoke("Traced", {"marker": marker})
    assert result.ok

    def annotated() -> list[dict[str, object]]:
        return [d for d in runner.trace_documents() if d.get("annotations", {}).get("fixture_marker") == marker]

    wait_for(lambda: bool(annotated()), timeout=5)
    (work,) = annotated()
    assert work["name"] == "work"
    assert re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{24}", str(work["trace_id"]))
    handler_segment = [d for d in runner.trace_documents() if d["name"] == "## handler"]
    assert handler_segment[0]["id"] == work["parent_id"]
    assert marker in (runner.log_dir / "xray.jsonl").read_text()


def test_a_schedule_delivers_eventbridges_scheduled_event(repository_root: Path) -> None:
    """What `LocalRunner.run_schedule` invokes with: the shape of events/schedule.json, naming its rule."""
    event = scheduled_event("stack-BalanceFunction-Hourly", "us-east-1", "123456789012")
    sample = json.loads((repository_root / "events" / "schedule.json").read_text())
    assert set(event) == set(sample)
    assert (event["source"], event["detail-type"], event["detail"]) == ("aws.events", "Scheduled Event", {})
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/stack-BalanceFunction-Hourly"]
