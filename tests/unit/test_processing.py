"""The domain with its collaborators faked: what one upload leads to, answer by answer.

Guide rules per test: "Capture the value of the X-Picsart-Correlation-Id"; "Record the response body if it is
an error response"; "Avoid manually dissecting URLs"; rate limits: wait until the reset time, else at least a
minute; "Choosing to disregard ongoing validation errors could lead to your application being suspended".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from picsart_adapter.circuit import Admission, Closed, Open, Probe, Tripped
from picsart_adapter.delay_queue import DelayQueue, RetryMessage
from picsart_adapter.idempotency import FINAL, DuplicateInFlight
from picsart_adapter.jobs import Attempt, JobRef, JobResult, JobStatus
from picsart_adapter.observability import metrics
from picsart_adapter.outcomes import Outcome
from picsart_adapter.picsart_client import (
    PicsartResponse,
    PicsartTransportError,
    RateLimitHeaders,
    ResultDownloadError,
    parse_response,
)
from picsart_adapter.processing import (
    ASSUMED_PREPARATION_SECONDS,
    DELAY_ROUNDING_SECONDS,
    MAX_IN_FLIGHT_SECONDS,
    MAX_PREPARATION_SECONDS,
    MAX_RECOUNTS,
    MAX_SHORT_WAITS,
    SHORT_WAIT_SECONDS,
    ProcessorSettings,
    UploadProcessor,
)
from picsart_adapter.rate_limit import Denial, Grant, LimiterState
from picsart_adapter.retry_policy import MAX_POLLS, RESET_SPREAD_SECONDS, RetryPolicy
from picsart_adapter.s3_events import UploadedObject
from picsart_adapter.storage import StoredObject
from picsart_adapter.tools import TOOLS, RemoveBackgroundParameters, Tool, ToolParameters

NOW = 1_700_000_000.0
PRESIGNED_URL = "https://input.s3.amazonaws.com/uploads/photo.jpg?X-Amz-Signature=deadbeef&X-Amz-Expires=300"
RESULT_URL = "https://cdn.picsart.io/9a2c6b1e.png?token=a%2Fb%3D&expires=1717000000"
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 21
UPLOAD = UploadedObject(
    bucket="input", key="uploads/photo.jpg", size=2048, etag="e1", version_id="v1", s3_request_id="s3-req-1"
)


@pytest.fixture(autouse=True)
def _clear_metrics() -> Iterator[None]:
    """The shared Metrics object would flush (and want a namespace) after 100 values; tests flush nothing."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


class FakeStore:
    def __init__(self, stored: StoredObject | None) -> None:
        self.stored = stored
        self.described = 0
        self.presigned: list[tuple[StoredObject, int]] = []
        self.results: list[dict[str, Any]] = []

    def describe(self, bucket: str, key: str, version_id: str | None) -> StoredObject | None:
        self.described += 1
        return self.stored

    def presigned_get_url(self, obj: StoredObject, ttl_seconds: int) -> str:
        self.presigned.append((obj, ttl_seconds))
        return PRESIGNED_URL

    def put_result(self, bucket: str, key: str, body: bytes, content_type: str, metadata: dict[str, str]) -> None:
        self.results.append(
            {"bucket": bucket, "key": key, "body": body, "content_type": content_type, "metadata": metadata}
        )


@dataclass
class FakeJobs:
    started: list[dict[str, Any]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)

    def start(self, ref: JobRef, details: dict[str, Any]) -> None:
        self.started.append({"ref": ref, **details})

    def finish(
        self,
        ref: JobRef,
        status: JobStatus,
        attempt: Attempt | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.finished.append({"ref": ref, "status": status, "attempt": attempt, "reason": reason, **(details or {})})


class FakeClient:
    def __init__(self, answer: PicsartResponse | Exception, result: bytes | Exception = b"\x89PNGresult") -> None:
        self.answer = answer
        self.result = result
        self.calls: list[tuple[Tool, str, ToolParameters]] = []
        self.downloads: list[str] = []
        self.polls: list[str] = []
        self.poll_answers: list[PicsartResponse] = []

    def call_tool(self, tool: Tool, image_url: str, parameters: ToolParameters) -> PicsartResponse:
        self.calls.append((tool, image_url, parameters))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def poll(self, tool: Tool, transaction_id: str) -> PicsartResponse:
        self.polls.append(transaction_id)
        return self.poll_answers.pop(0)

    def download_result(self, url: str) -> tuple[bytes, str]:
        self.downloads.append(url)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result, "image/png"


@dataclass
class FakeLimiter:
    """Grants every call unless told to deny; records what each answer told it."""

    denial: Denial | None = None
    #: What the environment already knows without a write (None: it must ask).
    known: Denial | None = None
    acquired: int = 0
    observed: list[tuple[RateLimitHeaders, bool]] = field(default_factory=list)
    lined_up: list[Denial] = field(default_factory=list)

    #: What acquire answers, in turn, before it falls back on `denial` (tests of waits and expired grants).
    script: list[Grant | Denial] = field(default_factory=list)
    #: What recount answers for an expired grant, in turn (a Denial: the second is full; None: the window
    #: ended, and the unit with it).
    recounts: list[Grant | Denial | None] = field(default_factory=list)
    recounted: int = 0
    #: The turns place_in_line gives, in order (then the denial's retry_at).
    turns: list[float] = field(default_factory=list)

    def acquire(self) -> Grant | Denial:
        self.acquired += 1
        if self.script:
            return self.script.pop(0)
        return self.denial or Grant(LimiterState())

    def recount(self, grant: Grant) -> Grant | Denial | None:
        self.recounted += 1
        return self.recounts.pop(0) if self.recounts else None

    def known_denial(self) -> Denial | None:
        return self.known

    def observe(self, headers: RateLimitHeaders, throttled: bool, received_at: float | None = None) -> None:
        self.observed.append((headers, throttled))

    def place_in_line(self, denial: Denial) -> float:
        if denial.turn is not None:
            return denial.turn  # the refusal took its place: no write
        self.lined_up.append(denial)
        return self.turns.pop(0) if self.turns else denial.retry_at


@dataclass
class FakeCircuit:
    """Admits as told; opens (as the real one does) on a configuration fault or spent credits."""

    admission: Admission = field(default_factory=Closed)
    probe_at: float = NOW + 60
    recorded: list[tuple[Admission, Outcome | None, int | None]] = field(default_factory=list)

    def admit(self) -> Admission:
        return self.admission

    def record(
        self,
        admission: Admission,
        outcome: Outcome | None,
        http_status: int | None,
        reason: str,
        correlation_id: str | None = None,
    ) -> Tripped | None:
        self.recorded.append((admission, outcome, http_status))
        if outcome in {Outcome.CONFIGURATION, Outcome.CREDITS}:
            return Tripped(self.probe_at, reason, opened_now=not isinstance(admission, Probe))
        return None


@dataclass
class FakeOnce:
    """Keeps final results per version the way Powertools Idempotency does (see the functional tests)."""

    final: dict[JobRef, JobResult] = field(default_factory=dict)
    in_flight: bool = False

    def register_lambda_context(self, context: Any) -> None:
        pass

    def run(self, ref: JobRef, work: Any) -> JobResult:
        if self.in_flight:
            raise DuplicateInFlight("in progress")
        if ref in self.final:
            kept = self.final[ref]
            return JobResult(kept.status, kept.reason, kept.output_key, duplicate=True)
        result: JobResult = work()
        if result.status in FINAL or result.transaction_id:
            self.final[ref] = result
        return result


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, str]:
        self.sent.append(kwargs)
        return {"MessageId": "m"}


