"""Fakes of the processor's collaborators, and a world of them around one UploadProcessor, shared by the tests of
the domain (tests/unit) and the functional tests that fake all but one collaborator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema

from picsart_adapter.circuit import Admission, Closed, Probe, Tripped
from picsart_adapter.completion_events import CompletionEvents
from picsart_adapter.delay_queue import DelayQueue, RetryMessage
from picsart_adapter.idempotency import DuplicateInFlight, is_kept
from picsart_adapter.jobs import ENDED, Attempt, JobRef, JobResult, JobStatus
from picsart_adapter.observability import metrics
from picsart_adapter.outcomes import Outcome
from picsart_adapter.picsart_client import PicsartResponse, RateLimitHeaders, parse_response
from picsart_adapter.processing import ProcessorSettings, UploadProcessor
from picsart_adapter.rate_limit import Denial, Grant, LimiterState
from picsart_adapter.retry_policy import RetryPolicy
from picsart_adapter.rules import Rules, default_rules, parse_rules, pipeline_hash
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

    def put_result(
        self,
        bucket: str,
        key: str,
        body: bytes,
        content_type: str,
        metadata: dict[str, str],
        tags: dict[str, str] | None = None,
    ) -> None:
        self.results.append(
            {
                "bucket": bucket,
                "key": key,
                "body": body,
                "content_type": content_type,
                "metadata": metadata,
                "tags": tags or {},
            }
        )

    def copy_original(self, obj: StoredObject, bucket: str, key: str, metadata: dict[str, str]) -> None:
        self.results.append({"bucket": bucket, "key": key, "copied_from": obj.key, "metadata": metadata})


@dataclass
class FakeJobs:
    started: list[dict[str, Any]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    #: Each record's status as its last write (start or finish) left it.
    statuses: dict[JobRef, JobStatus] = field(default_factory=dict)

    def start(self, ref: JobRef, details: dict[str, Any]) -> None:
        self.started.append({"ref": ref, **details})
        self.statuses[ref] = JobStatus.PROCESSING

    def finish(
        self,
        ref: JobRef,
        status: JobStatus,
        attempt: Attempt | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.finished.append({"ref": ref, "status": status, "attempt": attempt, "reason": reason, **(details or {})})
        self.statuses[ref] = status

    def record_waiting(
        self,
        ref: JobRef,
        attempt: Attempt | None,
        reason: str,
        details: dict[str, Any],
        keep_ending: bool = True,
    ) -> dict[str, Any] | None:
        """As JobStore's: with `keep_ending`, an ended record is kept and returned."""
        if keep_ending and self.statuses.get(ref) in ENDED:
            return {"status": self.statuses[ref].value}
        self.finish(ref, JobStatus.WAITING, attempt, reason, details)
        return None

    def get(self, ref: JobRef) -> dict[str, Any] | None:
        """The record as the last write left its status (enough for what reads it)."""
        mine = [record for record in self.finished if record["ref"] == ref]
        return {"status": mine[-1]["status"].value} if mine else None


JOB_EVENT_SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "picsart-job-event.schema.json"


@cache
def job_event_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(JOB_EVENT_SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def as_received(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A PutEvents entry as EventBridge delivers it to a rule's target."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "123456789012",
        "time": "2026-12-07T10:00:00Z",
        "region": "us-east-1",
        "resources": list(entry.get("Resources") or []),
        "detail": json.loads(entry["Detail"]),
    }


@dataclass
class RecordingEvents:
    """An EventBridge client that keeps every event put, each checked against the event's JSON Schema first: every
    test of the domain checks every event the code emits on its path."""

    received: list[dict[str, Any]] = field(default_factory=list)
    #: What each put_events answers, in turn, before the calls succeed: an Exception is raised, "fail" refuses
    #: the entry.
    script: list[Exception | str] = field(default_factory=list)
    calls: int = 0

    def put_events(self, *, Entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        for entry in Entries:
            job_event_validator().validate(as_received(entry))
        if self.script:
            next_answer = self.script.pop(0)
            if isinstance(next_answer, Exception):
                raise next_answer
            refused = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            return {"FailedEntryCount": len(Entries), "Entries": [refused for _ in Entries]}
        self.received.extend(as_received(entry) for entry in Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"e{len(self.received)}"} for _ in Entries]}

    @property
    def details(self) -> list[dict[str, Any]]:
        return [event["detail"] for event in self.received]


