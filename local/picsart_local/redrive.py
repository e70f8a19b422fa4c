"""`picsart-local redrive`: the dead-letter queue's work sent back to the delay queue for another try.

The dead-letter queue holds three kinds of message, each shown with its reason before anything moves:
- **given up by the adapter** (`dead_lettered_by` attribute, delay_queue.py): a job whose attempts ran out (or
  whose version stayed in progress, or whose result was never ready). Its step has a final record, so it goes
  back as a *replay*: a new run (`RetryMessage.replay`, part of the step's idempotency key) with its attempts,
  polls and place in the line reset, since a person asked for another full try. Its job record says so
  (`waiting`, the replay, the reason) and keeps every earlier attempt.
- **moved by SQS** after the delay queue's maxReceiveCount (the retry function failed on it that often): a job
  whose attempts are not used up, sent back as it is.
- **a failed invocation** of the upload function (Lambda's on-failure destination keeps the S3 event as the
  body, the error in `ErrorMessage`): each upload in it becomes a fresh job message (no rule yet), which the
  retry function takes up as a new upload; work that invocation finished is answered from its records.
An s3:TestEvent (S3's check of a new notification, which names no upload) is removed: there is nothing to redo.
A message that is none of these (a body no attempt can read) is left in the dead-letter queue.

SQS's own redrive (`StartMessageMoveTask`) moves every message as it is, so it applies when every message is
moved-by-SQS work; otherwise, or where the service does not offer it (moto), each message is received, sent to
the delay queue and deleted, with the same effect.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from picsart_adapter.delay_queue import GIVEN_UP_ATTRIBUTE, DelayQueue, RetryMessage
from picsart_adapter.jobs import JobRef, JobStore
from picsart_adapter.s3_events import MalformedEventError, UploadedObject, is_s3_test_event, parse_s3_event

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

#: How long the listed messages stay hidden from other readers while the operator decides.
HOLD_SECONDS: Final = 600
#: The most messages one run lists and moves.
DEFAULT_LIMIT: Final = 1000
#: How long `redrive` follows SQS's move task before it leaves it running.
MOVE_TASK_WAIT_SECONDS: Final = 120

Kind = Literal["given-up", "moved-by-sqs", "failed-invocation", "test-event", "unreadable"]


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter message, what it is about, why it is there, and what goes back for it."""

    message_id: str
    receipt_handle: str
    kind: Kind
    subject: str
    reason: str
    #: What is sent to the delay queue for it (none: it stays in the dead-letter queue).
    outgoing: tuple[RetryMessage, ...] = ()
    #: The records to mark as waiting again (given-up jobs).
    reopened: tuple[JobRef, ...] = ()

    @property
    def movable(self) -> bool:
        """Whether something is done with it: sent back, or (an s3:TestEvent, which names no upload) removed."""
        return bool(self.outgoing) or self.kind == "test-event"

    @property
    def what_goes_back(self) -> str:
        if self.kind == "given-up":
            return f"a new run, attempts reset ({self.outgoing[0].replay})"
        if self.kind == "moved-by-sqs":
            return "as it is"
        if self.kind == "failed-invocation":
            count = len(self.outgoing)
            return f"{count} new job{'s' if count != 1 else ''} for the upload{'s' if count != 1 else ''}"
        if self.kind == "test-event":
            return "nothing to redo (it names no upload): removed"
        return "nothing: it stays in the dead-letter queue"


@dataclass(frozen=True)
class RedrivePlan:
    letters: tuple[DeadLetter, ...]
    replay: str

    @property
    def movable(self) -> list[DeadLetter]:
        return [letter for letter in self.letters if letter.movable]

    @property
    def left(self) -> list[DeadLetter]:
        return [letter for letter in self.letters if not letter.movable]

    @property
    def native_applies(self) -> bool:
        """SQS's move task moves every message as it is: it fits only when each one goes back as it is."""
        return bool(self.letters) and all(letter.kind == "moved-by-sqs" for letter in self.letters)


@dataclass
class RedriveResult:
    moved: int = 0
    jobs_sent: int = 0
    removed: int = 0
    left: int = 0
    how: str = ""
    notes: list[str] = field(default_factory=list)


def replay_id(now: float, command: str = "redrive") -> str:
    """The operator's request, as records and messages name it: `redrive 2026-12-07T10:15:00Z`."""
    return f"{command} {datetime.fromtimestamp(now, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def list_dead_letters(sqs: SQSClient, queue_url: str, limit: int = DEFAULT_LIMIT) -> list[MessageTypeDef]:
    """Every message of the queue (up to `limit`), each held out of sight for HOLD_SECONDS so the listing
    reaches past the first ten and nobody else takes them meanwhile."""
    found: list[MessageTypeDef] = []
    while len(found) < limit:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(found)),
            VisibilityTimeout=HOLD_SECONDS,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        found.extend(messages)
    return found


