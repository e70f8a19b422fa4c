"""Parking work in the delay queue, at its step: deferred for the fleet's budget, retried later, polled later,
held for the fleet's circuit or for its rule's credit floor, a duplicate checked again later, its next step left
to another invocation, or, attempts used up, dead-lettered with its reason (and the rule's failure policy
applied)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from picsart_adapter.circuit import Open
from picsart_adapter.completion_events import CompletionEvents
from picsart_adapter.credit_floor import FloorReached
from picsart_adapter.delay_queue import DelayQueue, RetryMessage
from picsart_adapter.job import Job, ProcessorSettings
from picsart_adapter.job_budget import JobBudget
from picsart_adapter.jobs import Attempt, JobResult, JobStatus, JobStore
from picsart_adapter.observability import MetricUnit, logger, metrics
from picsart_adapter.outcomes import Outcome
from picsart_adapter.outputs import Outputs
from picsart_adapter.rate_limit import Denial
from picsart_adapter.rate_limit.hot_item import THROTTLED
from picsart_adapter.retry_policy import MAX_POLLS, RetryPolicy

__all__ = ["MAX_IN_FLIGHT_SECONDS", "Parking"]

#: Lambda's longest timeout and a margin: no live invocation holds a version "in progress" longer.
MAX_IN_FLIGHT_SECONDS = 900.0 + 60.0


class Parking:
    """Sends jobs to the delay queue (or the dead-letter queue) and records why they wait or were given up."""

    def __init__(
        self,
        settings: ProcessorSettings,
        queue: DelayQueue,
        jobs: JobStore,
        retry_policy: RetryPolicy,
        budget: JobBudget,
        outputs: Outputs,
        clock: Callable[[], float],
        events: CompletionEvents,
    ) -> None:
        self._events = events
        self._outputs = outputs
        self._settings = settings
        self._queue = queue
        self._jobs = jobs
        self._retry_policy = retry_policy
        self._budget = budget
        self._clock = clock

    def await_result(self, job: Job, attempt: Attempt, transaction_id: str) -> JobResult:
        """An asynchronous job is accepted or still running: poll it later through the delay queue."""
        now = self._clock()
        job.transaction_id = transaction_id
        job.attempts_made = max(job.attempts_made, attempt.number)
        if job.polls >= MAX_POLLS:
            reason = f"the result of transaction {transaction_id} was not ready after {job.polls} polls"
            return self._dead_letter(job, job.message(now, reason), attempt, reason, {})
        reason = f"accepted: polling transaction {transaction_id}"
        message = job.message(self._retry_policy.poll_due_at(job.polls, now), reason)
        if (ended := self._park(job, message, now, attempt, {"transaction_id": transaction_id})) is not None:
            return ended
        metrics.add_metric(name="JobsPolling", unit=MetricUnit.Count, value=1)
        return JobResult(
            JobStatus.WAITING,
            reason=reason,
            picsart_correlation_id=attempt.picsart_correlation_id,
            http_status=attempt.http_status,
            picsart_correlation_ids=job.correlation_ids,
            transaction_id=transaction_id,
        )

    def retry_later(self, job: Job, attempt: Attempt, outcome: Outcome, reset_at: float | None) -> JobResult:
        """Park the job in the delay queue, or dead-letter it when its attempts are used up (the calls refused
        for the fleet's fault, `Job.circuit_refusals`, do not count)."""
        now = self._clock()
        status_text = attempt.error or (f"HTTP {attempt.http_status}" if attempt.http_status else "no answer")
        message = job.message(
            self._retry_policy.due_at(outcome, attempt.number, now, reset_at),
            f"{outcome.value}: {status_text}",
            attempts_made=attempt.number,
        )
        details = {"http_status": attempt.http_status} if attempt.http_status else {}
        if attempt.number - job.circuit_refusals >= self._settings.max_attempts:
            where = f"{job.step_label}: " if job.pipeline else ""
            reason = f"{where}gave up after {attempt.number} attempts; last: {message.reason}"
            return self._dead_letter(job, message, attempt, reason, details)
        if (ended := self._park(job, message, now, attempt, details)) is not None:
            return ended
        metrics.add_metric(name="JobsDelayed", unit=MetricUnit.Count, value=1)
        return JobResult(
            JobStatus.WAITING,
            reason=message.reason,
            picsart_correlation_id=attempt.picsart_correlation_id,
            http_status=attempt.http_status,
            picsart_correlation_ids=job.correlation_ids,
        )

    def _dead_letter(
        self, job: Job, message: RetryMessage, attempt: Attempt, reason: str, details: dict[str, Any]
    ) -> JobResult:
        self._queue.dead_letter(message, reason)
        logger.error("job dead-lettered", extra={"reason": reason})
        reason, fallback = self._outputs.copy_original(job, reason)
        self._jobs.finish(job.ref, JobStatus.FAILED, attempt, reason, {**details, **fallback, "dead_lettered": True})
        metrics.add_metric(name="JobsDeadLettered", unit=MetricUnit.Count, value=1)
        result = JobResult(
            JobStatus.FAILED,
            reason=reason,
            output_key=fallback.get("output_key"),
            picsart_correlation_id=attempt.picsart_correlation_id,
            http_status=attempt.http_status,
            picsart_correlation_ids=job.correlation_ids,
            pipeline=job.pipeline_name,
        )
        self._events.job_ended(
            job,
            result,
            attempt,
            output_bucket=fallback.get("output_bucket"),
            output_keys=[result.output_key],
            dead_lettered=True,
        )
        return result

    def defer(self, job: Job, denial: Denial, record: bool = False) -> JobResult:
        """The fleet's budget is spent: park the job until it returns. No call was made, so no attempt.
        The record is updated for a new upload, or when this attempt already marked it as processing."""
        now = self._clock()
        due_at = self._budget.due_back_at(job, denial, now)
        why = (
            "the limiter item is throttled by DynamoDB"
            if denial.reason == THROTTLED
            else f"the fleet's {denial.reason} budget is spent"
        )
        message = job.message(due_at, f"rate limit: {why}")
        if (ended := self._park(job, message, now, record=record or not job.resumed)) is not None:
            return ended
        metrics.add_metric(name="CallsDeferred", unit=MetricUnit.Count, value=1)
        return JobResult(JobStatus.WAITING, reason=message.reason, picsart_correlation_ids=job.correlation_ids)

    def hold_for_circuit(self, job: Job, circuit: Open) -> JobResult:
        """The fleet's circuit is open: park the job until the next probe may go. No call, no attempt."""
        now = self._clock()
        message = job.message(
            self._retry_policy.after_budget_returns(circuit.retry_at, now), f"circuit open: {circuit.reason}"
        )
        if (ended := self._park(job, message, now, record=not job.resumed)) is not None:
            return ended
        metrics.add_metric(name="CircuitBlocked", unit=MetricUnit.Count, value=1)
        return JobResult(JobStatus.WAITING, reason=message.reason, picsart_correlation_ids=job.correlation_ids)

    def hold_for_credit_floor(self, job: Job, reached: FloorReached, record: bool = False) -> JobResult:
        """The job's rule keeps the last credits the fleet has left: park it until it looks again
        (`credit_floor_hold_seconds`).
        No call, no attempt. The record is updated for a new upload, or when this attempt already marked it as
        processing (`record`), and keeps the attempts made."""
        now = self._clock()
        message = job.message(now + self._settings.credit_floor_hold_seconds, reached.reason)
        details = {"attempt_count": job.attempts_made}
        if (ended := self._park(job, message, now, details=details, record=record or not job.resumed)) is not None:
            return ended
        metrics.add_metric(name="HeldForCreditFloor", unit=MetricUnit.Count, value=1)
        return JobResult(JobStatus.WAITING, reason=message.reason, picsart_correlation_ids=job.correlation_ids)

    def continue_later(self, job: Job) -> JobResult:
        """A step is done and this invocation has no time left for the next: it is left to another, due now (not
        an attempt; the record keeps `processing` with the steps done)."""
        now = self._clock()
        message = job.message(now, f"{job.step_label} next: left to another invocation")
        self._park(job, message, now, record=False)  # no record written, so none found ended: always parked
        metrics.add_metric(name="JobsHandedBack", unit=MetricUnit.Count, value=1)
        return JobResult(JobStatus.WAITING, reason=message.reason, picsart_correlation_ids=job.correlation_ids)

    def park_duplicate(self, job: Job) -> JobResult:
        """Another invocation is working on this version. Dropping the duplicate would lose the upload if
        that invocation crashed, so it comes back once the work in flight is over (then it is a no-op)."""
        now = self._clock()
        job.in_flight_since = job.in_flight_since or now
        message = job.message(
            self._retry_policy.after_budget_returns(now + self._settings.request_timeout_seconds, now),
            "duplicate delivery: another invocation is working on this version",
        )
        if now - job.in_flight_since > MAX_IN_FLIGHT_SECONDS:
            # No invocation holds a version longer than Lambda's longest timeout: one that stays "in progress"
            # is being worked on by invocations that die every time, and each check would send a new message
            # whose receive count starts at zero, so the DLQ would never be reached.
            reason = (
                f"still in progress after {now - job.in_flight_since:.0f} s: the invocations working on this "
                "version keep failing before they finish"
            )
            self._queue.dead_letter(message, reason)
            metrics.add_metric(name="JobsDeadLettered", unit=MetricUnit.Count, value=1)
            logger.error("job dead-lettered", extra={"reason": reason})
            # The job ends here, in this delivery: its event is this delivery's to put.
            result = JobResult(
                JobStatus.FAILED, reason=reason, duplicate=True, picsart_correlation_ids=job.correlation_ids
            )
            self._events.job_ended(job, result, dead_lettered=True)
            return result
        self._queue.schedule(message, now)
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        logger.info("duplicate delivery while in flight; checked again later", extra={"reason": message.reason})
        return JobResult(JobStatus.WAITING, reason=message.reason, duplicate=True)

    def _park(
        self,
        job: Job,
        message: RetryMessage,
        now: float,
        attempt: Attempt | None = None,
        details: dict[str, Any] | None = None,
        record: bool = True,
    ) -> JobResult | None:
        """Record the job as waiting until its due time, then send it to the delay queue; None once parked.
        Work that waits again without an attempt (resumed before its budget returned) keeps the record it has:
        a write per wait would cost more than it tells.

        The record comes first: another environment may take the message as soon as it is sent and end the
        job, and a waiting record written after that would overwrite the ending for good
        (test_a_new_upload_is_recorded_as_waiting_before_its_message_can_be_taken). An invocation that ends
        between the two leaves its own event or message undeleted, so the work is delivered again. A record
        that has ended already (an S3 event delivered again after the upload was processed) is kept, nothing
        is sent, and the ending is returned."""
        if record:
            due = datetime.fromtimestamp(message.due_at, UTC).isoformat(timespec="milliseconds")
            details = {**job.record_identity, **(details or {}), "due_at": due}
            ended = self._jobs.record_waiting(job.ref, attempt, message.reason, details, keep_ending=job.replay is None)
            if ended is not None:
                return self._already_ended(job, ended)
        if job.held_messages is None:
            self._send_parked(message, now)
        else:
            job.held_messages.append(message)
        return None

    @staticmethod
    def _already_ended(job: Job, record: dict[str, Any]) -> JobResult:
        """The job's record had ended when it was to be parked: the ending, as a duplicate's answer."""
        status = JobStatus(str(record["status"]))  # present: the write is refused only for an ended status
        logger.info("the job had ended already: its record is kept, and nothing is parked", extra={"status": status})
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        return JobResult(
            status,
            reason=f"already {status.value}: nothing parked",
            output_key=record.get("output_key"),
            picsart_correlation_id=record.get("picsart_correlation_id"),
            picsart_correlation_ids=job.correlation_ids,
            duplicate=True,
            rule=job.rule_name,
            pipeline=job.pipeline_name,
        )

    @staticmethod
    def hold_messages(job: Job) -> None:
        """From now on, what is parked for the job is held on it until `send_held_messages`: for while this
        invocation holds the version's once-per-version record."""
        job.held_messages = []

    def send_held_messages(self, job: Job) -> None:
        """Send what was parked while this invocation held the version, now that it is released. Sent while
        it is held, a message delivered at once finds the version in progress and is taken for a duplicate
        of itself (test_work_parked_by_the_invocation_holding_its_version_is_not_its_own_duplicate)."""
        held, job.held_messages = job.held_messages or [], None
        for message in held:
            self._send_parked(message, self._clock())

    def _send_parked(self, message: RetryMessage, now: float) -> None:
        delay = self._queue.schedule(message, now)
        logger.info("job parked in the delay queue", extra={"reason": message.reason, "delay_seconds": delay})