@dataclass
class Clock:
    """Time that passes only when the processor waits."""

    now: float = NOW
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeContext:
    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"the processor waited {seconds} s where no wait was expected")


@dataclass
class World:
    processor: UploadProcessor
    store: FakeStore
    jobs: FakeJobs
    client: FakeClient
    sqs: RecordingSqs
    limiter: FakeLimiter
    circuit: FakeCircuit
    once: FakeOnce

    def parked(self) -> list[dict[str, Any]]:
        return [m for m in self.sqs.sent if m["QueueUrl"] == "https://sqs/delay"]

    def dead_lettered(self) -> list[dict[str, Any]]:
        return [m for m in self.sqs.sent if m["QueueUrl"] == "https://sqs/dlq"]


def stored_object(key: str = "uploads/photo.jpg", size: int = 2048, head: bytes = JPEG_HEAD) -> StoredObject:
    return StoredObject(bucket="input", key=key, size=size, etag="e1", version_id="v1", head=head)


def describe_taking(clock: Clock, seconds: float) -> Callable[[str, str, str | None], StoredObject | None]:
    """A FakeStore.describe that takes `seconds` of the clock: how long preparing a job takes."""

    def describe(bucket: str, key: str, version_id: str | None) -> StoredObject | None:
        clock.now += seconds
        return stored_object()

    return describe


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> PicsartResponse:
    raw = json.dumps(body).encode() if body is not None else b""
    return parse_response(status, {"X-Picsart-Correlation-Id": f"corr-{status}", **(headers or {})}, raw)


def world(
    picsart: PicsartResponse | Exception,
    stored: StoredObject | None = None,
    max_attempts: int = 6,
    result: bytes | Exception = b"\x89PNGresult",
    denial: Denial | None = None,
    admission: Admission | None = None,
    tool: str = "removebg",
    clock: Clock | None = None,
) -> World:
    store = FakeStore(stored if stored is not None else stored_object())
    jobs = FakeJobs()
    client = FakeClient(picsart, result)
    sqs = RecordingSqs()
    limiter = FakeLimiter(denial)
    circuit = FakeCircuit(admission or Closed())
    once = FakeOnce()
    processor = UploadProcessor(
        settings=ProcessorSettings(
            tool=TOOLS[tool],
            parameters=(
                RemoveBackgroundParameters.model_validate({"output_type": "cutout"})
                if tool == "removebg"
                else TOOLS[tool].parameters_model.model_validate({})
            ),
            output_bucket="output",
            presigned_url_ttl_seconds=300,
            max_attempts=max_attempts,
        ),
        store=cast(Any, store),
        jobs=cast(Any, jobs),
        queue=DelayQueue(cast(Any, sqs), "https://sqs/delay", "https://sqs/dlq"),
        client=cast(Any, client),
        retry_policy=RetryPolicy(),
        limiter=cast(Any, limiter),
        circuit=cast(Any, circuit),
        once=cast(Any, once),
        clock=clock or (lambda: NOW),
        sleep=clock.sleep if clock else _no_sleep,
    )
    return World(processor, store, jobs, client, sqs, limiter, circuit, once)


SUCCESS_BODY = {"status": "success", "data": {"id": "9a2c6b1e", "url": RESULT_URL}}


def test_success_stores_the_result_downloaded_from_data_url_as_given() -> None:
    """Guide: "reference the URL value directly instead of stripping off the parameters"; correlation id
    captured in the record."""
    w = world(answer(200, SUCCESS_BODY))
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.SUCCEEDED
    assert w.client.downloads == [RESULT_URL]
    ((tool, image_url, parameters),) = w.client.calls
    assert (tool.name, image_url) == ("removebg", PRESIGNED_URL)
    assert parameters == RemoveBackgroundParameters(output_type="cutout")
    (stored,) = w.store.results
    assert (stored["bucket"], stored["key"], stored["body"]) == (
        "output",
        "removebg/uploads/photo.jpg.png",
        b"\x89PNGresult",
    )
    assert stored["metadata"]["picsart-correlation-id"] == "corr-200"
    final = w.jobs.finished[-1]
    assert final["status"] is JobStatus.SUCCEEDED
    assert final["attempt"].picsart_correlation_id == "corr-200"
    assert result.picsart_correlation_ids == ["corr-200"]
    assert w.sqs.sent == []


