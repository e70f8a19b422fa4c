"""The job being worked on: one object version in this invocation, with what earlier attempts left behind, and
the settings every job is worked on with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.jobs import Attempt, JobRef
from picsart_adapter.s3_events import UploadedObject
from picsart_adapter.storage import StoredObject
from picsart_adapter.tools import Tool, ToolParameters

__all__ = ["Job", "ProcessorSettings", "counted"]


@dataclass(frozen=True)
class ProcessorSettings:
    tool: Tool
    parameters: ToolParameters
    output_bucket: str
    presigned_url_ttl_seconds: int
    max_attempts: int
    #: The longest one Picsart request may take (the client's timeout): how long a duplicate waits for the
    #: invocation already working on its version, and how much time an invocation keeps for one more job.
    request_timeout_seconds: float = 30.0


@dataclass
class Job:
    """One object version being worked on in this invocation, with what earlier attempts left behind."""

    #: The version as the event or the delay-queue message names it.
    upload: UploadedObject
    attempts_made: int
    correlation_ids: list[str] = field(default_factory=list)
    #: The object as S3 describes it now (read once a call is to be made, or first thing for a new upload).
    stored: StoredObject | None = None
    #: Taken up again from the delay queue (its job record exists already).
    resumed: bool = False
    #: An asynchronous tool's job at Picsart, polled until its result is ready.
    transaction_id: str | None = None
    polls: int = 0
    in_flight_since: float | None = None
    in_line: bool = False
    #: When its place in the fleet's line comes (epoch seconds).
    turn_at: float | None = None
    #: When this invocation took it up (epoch seconds).
    taken_up_at: float = field(default_factory=time.time)
    #: Messages parked while this invocation holds the version's once-per-version record, sent once it is
    #: released (None: not holding it, messages go at once).
    held_messages: list[RetryMessage] | None = None

    @property
    def ref(self) -> JobRef:
        if self.stored is not None:
            return JobRef(self.stored.bucket, self.stored.key, self.stored.version_ref)
        return JobRef(self.upload.bucket, self.upload.key, _version_ref_of_event(self.upload))

    def message(self, due_at: float, reason: str, attempts_made: int | None = None) -> RetryMessage:
        """The delay-queue message that takes this job up again at `due_at`."""
        known = self.stored or self.upload
        return RetryMessage(
            bucket=known.bucket,
            key=known.key,
            version_id=known.version_id,
            etag=known.etag,
            s3_request_id=self.upload.s3_request_id,
            attempt=self.attempts_made if attempts_made is None else attempts_made,
            due_at=due_at,
            reason=reason,
            picsart_correlation_ids=self.correlation_ids,
            transaction_id=self.transaction_id,
            polls=self.polls,
            in_flight_since=self.in_flight_since,
            in_line=self.in_line,
            turn_at=self.turn_at,
        )


def counted(attempt: Attempt, job: Job) -> Attempt:
    """A request that failed counts as an attempt. A tool call already has its number; a poll (which
    counts only when it fails) gets the next one."""
    attempt.number = max(attempt.number, job.attempts_made + 1)
    return attempt


def _version_ref_of_event(upload: UploadedObject) -> str:
    if upload.version_id:
        return f"version:{upload.version_id}"
    return f"etag:{upload.etag}" if upload.etag else "unknown"
