"""The SQS delay queue: work that must wait (throttled, or retrying) and the dead-letter queue.

SQS delays a message at most 900 s. Work due later is sent with the longest delay and carries its due time,
so the retry function sends it on again ("hops") until it is due. No Lambda sleeps through a wait longer
than a hop would take.
A message carries what resuming and reporting need, and nothing secret: no API key, no presigned URL (a step
after the first carries the step before's result URL, which Picsart gives without a signature of ours).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from picsart_adapter.s3_events import UploadedObject

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

MAX_DELAY_SECONDS = 900
#: The message attribute on work the adapter itself dead-lettered (its attempts used up, or unreadable).
GIVEN_UP_ATTRIBUTE = "dead_lettered_by"


class AnsweredStep(BaseModel):
    """A step Picsart answered (200) whose output could not be stored because fetching what it made failed: what
    the next attempt needs to fetch it again and store it with no second paid call."""

    model_config = ConfigDict(extra="ignore")

    #: The image the step made (its `data.url`, exactly as Picsart gave it); None for a data step, whose image
    #: is the step's own input.
    result_url: str | None = None
    #: A data step's answer (`data`), stored as the output.
    data: Any = None
    correlation_id: str | None = None
    http_status: int = 200


class RetryMessage(BaseModel):
    """One upload waiting for its next attempt."""

    model_config = ConfigDict(extra="ignore")

    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    version_id: str | None = None
    etag: str | None = None
    s3_request_id: str | None = None
    #: Attempts already made.
    attempt: int = Field(ge=0)
    #: Of those, the calls refused for the fleet's fault (a configuration fault or spent credits, which open the
    #: circuit): they do not count towards `MAX_ATTEMPTS` (`Job.circuit_refusals`).
    circuit_refusals: int = Field(default=0, ge=0)
    #: Throttles of the fleet's limiter item (or grants expired in its slow writes, `hot_item.ITEM_PRESSURE`) this
    #: job met in a row, each widening its next wait (`hot_item.throttled_job_due_at`); a grant ends the run.
    throttled_in_a_row: int = Field(default=0, ge=0)
    #: Epoch seconds at which the next attempt may start.
    due_at: float
    reason: str
    picsart_correlation_ids: list[str] = Field(default_factory=list)
    #: An asynchronous tool's job to poll (set once Picsart accepted the call with 202), and polls so far.
    transaction_id: str | None = None
    polls: int = Field(default=0, ge=0)
    #: Since when (epoch seconds) this work has found its version in progress in another invocation.
    in_flight_since: float | None = None
    #: Parked at a place in the fleet's line (see rate_limit): come back early, it keeps its turn.
    in_line: bool = False
    #: When that place comes (epoch seconds): it asks for budget then, not before.
    turn_at: float | None = None
    #: The rule and pipeline the work runs, the pipeline's definition when it was parked (`rules.pipeline_hash`),
    #: and the step (0-based) to take up. No pipeline: the upload has not been matched to a rule yet.
    rule: str | None = None
    pipeline: str | None = None
    pipeline_hash: str | None = None
    step: int = Field(default=0, ge=0)
    #: The step's input when it is not the first: the step before's `data.url`, exactly as Picsart gave it, and
    #: when it was given (epoch seconds; an input too old to reuse makes the pipeline run again).
    input_url: str | None = None
    input_url_at: float | None = None
    #: The Picsart correlation id of each step done so far, in step order.
    step_correlation_ids: list[str] = Field(default_factory=list)
    #: How often the pipeline was run again from its first step.
    reruns: int = Field(default=0, ge=0)
    #: The operator's request that sent this work again (`picsart-local redrive` or `reprocess`, and when): a new
    #: run whose steps are called again even where an earlier run ended for good (`Job.step_key`).
    replay: str | None = None
    #: The step is answered and only its output is still to be fetched (`AnsweredStep`).
    answered: AnsweredStep | None = None

    def upload(self) -> UploadedObject:
        return UploadedObject(
            bucket=self.bucket,
            key=self.key,
            etag=self.etag,
            version_id=self.version_id,
            s3_request_id=self.s3_request_id,
        )


def delay_for(due_at: float, now: float) -> int:
    """DelaySeconds for a message due at `due_at`: rounded up, within SQS's 0..900."""
    return max(0, min(MAX_DELAY_SECONDS, math.ceil(due_at - now)))


def in_turn_order(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A batch's SQS records, the earliest turn (or due time) first. A batch is processed one record after the
    other, and records with close turns come together (their delays round up to the same second): taken as
    received, a later turn would be waited for first and the earlier ones behind it would be late. Records that
    cannot be read come first (they are dead-lettered at once):
    test_a_batch_is_taken_in_turn_order_unreadable_records_first."""

    def when(record: Mapping[str, Any]) -> float:
        try:
            message = RetryMessage.model_validate_json(record.get("body") or "")
        except ValidationError:
            return -math.inf
        return message.turn_at if message.turn_at is not None else message.due_at

    return sorted(records, key=when)


class DelayQueue:
    def __init__(self, sqs: SQSClient, queue_url: str, dead_letter_queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._dead_letter_queue_url = dead_letter_queue_url

    def schedule(self, message: RetryMessage, now: float) -> int:
        """Park the work until its due time (or the longest SQS delay, for a hop). Returns the delay."""
        delay = delay_for(message.due_at, now)
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=message.model_dump_json(),
            DelaySeconds=delay,
            MessageAttributes=_attributes(message, message.reason),
        )
        return delay

    def dead_letter(self, message: RetryMessage | str, reason: str) -> None:
        """Give the work up with its reason, where operators look for it. A message that could not be
        read is dead-lettered as the raw body it came as."""
        if isinstance(message, RetryMessage):
            body = message.model_copy(update={"reason": reason}).model_dump_json()
        else:
            body = message
        attributes = _attributes(message if isinstance(message, RetryMessage) else None, reason)
        # Tells work the adapter gave up from work SQS moved after maxReceiveCount, which `picsart-local redrive`
        # sends back as it is (test_work_the_adapter_gives_up_is_marked_as_given_up).
        attributes[GIVEN_UP_ATTRIBUTE] = {"DataType": "String", "StringValue": "adapter"}
        self._sqs.send_message(QueueUrl=self._dead_letter_queue_url, MessageBody=body, MessageAttributes=attributes)


def _attributes(message: RetryMessage | None, reason: str) -> dict[str, MessageAttributeValueTypeDef]:
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        "reason": {"DataType": "String", "StringValue": reason[:1000]},
    }
    if message is None:
        return attributes
    attributes["attempt"] = {"DataType": "Number", "StringValue": str(message.attempt)}
    if message.s3_request_id:
        # The S3 request id travels as an attribute, so the retry function logs it as its correlation id.
        attributes["s3_request_id"] = {"DataType": "String", "StringValue": message.s3_request_id}
    return attributes