def test_validation_error_fails_once_with_body_and_correlation_id_recorded() -> None:
    """Guide: "Record the response body if it is an error response", "Capture the value of the
    X-Picsart-Correlation-Id"; 422 is not retried ("disregard ongoing validation errors" gets suspended)."""
    body = {"code": 422, "message": "Unprocessable Entity", "detail": "bg_blur must be <= 100"}
    w = world(answer(422, body))
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.FAILED
    assert (result.http_status, result.picsart_correlation_id) == (422, "corr-422")
    assert "bg_blur must be <= 100" in (result.reason or "")
    final = w.jobs.finished[-1]
    assert final["status"] is JobStatus.FAILED
    assert json.loads(final["attempt"].error_body) == body
    assert final["attempt"].picsart_correlation_id == "corr-422"
    assert w.sqs.sent == []
    assert len(w.client.calls) == 1


def test_throttled_with_reset_time_is_parked_until_the_reset() -> None:
    """Guide: "wait to make another request until the time specified by this header has been reached" (UTC
    epoch milliseconds); never a Lambda sleeping through it."""
    reset_ms = int((NOW + 42) * 1000)
    w = world(
        answer(429, {"code": 429, "message": "Too Many Requests"}, {"X-Picsart-RateLimit-Reset-Time": str(reset_ms)})
    )
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.WAITING
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert NOW + 42 <= message.due_at <= NOW + 42 + RESET_SPREAD_SECONDS
    assert parked["DelaySeconds"] == math.ceil(message.due_at - NOW)
    assert message.attempt == 1
    assert message.picsart_correlation_ids == ["corr-429"]
    assert "X-Amz-Signature" not in parked["MessageBody"]
    assert w.jobs.finished[-1]["status"] is JobStatus.WAITING


def test_throttled_without_reset_time_waits_at_least_a_minute() -> None:
    """Guide: "If neither condition applies, it's advisable to wait at least one minute"."""
    w = world(answer(429, {"fault": {"faultstring": "Rate limit quota violation"}}))
    w.processor.process(UPLOAD)
    (parked,) = w.parked()
    assert RetryMessage.model_validate_json(parked["MessageBody"]).due_at >= NOW + 60
    assert parked["DelaySeconds"] >= 60


def test_no_answer_is_parked_as_transient() -> None:
    w = world(PicsartTransportError("timeout", "ReadTimeoutError"))
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.WAITING
    assert (result.reason or "").startswith("transient")
    assert "ReadTimeoutError" in (w.jobs.finished[-1]["attempt"].error or "")
    assert len(w.parked()) == 1


def test_attempts_used_up_go_to_the_dead_letter_queue_with_the_reason() -> None:
    """Guide: "consider throwing an error after several failed attempts"."""
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}), max_attempts=3)
    result = w.processor.process(UPLOAD, attempts_made=2, correlation_ids=["corr-a", "corr-b"])
    assert result.status is JobStatus.FAILED
    assert w.parked() == []
    (dead,) = w.dead_lettered()
    body = json.loads(dead["MessageBody"])
    assert body["reason"].startswith("gave up after 3 attempts")
    assert body["picsart_correlation_ids"] == ["corr-a", "corr-b", "corr-503"]
    assert w.jobs.finished[-1]["dead_lettered"] is True


def test_already_processed_version_costs_no_second_call() -> None:
    """S3 delivers at least once; a duplicate must not spend credits again, nor touch the job record."""
    w = world(answer(200, SUCCESS_BODY))
    first = w.processor.process(UPLOAD)
    records_after_first = len(w.jobs.finished)
    again = w.processor.process(UPLOAD)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.status is JobStatus.SUCCEEDED
    assert again.output_key == first.output_key == "removebg/uploads/photo.jpg.png"
    assert len(w.client.calls) == 1
    assert len(w.jobs.finished) == records_after_first


def test_a_retry_after_a_failure_is_not_a_duplicate() -> None:
    """Work parked after a 503 is not final: when it comes back, it is called again."""
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}))
    assert w.processor.process(UPLOAD).status is JobStatus.WAITING
    w.client.answer = answer(200, SUCCESS_BODY)
    again = w.processor.process(UPLOAD, attempts_made=1)
    assert (again.status, again.duplicate) == (JobStatus.SUCCEEDED, False)
    assert len(w.client.calls) == 2


def test_a_duplicate_while_the_version_is_in_flight_is_parked_not_dropped() -> None:
    """If the invocation working on it crashed, a dropped duplicate would lose the upload."""
    w = world(answer(200, SUCCESS_BODY))
    w.once.in_flight = True
    result = w.processor.process(UPLOAD)
    assert (result.status, result.duplicate) == (JobStatus.WAITING, True)
    assert w.client.calls == []
    assert w.jobs.finished == [], "the job record belongs to the invocation in flight"
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.attempt == 0
    assert NOW + 30 <= message.due_at <= NOW + 30 + RESET_SPREAD_SECONDS