class FakeClient:
    def __init__(self, answer: PicsartResponse | Exception, result: bytes | Exception = b"\x89PNGresult") -> None:
        self.answer = answer
        self.result = result
        self.calls: list[tuple[Tool, str, ToolParameters]] = []
        self.downloads: list[str] = []
        self.polls: list[str] = []
        self.poll_answers: list[PicsartResponse] = []
        #: Answers given in turn, before `answer` (a pipeline's steps answering each its own).
        self.script: list[PicsartResponse] = []

    def call_tool(self, tool: Tool, image_url: str, parameters: ToolParameters) -> PicsartResponse:
        self.calls.append((tool, image_url, parameters))
        if self.script:
            return self.script.pop(0)
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
    #: What recheck answers, in turn, for a grant that waited for its second (None: it may go).
    rechecks: list[Denial | None] = field(default_factory=list)
    rechecked: int = 0
    #: The turns place_in_line gives, in order (then the denial's retry_at).
    turns: list[float] = field(default_factory=list)
    #: The balance as this environment's view of the item has it, and as a grant's write returns it (None: as
    #: the view).
    credits: int | None = None
    granted_credits: int | None = None
    credits_asked: list[float] = field(default_factory=list)

    def acquire(self) -> Grant | Denial:
        self.acquired += 1
        if self.script:
            return self.script.pop(0)
        credits = self.granted_credits if self.granted_credits is not None else self.credits
        return self.denial or Grant(LimiterState(credits=credits))

    def known_credits(self, max_age_seconds: float) -> int | None:
        self.credits_asked.append(max_age_seconds)
        return self.credits

    def recount(self, grant: Grant) -> Grant | Denial | None:
        self.recounted += 1
        return self.recounts.pop(0) if self.recounts else None

    def recheck(self) -> Denial | None:
        self.rechecked += 1
        return self.rechecks.pop(0) if self.rechecks else None

    def known_denial(self) -> Denial | None:
        return self.known

    def observe(
        self,
        headers: RateLimitHeaders,
        throttled: bool,
        received_at: float | None = None,
        sent_at: float | None = None,
    ) -> None:
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
    """Keeps final results per step the way Powertools Idempotency does (see the functional tests)."""

    final: dict[tuple[tuple[str, str | int], ...], JobResult] = field(default_factory=dict)
    in_flight: bool = False

    def register_lambda_context(self, context: Any) -> None:
        pass

    def run(self, step_key: dict[str, str | int], work: Any) -> JobResult:
        if self.in_flight:
            raise DuplicateInFlight("in progress")
        key = tuple(sorted(step_key.items()))
        if key in self.final:
            kept = self.final[key]
            return replace(kept, duplicate=True)
        result: JobResult = work()
        if is_kept(result):
            self.final[key] = result
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
    events: RecordingEvents = field(default_factory=RecordingEvents)

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
    rules: Rules | None = None,
) -> World:
    rules = rules or default_rules(TOOLS[tool], tool_parameters(tool))
    store = FakeStore(stored if stored is not None else stored_object())
    jobs = FakeJobs()
    client = FakeClient(picsart, result)
    sqs = RecordingSqs()
    limiter = FakeLimiter(denial)
    circuit = FakeCircuit(admission or Closed())
    once = FakeOnce()
    events = RecordingEvents()
    processor = UploadProcessor(
        settings=ProcessorSettings(
            rules=rules,
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
        events=CompletionEvents(events, "default", sleep=lambda seconds: None),
    )
    return World(processor, store, jobs, client, sqs, limiter, circuit, once, events)


def tool_parameters(tool: str) -> ToolParameters:
    """The parameters the world's default rule calls `tool` with."""
    if tool == "removebg":
        return RemoveBackgroundParameters.model_validate({"output_type": "cutout"})
    return TOOLS[tool].parameters_model.model_validate({})


def only(results: list[JobResult] | None) -> JobResult:
    """The one result of an upload whose rule runs one pipeline (or None when the work was re-delayed)."""
    if results is None:
        return cast(JobResult, None)
    assert len(results) == 1, f"expected one pipeline's result, got {results}"
    return results[0]


#: The credit floor `floored_rules` sets by default.
FLOOR = 500


def floored_rules(floor: int | None = FLOOR, tool: str = "removebg") -> Rules:
    """One rule, "keep-credits", that keeps the fleet's last `floor` credits (none: no floor), one step of `tool`."""
    rule: dict[str, object] = {"name": "keep-credits", "pipelines": ["cut"]}
    if floor is not None:
        rule["credit_floor"] = floor
    steps = [{"tool": tool, **({"parameters": {"output_type": "cutout"}} if tool == "removebg" else {})}]
    return parse_rules(json.dumps({"rules": [rule], "pipelines": {"cut": {"steps": steps}}}))


def parked_message(tool: str = "removebg", **fields: Any) -> RetryMessage:
    """A delay-queue message of the world's default rule (one pipeline named after `tool`), at its first step."""
    pipeline = default_rules(TOOLS[tool], tool_parameters(tool)).rules[0].pipelines[0]
    defaults = {"rule": tool, "pipeline": tool, "pipeline_hash": pipeline_hash(pipeline)}
    return RetryMessage.model_validate({**defaults, **fields})


SUCCESS_BODY = {"status": "success", "data": {"id": "9a2c6b1e", "url": RESULT_URL}}


ACCEPTED_BODY = {"status": "processing", "transaction_id": "tx-1"}


def fresh_metrics() -> Iterator[None]:
    """For an autouse fixture: the shared Metrics object would flush (and want a namespace) after 100 values;
    tests flush nothing."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()