def plan_redrive(
    messages: Sequence[MessageTypeDef],
    now: float,
    record_of: Callable[[JobRef], Mapping[str, Any] | None] = lambda _ref: None,
) -> RedrivePlan:
    """What each message is and what goes back for it (pure but for `record_of`, which reads a job record to
    recognise work an earlier version of the adapter gave up without marking it)."""
    replay = replay_id(now)
    return RedrivePlan(tuple(classify(message, now, replay, record_of) for message in messages), replay)


def classify(
    message: MessageTypeDef,
    now: float,
    replay: str,
    record_of: Callable[[JobRef], Mapping[str, Any] | None] = lambda _ref: None,
) -> DeadLetter:
    attributes = {name: value.get("StringValue", "") for name, value in message.get("MessageAttributes", {}).items()}
    system = message.get("Attributes", {})
    body = message.get("Body", "")
    ids = (message.get("MessageId", ""), message.get("ReceiptHandle", ""))
    job = _job_in(body)
    if job is not None:
        subject = _subject(job.upload(), job.pipeline, job.step)
        ref = _ref_of(job)
        record = record_of(ref) if ref is not None else None
        given_up = GIVEN_UP_ATTRIBUTE in attributes or (
            "DeadLetterQueueSourceArn" not in system
            and record is not None
            and record.get("status") == "failed"
            and bool(record.get("dead_lettered"))
        )
        if given_up:
            back = job.model_copy(
                update={
                    "attempt": 0,
                    "polls": 0,
                    "due_at": now,
                    "in_flight_since": None,
                    "in_line": False,
                    "turn_at": None,
                    "reason": f"{replay}: {attributes.get('reason') or job.reason}",
                    "replay": replay,
                }
            )
            reopened = (ref,) if ref is not None and job.pipeline is not None else ()
            return DeadLetter(*ids, "given-up", subject, attributes.get("reason") or job.reason, (back,), reopened)
        receives = system.get("ApproximateReceiveCount", "?")
        reason = f"moved by SQS after {receives} receives (the retry function failed on it); parked for: {job.reason}"
        return DeadLetter(*ids, "moved-by-sqs", subject, reason, (job,))
    if _is_test_event(body):
        reason = (
            f"an s3:TestEvent the upload function failed on: {attributes.get('ErrorMessage') or 'no error message'}"
        )
        return DeadLetter(*ids, "test-event", "an s3:TestEvent (S3's check of the notification)", reason)
    uploads = _uploads_in(body)
    if uploads:
        error = attributes.get("ErrorMessage") or "no error message"
        request = attributes.get("RequestID")
        reason = f"the upload function's invocation failed{f' (request {request})' if request else ''}: {error}"
        fresh = tuple(
            RetryMessage(
                bucket=upload.bucket,
                key=upload.key,
                version_id=upload.version_id,
                etag=upload.etag,
                s3_request_id=upload.s3_request_id,
                attempt=0,
                due_at=now,
                reason=f"{replay}: {reason}",
            )
            for upload in uploads
        )
        subject = ", ".join(_subject(upload, None, 0) for upload in uploads)
        return DeadLetter(*ids, "failed-invocation", subject, reason, fresh)
    reason = attributes.get("reason") or attributes.get("ErrorMessage") or "not a job and not an S3 event"
    return DeadLetter(*ids, "unreadable", f"a body of {len(body)} characters", reason)


def render_plan(plan: RedrivePlan, queue_url: str) -> str:
    """Each message with its reason first, then what goes back for it."""
    lines = [f"Dead-letter queue {queue_url}: {len(plan.letters)} message{'s' if len(plan.letters) != 1 else ''}"]
    for number, letter in enumerate(plan.letters, start=1):
        lines.append(f"{number:>3}. {letter.kind}: {letter.subject}")
        lines.append(f"     reason:  {letter.reason}")
        lines.append(f"     back as: {letter.what_goes_back}")
    return "\n".join(lines) + "\n"


def carry_out(
    plan: RedrivePlan,
    sqs: SQSClient,
    jobs: JobStore,
    delay_queue_url: str,
    dead_letter_queue_url: str,
    *,
    mover: SQSClient | None = None,
    now: Callable[[], float] = time.time,
) -> RedriveResult:
    """Move what goes back to the delay queue; release what stays. `mover` makes the move-task request (a
    client that tries once: a service without the action answers an error, retried for nothing otherwise)."""
    result = RedriveResult(left=len(plan.left))
    for letter in plan.left:
        _release(sqs, dead_letter_queue_url, letter.receipt_handle)
    if not plan.movable:
        result.how = "nothing to move"
        return result
    if plan.native_applies:
        moved = _move_task(mover or sqs, plan, delay_queue_url, dead_letter_queue_url, result)
        if moved is not None:
            result.moved = result.jobs_sent = moved
            return result
        plan = _held_again(sqs, dead_letter_queue_url, plan)
    else:
        result.how = "one by one (receive, send to the delay queue, delete): not every message goes back as it is"
    queue = DelayQueue(sqs, delay_queue_url, dead_letter_queue_url)
    for letter in plan.movable:
        # The record says the job waits again before its message can reach the retry function.
        for ref in letter.reopened:
            reason = f"{plan.replay}: sent back from the dead-letter queue, where it was for: {letter.reason}"
            jobs.reopen(ref, reason, {"replay": plan.replay})
        for message in letter.outgoing:
            queue.schedule(message, now())
            result.jobs_sent += 1
        sqs.delete_message(QueueUrl=dead_letter_queue_url, ReceiptHandle=letter.receipt_handle)
        if letter.outgoing:
            result.moved += 1
        else:
            result.removed += 1
    return result