@pytest.mark.parametrize(
    ("stored", "code"),
    [
        (stored_object(head=b"hello, this is plain text only.!"), "not-an-image"),
        (stored_object(size=0, head=b""), "empty-object"),
        (stored_object(size=100 * 1024 * 1024 + 1), "too-large"),
        (stored_object(key="uploads/anim.gif"), "unsupported-type"),
    ],
)
def test_inputs_picsart_would_refuse_are_skipped_without_a_call(stored: StoredObject, code: str) -> None:
    """Guide, 413 "input file is too big" / 415: checked first, so never provoked."""
    w = world(answer(200, SUCCESS_BODY), stored=stored)
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.SKIPPED
    assert w.jobs.finished[-1]["skip_code"] == code
    assert w.client.calls == []


def test_deleted_object_is_skipped() -> None:
    w = world(answer(200, SUCCESS_BODY))
    w.store.stored = None
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.SKIPPED
    assert w.jobs.finished[-1]["skip_code"] == "object-gone"
    assert w.jobs.finished[-1]["ref"].version_ref == "version:v1"
    assert w.client.calls == []


def test_success_without_data_url_fails_rather_than_guessing_a_url() -> None:
    """Guide: do not "anticipate the configuration of future URLs"."""
    w = world(answer(200, {"status": "success", "data": {"id": "9a2c6b1e"}}))
    assert w.processor.process(UPLOAD).status is JobStatus.FAILED
    assert w.client.downloads == []


def test_async_202_from_a_sync_tool_fails() -> None:
    w = world(answer(202, {"status": "queued", "transaction_id": "t1"}))
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.FAILED
    assert "202" in (result.reason or "")
    assert w.sqs.sent == []


def test_failed_result_download_is_retried_later() -> None:
    w = world(answer(200, SUCCESS_BODY), result=ResultDownloadError("result download answered HTTP 503"))
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.WAITING
    assert w.store.results == []
    assert len(w.parked()) == 1


def test_resume_of_work_not_yet_due_hops_without_a_call() -> None:
    """Waits longer than SQS's 900 s are carried in hops; nothing is sent to Picsart early."""
    w = world(answer(200, SUCCESS_BODY))
    message = RetryMessage(bucket="input", key="uploads/photo.jpg", attempt=2, due_at=NOW + 5000, reason="throttled")
    assert w.processor.resume(message) is None
    assert w.client.calls == []
    (parked,) = w.parked()
    assert parked["DelaySeconds"] == 900
    assert RetryMessage.model_validate_json(parked["MessageBody"]).attempt == 2


def test_resume_of_due_work_counts_the_attempt_and_keeps_correlation_ids() -> None:
    w = world(answer(503, {"code": 503, "message": "Service Unavailable"}))
    message = RetryMessage(
        bucket="input",
        key="uploads/photo.jpg",
        attempt=2,
        due_at=NOW,
        reason="transient",
        picsart_correlation_ids=["c1"],
    )
    result = w.processor.resume(message)
    assert result is not None
    assert result.status is JobStatus.WAITING
    assert w.jobs.started[-1]["attempt_count"] == 3
    parked = RetryMessage.model_validate_json(w.parked()[0]["MessageBody"])
    assert (parked.attempt, parked.picsart_correlation_ids) == (3, ["c1", "corr-503"])


def test_every_answer_is_reported_to_the_fleet_limiter() -> None:
    """Guide: the X-Picsart-RateLimit-* headers of every answer, success or error, steer the fleet."""
    headers = {"X-Picsart-RateLimit-Limit": "10", "X-Picsart-RateLimit-Available": "0"}
    w = world(answer(429, {"code": 429, "detail": "quota"}, headers))
    w.processor.process(UPLOAD)
    ((seen, throttled),) = w.limiter.observed
    assert (seen.limit, seen.available, throttled) == (10, 0, True)
    w = world(answer(200, SUCCESS_BODY, headers))
    w.processor.process(UPLOAD)
    assert [t for _, t in w.limiter.observed] == [False]


def test_a_refused_budget_parks_the_job_without_a_call_or_an_attempt() -> None:
    """Guide: sequence requests instead of bursts; hold off until the reset time when nothing is left."""
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 40, reason="quota"))
    result = w.processor.process(UPLOAD, attempts_made=2)
    assert result.status is JobStatus.WAITING
    assert w.client.calls == []
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.attempt == 2, "a deferral is not an attempt"
    # Its place in line, early by its preparation (none on this clock) and SQS's whole-second rounding.
    assert message.due_at == NOW + 40 - DELAY_ROUNDING_SECONDS
    assert parked["DelaySeconds"] == 39
    assert w.jobs.finished[-1]["attempt"] is None
    assert "quota" in w.jobs.finished[-1]["reason"]
    assert w.limiter.lined_up == [Denial(retry_at=NOW + 40, reason="quota")], "it took a place in the line"
    assert message.turn_at == NOW + 40, "the message carries when its place comes"


def test_work_parked_for_its_turn_is_due_early_by_how_long_preparing_a_job_takes_here() -> None:
    """Taken up again, the job reads its object and writes its records before it may ask for budget: on a
    slow machine that took 2 s, and work due 1.5 s early reached its turn late, window after window."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 40, reason="quota"), clock=clock)

    w.store.describe = describe_taking(clock, 2.0)  # type: ignore[method-assign]
    w.processor.process(UPLOAD)
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert message.due_at == pytest.approx(NOW + 40 - 2.0 - DELAY_ROUNDING_SECONDS)
    assert message.turn_at == NOW + 40

    w.store.describe = describe_taking(clock, 20.0)  # type: ignore[method-assign]
    w.processor.process(UPLOAD)
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert message.due_at == pytest.approx(NOW + 40 - MAX_PREPARATION_SECONDS - DELAY_ROUNDING_SECONDS), (
        "a stalled preparation is not planned for"
    )


def test_work_back_from_the_line_asks_for_budget_at_its_turn_not_at_the_reset() -> None:
    """The work a reset releases asks in line order, spaced by the spike arrest: asking all at once, all but
    one would fail to open the window (a write each)."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.known = Denial(retry_at=NOW + 0.2, reason="quota")
    w.limiter.script = [Denial(retry_at=NOW + 0.2, reason="quota"), Grant(LimiterState(), valid_until=NOW + 10)]
    message = RetryMessage(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", in_line=True
    )
    w.processor.resume(message.model_copy(update={"turn_at": NOW + 0.7}))
    assert clock.slept == [pytest.approx(0.7)], "its turn, after the reset"
    assert (w.limiter.acquired, len(w.client.calls)) == (2, 1)

    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Denial(retry_at=NOW + 0.2, reason="spike"), Grant(LimiterState(), valid_until=NOW + 10)]
    w.processor.resume(message.model_copy(update={"turn_at": NOW + 0.7}))
    assert clock.slept == [pytest.approx(0.2)], "a full second is not a turn in line: the next second will do"

    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Denial(retry_at=NOW + 0.2, reason="quota")]
    w.processor.resume(message.model_copy(update={"turn_at": NOW + SHORT_WAIT_SECONDS + 1}))
    assert clock.slept == [], "a turn further off than a short wait: parked"
    assert len(w.parked()) == 1


def test_work_refused_for_quota_takes_its_place_even_when_the_reset_is_a_short_wait_away() -> None:
    """Found by the bench: jobs that waited in their invocations for a reset all asked at once (28 at one
    reset), and all but one failed to open the window, then to take a grant in it. Each takes its place and
    asks at its turn."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.known = Denial(retry_at=NOW + 0.5, reason="quota")
    w.limiter.script = [Denial(retry_at=NOW + 0.5, reason="quota"), Grant(LimiterState(), valid_until=NOW + 10)]
    w.limiter.turns = [NOW + 1.2]
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.SUCCEEDED
    assert w.limiter.lined_up == [Denial(retry_at=NOW + 0.5, reason="quota")]
    assert clock.slept == [pytest.approx(1.2)], "its turn, not the reset"

    w = world(answer(200, SUCCESS_BODY))
    w.limiter.known = Denial(retry_at=NOW + 0.5, reason="quota")
    w.limiter.turns = [NOW + 12]
    w.processor.process(UPLOAD)
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert (message.turn_at, message.in_line) == (NOW + 12, True), "a turn windows away: parked for it"
    assert len(w.limiter.lined_up) == 1, "one place"


def test_a_refusal_that_took_its_place_waits_for_that_place_not_for_the_reset() -> None:
    """The refusal's own write gave it a place: no second write for one, and a short wait ends at its turn."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [
        Denial(retry_at=NOW + 0.2, reason="quota", turn=NOW + 0.9),
        Grant(LimiterState(), valid_until=NOW + 10),
    ]
    w.processor.process(UPLOAD)
    assert clock.slept == [pytest.approx(0.9)]
    assert w.limiter.lined_up == []

    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 0.2, reason="quota", turn=NOW + 30))
    w.processor.process(UPLOAD)
    message = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert message.turn_at == NOW + 30, "the place its refusal took"
    assert message.in_line


@pytest.mark.parametrize("status", [401, 403, 404, 405, 406, 402])
def test_a_configuration_fault_or_spent_credits_opens_the_circuit_and_waits_for_its_probe(status: int) -> None:
    """The guide: repeated 4xx answers can suspend an integration. The fleet stops until a probe succeeds."""
    w = world(answer(status, {"code": status, "message": "refused", "detail": "check the key"}))
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.WAITING
    ((admission, outcome, seen_status),) = w.circuit.recorded
    assert isinstance(admission, Closed)
    assert outcome in {Outcome.CONFIGURATION, Outcome.CREDITS}
    assert seen_status == status
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert w.circuit.probe_at <= message.due_at <= w.circuit.probe_at + RESET_SPREAD_SECONDS
    assert message.attempt == 1, "the call was made: it counts"
    final = w.jobs.finished[-1]
    assert final["attempt"].http_status == status
    assert json.loads(final["attempt"].error_body)["detail"] == "check the key"
    assert _metric_names() >= {"CircuitOpened", "PicsartClientErrors"}


def test_an_open_circuit_parks_the_job_without_a_call_an_attempt_or_budget() -> None:
    w = world(answer(200, SUCCESS_BODY), admission=Open(retry_at=NOW + 120, reason="HTTP 401: bad key"))
    result = w.processor.process(UPLOAD, attempts_made=1)
    assert result.status is JobStatus.WAITING
    assert w.client.calls == []
    assert w.limiter.acquired == 0, "no budget is taken for a call that will not be made"
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert message.attempt == 1
    assert NOW + 120 <= message.due_at <= NOW + 120 + RESET_SPREAD_SECONDS
    assert "circuit open: HTTP 401: bad key" in w.jobs.finished[-1]["reason"]
    assert "CircuitBlocked" in _metric_names()


def test_a_probe_reports_its_answer_to_the_circuit() -> None:
    w = world(answer(200, SUCCESS_BODY), admission=Probe(lease_ms=1))
    assert w.processor.process(UPLOAD).status is JobStatus.SUCCEEDED
    ((admission, outcome, _),) = w.circuit.recorded
    assert (admission, outcome) == (Probe(lease_ms=1), Outcome.SUCCESS)