def _move_task(
    sqs: SQSClient, plan: RedrivePlan, delay_queue_url: str, dead_letter_queue_url: str, result: RedriveResult
) -> int | None:
    """SQS's own redrive from the dead-letter queue to the delay queue, followed until it ends; None when the
    service does not offer it (then `result.how` says so and the caller moves the messages itself)."""
    for letter in plan.letters:
        _release(sqs, dead_letter_queue_url, letter.receipt_handle)
    source = _queue_arn(sqs, dead_letter_queue_url)
    destination = _queue_arn(sqs, delay_queue_url)
    try:
        handle = sqs.start_message_move_task(SourceArn=source, DestinationArn=destination)["TaskHandle"]
    except (ClientError, BotoCoreError) as error:
        result.how = f"one by one: SQS's message move task is not available here ({_short(error)})"
        return None
    result.how = f"SQS's message move task {handle}"
    deadline = time.monotonic() + MOVE_TASK_WAIT_SECONDS
    while time.monotonic() < deadline:
        tasks = sqs.list_message_move_tasks(SourceArn=source, MaxResults=1).get("Results", [])
        task = tasks[0] if tasks else {}
        status = task.get("Status")
        if status in {"COMPLETED", "FAILED", "CANCELLED"}:
            if status != "COMPLETED":
                result.notes.append(f"the move task ended {status}: {task.get('FailureReason', '')}")
            return int(task.get("ApproximateNumberOfMessagesMoved", 0))
        time.sleep(2)
    result.notes.append(f"the move task is still running after {MOVE_TASK_WAIT_SECONDS} s; it goes on without us")
    return len(plan.letters)


def _held_again(sqs: SQSClient, queue_url: str, plan: RedrivePlan) -> RedrivePlan:
    """The messages were released for a move task that did not start: held again (new receipt handles) to be
    moved one by one. Only those listed before move; any that arrived since are released."""
    fresh = list_dead_letters(sqs, queue_url)
    handles = {message.get("MessageId", ""): message.get("ReceiptHandle", "") for message in fresh}
    listed = {letter.message_id for letter in plan.letters}
    for message in fresh:
        if message.get("MessageId") not in listed:
            _release(sqs, queue_url, message.get("ReceiptHandle", ""))
    letters = tuple(
        replace(letter, receipt_handle=handles[letter.message_id])
        for letter in plan.letters
        if letter.message_id in handles
    )
    return replace(plan, letters=letters)


def _release(sqs: SQSClient, queue_url: str, receipt_handle: str) -> None:
    with contextlib.suppress(ClientError):  # already visible again: nothing held
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)


def _queue_arn(sqs: SQSClient, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _short(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "")
        return f"{code}: {details.get('Message', '')}"[:120] if not code.isdigit() else f"HTTP {code}"
    return str(error)[:120]


def _job_in(body: str) -> RetryMessage | None:
    try:
        return RetryMessage.model_validate_json(body)
    except ValidationError:
        return None


def _is_test_event(body: str) -> bool:
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        return False
    return isinstance(document, dict) and is_s3_test_event(document)


def _uploads_in(body: str) -> list[UploadedObject]:
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        return []
    if not isinstance(document, dict) or "Records" not in document:
        return []
    try:
        notification = parse_s3_event(document)
    except MalformedEventError:
        return []
    # An event with records no one can read stays where it is, whole: nothing of it is lost.
    return [] if notification.malformed else list(notification.uploads)


def _ref_of(job: RetryMessage) -> JobRef | None:
    if job.version_id:
        version_ref = f"version:{job.version_id}"
    elif job.etag:
        version_ref = f"etag:{job.etag}"
    else:
        return None
    return JobRef(job.bucket, job.key, version_ref, job.pipeline)


def _subject(upload: UploadedObject, pipeline: str | None, step: int) -> str:
    version = f"version {upload.version_id}" if upload.version_id else f"etag {upload.etag or '?'}"
    where = f", pipeline {pipeline}, step {step + 1}" if pipeline else ""
    return f"s3://{upload.bucket}/{upload.key} ({version}{where})"


def release_all(sqs: SQSClient, queue_url: str, plan: RedrivePlan) -> None:
    """Nothing moves (a dry run, or the operator said no): every listed message is visible again at once."""
    for letter in plan.letters:
        _release(sqs, queue_url, letter.receipt_handle)