def test_the_budget_is_taken_right_before_the_call_after_the_record_and_the_presigned_url() -> None:
    """A grant counts in the second it was taken: nothing slow may come between it and the call."""
    w = world(answer(200, SUCCESS_BODY))
    order: list[str] = []
    w.limiter.acquire = lambda: (order.append("acquire"), Grant(LimiterState()))[1]  # type: ignore[method-assign]
    original_call = w.client.call_tool
    w.client.call_tool = lambda *a: (order.append("call"), original_call(*a))[1]  # type: ignore[method-assign]
    original_presign = w.store.presigned_get_url
    w.store.presigned_get_url = lambda *a: (order.append("presign"), original_presign(*a))[1]  # type: ignore[method-assign]
    w.processor.process(UPLOAD)
    assert order == ["presign", "acquire", "call"]
    assert w.jobs.started, "the record was started before"


def test_a_probe_without_budget_gives_its_turn_back() -> None:
    w = world(answer(200, SUCCESS_BODY), admission=Probe(lease_ms=1), denial=Denial(retry_at=NOW + 5, reason="quota"))
    assert w.processor.process(UPLOAD).status is JobStatus.WAITING
    assert w.client.calls == []
    assert w.circuit.recorded == [(Probe(lease_ms=1), None, None)]


def test_every_answer_is_reported_to_the_circuit() -> None:
    """Validation failures are counted by the circuit (a stream of 422s opens it); successes reset it."""
    for status, outcome in [(422, Outcome.PERMANENT), (200, Outcome.SUCCESS), (503, Outcome.TRANSIENT)]:
        w = world(answer(status, SUCCESS_BODY if status == 200 else {"code": status}))
        w.processor.process(UPLOAD)
        assert w.circuit.recorded == [(Closed(), outcome, status)]
    w = world(PicsartTransportError("timeout", "ReadTimeoutError"))
    w.processor.process(UPLOAD)
    assert w.circuit.recorded == [(Closed(), None, None)]


@pytest.mark.parametrize(
    ("status", "metric"),
    [
        (400, "PicsartClientErrors"),
        (422, "PicsartClientErrors"),
        (500, "PicsartServerErrors"),
        (429, "PicsartThrottled"),
    ],
)
def test_answers_are_counted_by_kind_for_the_alarms(status: int, metric: str) -> None:
    w = world(answer(status, {"code": status}))
    w.processor.process(UPLOAD)
    names = _metric_names()
    assert metric in names
    others = {"PicsartClientErrors", "PicsartServerErrors", "PicsartThrottled"} - {metric}
    assert not names & others


def _metric_names() -> set[str]:
    return set(metrics.metric_set)


# --- asynchronous tools (202 + transaction_id, polled through the delay queue) ----------------------------

ACCEPTED_BODY = {"status": "processing", "transaction_id": "tx-1"}


def test_an_accepted_async_job_is_polled_through_the_delay_queue_never_by_sleeping() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    result = w.processor.process(UPLOAD)
    assert (result.status, result.transaction_id) == (JobStatus.WAITING, "tx-1")
    (parked,) = w.parked()
    message = RetryMessage.model_validate_json(parked["MessageBody"])
    assert (message.transaction_id, message.polls, message.attempt) == ("tx-1", 0, 1)
    assert message.due_at == NOW + 1
    assert w.jobs.finished[-1]["transaction_id"] == "tx-1"
    assert w.sqs.sent == [parked], "nothing else: no result yet, no dead letter"


def test_a_duplicate_event_of_an_accepted_job_does_not_submit_it_again() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    w.processor.process(UPLOAD)
    again = w.processor.process(UPLOAD)
    assert again.duplicate is True
    assert len(w.client.calls) == 1


def test_polls_back_off_until_the_result_is_ready_then_store_it() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    w.processor.process(UPLOAD)
    w.client.poll_answers = [answer(202, ACCEPTED_BODY), answer(200, SUCCESS_BODY)]
    first = RetryMessage.model_validate_json(w.parked()[0]["MessageBody"])
    w.processor.resume(first.model_copy(update={"due_at": NOW}))
    second = RetryMessage.model_validate_json(w.parked()[1]["MessageBody"])
    assert (second.polls, second.attempt, second.due_at) == (1, 1, NOW + 2), "a 202 poll is not an attempt"
    done = w.processor.resume(second.model_copy(update={"due_at": NOW}))
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    assert w.client.polls == ["tx-1", "tx-1"]
    assert len(w.client.calls) == 1, "the job was submitted once"
    assert w.store.results[0]["key"] == "ultra-upscale/uploads/photo.jpg"
    assert [a["attempt"].poll for a in w.jobs.finished] == [None, 1, 2]


def test_an_unknown_transaction_is_submitted_again_rather_than_opening_the_circuit() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    w.processor.process(UPLOAD)
    w.client.poll_answers = [answer(404, {"code": 404, "message": "Not found"})]
    parked = RetryMessage.model_validate_json(w.parked()[0]["MessageBody"])
    result = w.processor.resume(parked.model_copy(update={"due_at": NOW}))
    assert result is not None
    assert result.status is JobStatus.WAITING
    retry = RetryMessage.model_validate_json(w.parked()[1]["MessageBody"])
    assert (retry.transaction_id, retry.attempt) == (None, 2)
    (_, (_, outcome, _)) = w.circuit.recorded
    assert outcome is Outcome.TRANSIENT


def test_a_result_never_ready_goes_to_the_dead_letter_queue_with_the_reason() -> None:
    w = world(answer(202, ACCEPTED_BODY), tool="ultra-upscale")
    w.client.poll_answers = [answer(202, ACCEPTED_BODY)]
    message = RetryMessage(
        bucket="input",
        key=UPLOAD.key,
        version_id="v1",
        etag="e1",
        attempt=1,
        due_at=NOW,
        reason="accepted",
        transaction_id="tx-1",
        polls=MAX_POLLS - 1,
    )
    result = w.processor.resume(message)
    assert result is not None
    assert result.status is JobStatus.FAILED
    (dead,) = w.dead_lettered()
    assert "not ready after 20 polls" in json.loads(dead["MessageBody"])["reason"]


def test_a_synchronous_tool_answering_202_fails_rather_than_waiting_for_nothing() -> None:
    w = world(answer(202, ACCEPTED_BODY))
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.FAILED
    assert "synchronous removebg" in (result.reason or "")


def test_work_an_invocation_has_no_time_for_is_handed_back_due_now_without_an_attempt() -> None:
    w = world(answer(200, SUCCESS_BODY))
    message = RetryMessage(bucket="input", key=UPLOAD.key, version_id="v1", attempt=2, due_at=NOW - 5, reason="x")
    w.processor.hand_back(message)
    (parked,) = w.parked()
    assert parked["DelaySeconds"] == 0
    assert RetryMessage.model_validate_json(parked["MessageBody"]).attempt == 2
    assert w.client.calls == []
    assert w.processor.time_needed_ms == (30 + 5) * 1000, "one call at the client's timeout, and a margin"


def test_resumed_work_that_must_wait_again_costs_only_its_message() -> None:
    """When the environment already knows the window's budget is taken, parked work that comes back costs
    no S3 read, no record write and no idempotency record, only the message that parks it again."""
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 10, reason="quota"))
    w.limiter.known = Denial(retry_at=NOW + 10, reason="quota")
    message = RetryMessage(
        bucket="input", key=UPLOAD.key, version_id="v1", etag="e1", attempt=1, due_at=NOW, reason="x"
    )
    result = w.processor.resume(message)
    assert result is not None
    assert result.status is JobStatus.WAITING
    assert (w.store.described, w.jobs.started, w.jobs.finished, w.once.final) == (0, [], [], {})
    (parked,) = w.parked()
    assert RetryMessage.model_validate_json(parked["MessageBody"]).attempt == 1


def test_a_new_upload_that_must_wait_is_recorded_as_waiting() -> None:
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 10, reason="quota"))
    w.processor.process(UPLOAD)
    assert w.store.described == 1, "checked before any budget is asked for"
    assert w.jobs.finished[-1]["status"] is JobStatus.WAITING


def test_resumed_work_is_described_again_once_it_may_call() -> None:
    """The object may have been deleted or replaced while the work waited."""
    w = world(answer(200, SUCCESS_BODY))
    message = RetryMessage(
        bucket="input", key=UPLOAD.key, version_id="v1", etag="e1", attempt=1, due_at=NOW, reason="x"
    )
    result = w.processor.resume(message)
    assert result is not None
    assert result.status is JobStatus.SUCCEEDED
    assert w.store.described == 1


def test_work_that_keeps_finding_its_version_in_progress_ends_in_the_dead_letter_queue() -> None:
    """Found by the soak: an invocation that dies every time leaves the version in progress again and again;
    each check sent a new message whose receive count started at zero, so the DLQ was never reached. No live
    invocation holds a version longer than Lambda's longest timeout."""
    w = world(answer(200, SUCCESS_BODY))
    w.once.in_flight = True
    message = RetryMessage(
        bucket="input", key=UPLOAD.key, version_id="v1", etag="e1", attempt=0, due_at=NOW, reason="x"
    )
    assert w.processor.resume(message) is not None
    checked = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    assert checked.in_flight_since == NOW
    still = checked.model_copy(update={"due_at": NOW, "in_flight_since": NOW - MAX_IN_FLIGHT_SECONDS + 1})
    assert w.processor.resume(still) is not None
    assert w.dead_lettered() == [], "within Lambda's longest timeout: checked again"
    stuck = checked.model_copy(update={"due_at": NOW, "in_flight_since": NOW - MAX_IN_FLIGHT_SECONDS - 1})
    result = w.processor.resume(stuck)
    assert result is not None
    assert result.status is JobStatus.FAILED
    (dead,) = w.dead_lettered()
    assert "keep failing before they finish" in json.loads(dead["MessageBody"])["reason"]


def test_work_that_had_a_place_in_line_and_came_early_keeps_its_turn() -> None:
    """Windows begin with their first call, so they drift later than planned: work that reached its place
    before its window reset comes back right after the reset, not at the end of the line."""
    w = world(answer(200, SUCCESS_BODY), denial=Denial(retry_at=NOW + 3, reason="quota"))
    w.limiter.known = Denial(retry_at=NOW + 3, reason="quota")
    message = RetryMessage(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", in_line=True
    )
    w.processor.resume(message)
    assert w.limiter.lined_up == []
    parked = RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"])
    lead = ASSUMED_PREPARATION_SECONDS + DELAY_ROUNDING_SECONDS  # no job prepared here yet: nothing timed
    assert NOW + 3 - lead <= parked.due_at <= NOW + 3 + RESET_SPREAD_SECONDS - lead
    assert parked.in_line


def test_a_budget_back_within_a_short_wait_is_waited_for_not_parked() -> None:
    """The spike arrest's next second, or a reset about to happen: a delay-queue hop would take longer."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Denial(retry_at=NOW + 0.4, reason="spike"), Grant(LimiterState(), valid_until=NOW + 10)]
    result = w.processor.process(UPLOAD)
    assert result.status is JobStatus.SUCCEEDED
    assert clock.slept == [pytest.approx(0.4)]
    assert (w.limiter.acquired, w.parked()) == (2, [])


def test_work_that_knows_the_budget_returns_soon_is_prepared_then_waits() -> None:
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.known = Denial(retry_at=NOW + 1.0, reason="quota")
    w.limiter.script = [Denial(retry_at=NOW + 1.0, reason="quota"), Grant(LimiterState(), valid_until=NOW + 10)]
    assert w.processor.process(UPLOAD).status is JobStatus.SUCCEEDED
    assert clock.slept == [pytest.approx(1.0)]


def test_work_back_on_time_for_its_turn_is_prepared_then_waits_rather_than_going_round_the_queue() -> None:
    """Work is due early by how long preparing a job takes here: back on time, its turn is further off than a
    short wait, but not once it is prepared. Judged from the moment it was taken up, it went round the delay
    queue again, at once when that lead was longer than a short wait (the bench: 5 to 18 hops a run)."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.store.describe = describe_taking(clock, ASSUMED_PREPARATION_SECONDS)  # type: ignore[method-assign]
    w.limiter.known = Denial(retry_at=NOW + 0.2, reason="quota")
    w.limiter.script = [Denial(retry_at=NOW + 0.2, reason="quota"), Grant(LimiterState(), valid_until=NOW + 10)]
    turn = NOW + ASSUMED_PREPARATION_SECONDS + SHORT_WAIT_SECONDS - 0.1
    message = RetryMessage(
        bucket="input", key=UPLOAD.key, version_id="v1", attempt=0, due_at=NOW, reason="x", in_line=True, turn_at=turn
    )
    assert w.processor.resume(message).status is JobStatus.SUCCEEDED
    assert w.parked() == []
    assert clock.slept == [pytest.approx(SHORT_WAIT_SECONDS - 0.1)], "prepared, it waits for its turn"

    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.known = Denial(retry_at=NOW + 0.2, reason="quota")
    farther = message.model_copy(update={"turn_at": NOW + ASSUMED_PREPARATION_SECONDS + SHORT_WAIT_SECONDS + 0.5})
    assert w.processor.resume(farther).status is JobStatus.WAITING
    assert (len(w.parked()), w.store.described, w.limiter.acquired) == (1, 0, 0), "parked before any S3 read or write"


def test_a_longer_wait_or_too_little_time_left_parks_the_job() -> None:
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Denial(retry_at=NOW + SHORT_WAIT_SECONDS + 0.5, reason="quota")]
    assert w.processor.process(UPLOAD).status is JobStatus.WAITING
    assert clock.slept == []

    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.processor.register_lambda_context(cast(Any, FakeContext(remaining_ms=w.processor.time_needed_ms + 100)))
    w.limiter.script = [Denial(retry_at=NOW + 1.0, reason="spike")]
    assert w.processor.process(UPLOAD).status is JobStatus.WAITING, "no time for the wait and the call"
    assert clock.slept == []


def test_short_waits_are_bounded() -> None:
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.denial = Denial(retry_at=NOW, reason="contention")  # never granted, always "in a moment"
    assert w.processor.process(UPLOAD).status is JobStatus.WAITING
    assert len(clock.slept) == MAX_SHORT_WAITS
    assert len(w.parked()) == 1


def test_a_grant_that_expired_in_its_write_is_counted_again_not_dropped() -> None:
    """A slow write can outlast the grant's second; the call is counted again where it lands (its quota unit
    kept) rather than risking a 429 or losing the unit. A full second is waited out, the unit still held."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_until=NOW - 0.1)]
    w.limiter.recounts = [Denial(retry_at=NOW + 0.3, reason="spike"), Grant(LimiterState(), valid_until=NOW + 0.9)]
    assert w.processor.process(UPLOAD).status is JobStatus.SUCCEEDED
    assert (w.limiter.acquired, w.limiter.recounted, len(w.client.calls)) == (1, 2, 1), "one unit, counted again"
    assert clock.slept == [pytest.approx(0.3)]


def test_an_expired_grant_whose_window_ended_takes_a_new_unit() -> None:
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_until=NOW - 0.1), Grant(LimiterState(), valid_until=NOW + 5)]
    assert w.processor.process(UPLOAD).status is JobStatus.SUCCEEDED
    assert (w.limiter.acquired, w.limiter.recounted, clock.slept) == (2, 1, [])
    assert len(w.client.calls) == 1


def test_a_grant_counted_in_the_next_second_is_sent_in_it_not_before() -> None:
    """Each call counts in one second of the spike arrest: a grant back before its second begins waits for it."""
    clock = Clock()
    w = world(answer(200, SUCCESS_BODY), clock=clock)
    w.limiter.script = [Grant(LimiterState(), valid_from=NOW + 0.3, valid_until=NOW + 1.1)]
    assert w.processor.process(UPLOAD).status is JobStatus.SUCCEEDED
    assert clock.slept == [pytest.approx(0.3)]
    assert (w.limiter.acquired, w.limiter.recounted, len(w.client.calls)) == (1, 0, 1)


def test_a_grant_that_keeps_expiring_parks_the_job_rather_than_risk_a_429() -> None:
    w = world(answer(200, SUCCESS_BODY), clock=Clock())
    expired = Grant(LimiterState(), valid_until=NOW - 0.1)
    w.limiter.script = [expired]
    w.limiter.recounts = [expired] * MAX_RECOUNTS
    assert w.processor.process(UPLOAD).status is JobStatus.WAITING
    assert w.client.calls == []
    assert "grant expired" in RetryMessage.model_validate_json(w.parked()[-1]["MessageBody"]).reason


def test_time_left_for_one_more_job_comes_from_the_registered_context() -> None:
    """The retry function hands work back, and a short wait is skipped, when the invocation is ending."""
    w = world(answer(200, SUCCESS_BODY))
    assert w.processor.has_time_for(), "no Lambda context: always"
    needed = w.processor.time_needed_ms
    w.processor.register_lambda_context(cast(Any, FakeContext(remaining_ms=needed - 1)))
    assert not w.processor.has_time_for()
    w.processor.register_lambda_context(cast(Any, FakeContext(remaining_ms=needed + 1000)))
    assert w.processor.has_time_for()
    assert w.processor.has_time_for(1.0)
    assert not w.processor.has_time_for(1.5)
