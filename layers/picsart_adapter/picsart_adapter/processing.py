"""The domain: what happens to one uploaded object, from the checks to the stored result and its record.

Every upload ends in one of: processed (result stored, job `succeeded`), not sent with a recorded reason
(`skipped`), refused by Picsart with the error body recorded (`failed`), parked in the delay queue for a
later attempt (`waiting`), or — attempts used up — in the dead-letter queue with its reason (`failed`).

Before each request: the fleet's circuit (no calls while a configuration fault or spent credits stand),
then the fleet's rate-limit budget. After each answer: the one table of outcomes (`outcomes.classify`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from picsart_adapter.circuit import Admission, FleetCircuit, Open, Probe
from picsart_adapter.delay_queue import DelayQueue, RetryMessage
from picsart_adapter.idempotency import DuplicateInFlight, OncePerVersion
from picsart_adapter.input_checks import Rejection, check_key, check_object
from picsart_adapter.jobs import Attempt, JobRef, JobResult, JobStatus, JobStore, utc_now_iso
from picsart_adapter.observability import MetricUnit, logger, metrics, tracer
from picsart_adapter.outcomes import Outcome, classify
from picsart_adapter.picsart_client import (
    PicsartClient,
    PicsartResponse,
    PicsartTransportError,
    ResultDownloadError,
)
from picsart_adapter.rate_limit import Denial, FleetRateLimiter, Grant, parse_reset_time
from picsart_adapter.retry_policy import MAX_POLLS, RetryPolicy
from picsart_adapter.s3_events import UploadedObject
from picsart_adapter.storage import ObjectStore, StoredObject, result_key
from picsart_adapter.tools import FORMAT_MEDIA, Tool, ToolParameters

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["JobResult", "ProcessorSettings", "UploadProcessor"]

#: Lambda's longest timeout and a margin: no live invocation holds a version "in progress" longer.
MAX_IN_FLIGHT_SECONDS = 900.0 + 60.0
#: A budget that returns sooner than this is waited for in the invocation. A delay-queue hop takes longer
#: (SQS delays are whole seconds, then a receive and an invocation) and costs a message and a write.
SHORT_WAIT_SECONDS = 1.5
#: Short waits in a row before the job is parked (each one ends at a reset or a second's turn).
MAX_SHORT_WAITS = 3
#: How many times a grant that expired during its own (slow) write is counted again before the job waits.
MAX_RECOUNTS = 2
#: SQS delays are whole seconds (rounded up): parked work arrives up to this much after it is due.
DELAY_ROUNDING_SECONDS = 1.0
#: What a job's preparation (reading the object, its records, the circuit) is taken to last until this
#: environment has timed one, and the most that is planned for (a slower one, e.g. a job that first waited
#: for a duplicate, would bring work back so early that it parks again).
ASSUMED_PREPARATION_SECONDS = 0.5
MAX_PREPARATION_SECONDS = 3.0


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
class _Job:
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


class UploadProcessor:
    def __init__(
        self,
        settings: ProcessorSettings,
        store: ObjectStore,
        jobs: JobStore,
        queue: DelayQueue,
        client: PicsartClient,
        retry_policy: RetryPolicy,
        limiter: FleetRateLimiter,
        circuit: FleetCircuit,
        once: OncePerVersion,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._store = store
        self._jobs = jobs
        self._queue = queue
        self._client = client
        self._retry_policy = retry_policy
        self._limiter = limiter
        self._circuit = circuit
        self._once = once
        self._clock = clock
        self._sleep = sleep
        self._context: LambdaContext | None = None
        #: How long this environment's last job took from being taken up to asking for budget (seconds).
        self._preparation_seconds = ASSUMED_PREPARATION_SECONDS

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Called by the handlers at each invocation: work in progress is known to end with it, and a short
        wait is taken only when the invocation has time for it."""
        self._context = context
        self._once.register_lambda_context(context)

    def process(self, upload: UploadedObject, attempts_made: int = 0, correlation_ids: Sequence[str] = ()) -> JobResult:
        """Handle one new upload: checked first (nothing known to fail is sent, and no budget is spent on it)."""
        job = _Job(upload, attempts_made, list(correlation_ids), taken_up_at=self._clock())
        return self._check(job) or self._attempt(job)

    def resume(self, message: RetryMessage) -> JobResult | None:
        """Take up parked work from the delay queue. Work not yet due (a wait longer than SQS's 900 s
        delay) is sent on for another hop and None is returned."""
        now = self._clock()
        if message.due_at > now + 1:
            delay = self._queue.schedule(message, now)
            logger.info("not due yet; re-delayed", extra={"delay_seconds": delay})
            return None
        job = _Job(
            message.upload(),
            message.attempt,
            list(message.picsart_correlation_ids),
            resumed=True,
            transaction_id=message.transaction_id,
            polls=message.polls,
            in_flight_since=message.in_flight_since,
            in_line=message.in_line,
            turn_at=message.turn_at,
            taken_up_at=now,
        )
        return self._attempt(job)

    @property
    def time_needed_ms(self) -> int:
        """Invocation time one more job needs: a call at its timeout, and a margin for the rest."""
        return int((self._settings.request_timeout_seconds + 5) * 1000)

    def hand_back(self, message: RetryMessage) -> None:
        """Return work this invocation has no time left for to the delay queue, due now (not an attempt)."""
        self._queue.schedule(message, self._clock())
        metrics.add_metric(name="JobsHandedBack", unit=MetricUnit.Count, value=1)

    def dead_letter_unreadable(self, body: str, reason: str) -> None:
        """A delay-queue message no attempt can read goes straight to the dead-letter queue."""
        self._queue.dead_letter(body, reason)
        metrics.add_metric(name="JobsDeadLettered", unit=MetricUnit.Count, value=1)
        logger.error("unreadable delay-queue message dead-lettered", extra={"reason": reason})

    # -- before a request ------------------------------------------------------------------------------
    def _check(self, job: _Job) -> JobResult | None:
        """Describe the object as it is in S3 now and check it against Picsart's limits: a JobResult when
        it is not to be sent, None when it is (`job.stored` is set)."""
        upload = job.upload
        stored = self._store.describe(upload.bucket, upload.key, upload.version_id)
        if stored is None:
            return self._skip(job.ref, Rejection("object-gone", "the object no longer exists (deleted first)"))
        job.stored = stored
        rejection = check_key(stored.key) or check_object(stored.size, stored.head)
        return self._skip(job.ref, rejection, stored) if rejection else None

    def _attempt(self, job: _Job) -> JobResult:
        """Check what costs nothing first: waiting work that cannot go yet costs a read and a message, not a
        record, an idempotency record or S3 reads. The budget itself is taken right before the call."""
        # A configuration fault or spent credits seen anywhere in the fleet stops every call until a probe
        # shows it is fixed: the guide warns that hammering through 4xx answers can suspend an integration.
        admission = self._circuit.admit()
        if isinstance(admission, Open):
            return self._hold_for_circuit(job, admission)
        known = self._limiter.known_denial()
        if known is not None:
            self._join_line(job, known)
        # Its wait starts once it is prepared, as the lead its due time was given assumed: judged from now, work
        # back on time found its turn too far off and went round the delay queue again (at once, when the lead
        # was longer than a short wait).
        if known is not None and not self._can_wait_until(self._wait_target(job, known) - self._preparation_planned):
            self._unused(admission)
            return self._defer(job, known)
        if job.stored is None and (skipped := self._check(job)):
            self._unused(admission)
            return skipped
        if job.transaction_id is not None:
            # The call that costs credits was made and accepted: only its result is fetched now.
            return self._poll(job, admission)
        # S3 and SQS deliver at least once: a version that has its final result costs no second call.
        job.held_messages = []
        try:
            result = self._once.run(job.ref, lambda: self._call_tool(job, admission))
        except DuplicateInFlight:
            self._unused(admission)
            return self._park_duplicate(job)
        finally:
            self._send_held_messages(job)
        if result.duplicate:
            self._unused(admission)
            logger.info("already handled; no call made", extra={"version_ref": job.ref.version_ref})
            metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        return result

    def _acquire(self, job: _Job, admission: Admission) -> Grant | JobResult:
        """The fleet's shared budget, taken right before the call so that it reaches Picsart in the second it
        was counted in: no call is made that the quota or the spike arrest would refuse. A budget that returns
        within SHORT_WAIT_SECONDS (the next second, a reset about to happen) is waited for here."""
        self._preparation_seconds = self._clock() - job.taken_up_at
        decision = self._limiter.acquire()
        #: A unit this job holds whose grant expired during its own (slow) write: it is counted again where
        #: the call will land rather than lost (and a 429 is not worth risking).
        held: Grant | None = None
        recounts = waits = 0
        while True:
            if isinstance(decision, Denial):
                self._join_line(job, decision)
            if isinstance(decision, Grant) and self._clock() > decision.valid_until and recounts < MAX_RECOUNTS:
                held, recounts = decision, recounts + 1
                metrics.add_metric(name="GrantsRecounted", unit=MetricUnit.Count, value=1)
            elif (
                isinstance(decision, Denial)
                and waits < MAX_SHORT_WAITS
                and self._can_wait_until(until := self._wait_target(job, decision))
            ):
                self._sleep(max(0.0, until - self._clock()))
                waits += 1
            else:
                break
            recounted = self._limiter.recount(held) if held is not None else None
            if recounted is None:
                held = None  # its window is over, and the unit with it: a new one is needed
            decision = recounted or self._limiter.acquire()
        if isinstance(decision, Grant) and self._clock() < decision.valid_from:
            # Counted in the second about to begin: sent now, it would land in one that did not count it.
            self._sleep(decision.valid_from - self._clock())
        if isinstance(decision, Grant) and self._clock() > decision.valid_until:
            decision = Denial(self._clock() + 1.0, "spike (grant expired)")
        if isinstance(decision, Denial):
            self._unused(admission)
            return self._defer(job, decision, record=True)
        if isinstance(admission, Probe):
            logger.info("probing Picsart: the fleet's circuit is open")
        return decision

    def has_time_for(self, wait_seconds: float = 0.0) -> bool:
        """Whether this invocation has time left for one more job after waiting `wait_seconds` (always, when no
        Lambda context is registered)."""
        if self._context is None:
            return True
        return self._context.get_remaining_time_in_millis() >= self.time_needed_ms + wait_seconds * 1000

    @staticmethod
    def _wait_target(job: _Job, denial: Denial) -> float:
        """When to ask again: when the budget returns, and for quota not before the job's turn in the fleet's
        line, so that the work a reset releases asks in line order, spaced by the spike arrest, rather than
        all at once (all but one of such a crowd would fail to open the window, a write each)."""
        if denial.reason == "quota" and job.turn_at is not None:
            return max(denial.retry_at, job.turn_at)
        return denial.retry_at

    def _join_line(self, job: _Job, denial: Denial) -> None:
        """Work refused for quota takes a place in the fleet's line (the refusal's own write may have taken it),
        even when the reset is a short wait away: jobs that waited for the reset all asked at once, and all but
        one failed to open the window and then to take a grant in it (two writes each, 28 jobs at one reset)."""
        if denial.reason == "quota" and not job.in_line:
            job.turn_at = self._limiter.place_in_line(denial)
            job.in_line = True

    @property
    def _preparation_planned(self) -> float:
        """How long a job taken up here is expected to take before it asks for budget."""
        return min(self._preparation_seconds, MAX_PREPARATION_SECONDS)

    def _can_wait_until(self, until: float) -> bool:
        """A wait shorter than a delay-queue hop, with time left in the invocation for it and the call."""
        wait = until - self._clock()
        return wait <= SHORT_WAIT_SECONDS and self.has_time_for(wait)

    def _unused(self, admission: Admission) -> None:
        """An admission not used for a call: a probe's turn goes back (a budget unit stays spent)."""
        if isinstance(admission, Probe):
            self._circuit.record(admission, None, None, "the probe's call was not made")

    # -- the requests ----------------------------------------------------------------------------------
    def _call_tool(self, job: _Job, admission: Admission) -> JobResult:
        tool, stored = self._settings.tool, job.stored
        assert stored is not None
        self._start_record(job, job.attempts_made + 1)
        image_url = self._store.presigned_get_url(stored, self._settings.presigned_url_ttl_seconds)
        grant = self._acquire(job, admission)
        if isinstance(grant, JobResult):
            return grant
        attempt = Attempt(number=job.attempts_made + 1, started_at=utc_now_iso(), outcome="")
        parameters = self._settings.parameters
        call = lambda: self._client.call_tool(tool, image_url, parameters)  # noqa: E731
        return self._send(job, admission, attempt, f"## picsart.{tool.name}", call)

    def _poll(self, job: _Job, admission: Admission) -> JobResult:
        """Ask for the result of an asynchronous job Picsart accepted."""
        tool, transaction_id = self._settings.tool, job.transaction_id
        assert transaction_id is not None
        self._start_record(job, job.attempts_made)
        grant = self._acquire(job, admission)
        if isinstance(grant, JobResult):
            return grant
        job.polls += 1
        attempt = Attempt(number=job.attempts_made, started_at=utc_now_iso(), outcome="", poll=job.polls)
        poll = lambda: self._client.poll(tool, transaction_id)  # noqa: E731
        return self._send(job, admission, attempt, f"## picsart.{tool.name}.poll", poll)

    def _send(
        self,
        job: _Job,
        admission: Admission,
        attempt: Attempt,
        subsegment_name: str,
        request: Callable[[], PicsartResponse],
    ) -> JobResult:
        """Make one request and take its answer through the table of outcomes."""
        with tracer.provider.in_subsegment(subsegment_name) as subsegment:
            try:
                response = request()
            except PicsartTransportError as error:
                subsegment.put_annotation("picsart_outcome", Outcome.TRANSIENT.value)
                attempt.outcome, attempt.error = Outcome.TRANSIENT.value, f"no answer from Picsart ({error})"
                self._circuit.record(admission, None, None, attempt.error)
                metrics.add_metric(name="PicsartNoAnswer", unit=MetricUnit.Count, value=1)
                metrics.add_metric(name="PicsartServerErrors", unit=MetricUnit.Count, value=1)
                logger.warning("Picsart gave no answer", extra={"attempt": attempt.number, "error": str(error)})
                return self._retry_later(job, _counted(attempt, job), Outcome.TRANSIENT, None)
            outcome = classify(response.status)
            if attempt.poll and response.status == 404:
                # An unknown transaction (expired, or lost on Picsart's side) is not a wrong deployment:
                # the job is sent again.
                outcome, job.transaction_id, job.polls = Outcome.TRANSIENT, None, 0
            # Every answer, success or error, tells the fleet where the rate limit stands.
            self._limiter.observe(response.rate_limit, throttled=outcome is Outcome.THROTTLED)
            subsegment.put_annotation("picsart_status", str(response.status))
            subsegment.put_annotation("picsart_outcome", outcome.value)
            if response.correlation_id:
                subsegment.put_annotation("picsart_correlation_id", response.correlation_id)
        if outcome not in {Outcome.SUCCESS, Outcome.ACCEPTED}:
            attempt.error_body = response.raw_body
        self._observe(response, outcome, attempt)
        if response.correlation_id:
            job.correlation_ids.append(response.correlation_id)
        return self._handle_answer(job, admission, attempt, response, outcome)

    # -- after an answer -------------------------------------------------------------------------------
    def _handle_answer(
        self, job: _Job, admission: Admission, attempt: Attempt, response: PicsartResponse, outcome: Outcome
    ) -> JobResult:
        refusal = f"HTTP {response.status}: {response.error_detail}"
        tripped = self._circuit.record(admission, outcome, response.status, refusal, response.correlation_id)
        if tripped and tripped.opened_now:
            metrics.add_metric(name="CircuitOpened", unit=MetricUnit.Count, value=1)
            logger.error("the fleet's circuit opened: no calls until a probe succeeds", extra={"why": tripped.reason})
        elif isinstance(admission, Probe) and tripped is None and outcome is Outcome.SUCCESS:
            logger.info("probe succeeded: the fleet's circuit is closed")
        tool = self._settings.tool
        if outcome is Outcome.SUCCESS:
            return self._store_result(job, attempt, response)
        if outcome is Outcome.ACCEPTED and tool.asynchronous:
            transaction_id = response.transaction_id or job.transaction_id
            if transaction_id:
                return self._await_result(job, attempt, transaction_id)
            return self._fail(job, attempt, response, "Picsart answered 202 without a transaction_id to poll")
        if outcome is Outcome.ACCEPTED:
            return self._fail(job, attempt, response, f"Picsart answered 202 to the synchronous {tool.name} tool")
        if outcome.retryable:
            if outcome in {Outcome.CONFIGURATION, Outcome.CREDITS} and tripped:
                reset_at: float | None = tripped.probe_at
            else:
                reset_at = parse_reset_time(response.rate_limit.reset_time, self._clock())
            return self._retry_later(job, _counted(attempt, job), outcome, reset_at)
        return self._fail(job, attempt, response, f"Picsart refused the request: {refusal}")

    def _observe(self, response: PicsartResponse, outcome: Outcome, attempt: Attempt) -> None:
        """Record one answer everywhere it is needed: attempt, logs, metrics."""
        attempt.outcome = outcome.value
        attempt.http_status = response.status
        attempt.picsart_correlation_id = response.correlation_id
        attempt.duration_ms = response.duration_ms
        attempt.rate_limit = response.rate_limit.as_record()
        if response.correlation_id:
            logger.append_keys(picsart_correlation_id=response.correlation_id)
        # The same fields as the job record's attempt, so a support report can be built from either.
        logger.info(
            "Picsart answered",
            extra={
                "attempt": attempt.number,
                **({"poll": attempt.poll} if attempt.poll else {}),
                "http_status": response.status,
                "outcome": outcome.value,
                "duration_ms": response.duration_ms,
                "rate_limit": attempt.rate_limit,
                **({"error_body": attempt.error_body} if attempt.error_body else {}),
            },
        )
        metrics.add_metric(name="PicsartCalls", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="PicsartLatency", unit=MetricUnit.Milliseconds, value=response.duration_ms)
        if response.rate_limit.credits is not None:
            metrics.add_metric(name="CreditsAvailable", unit=MetricUnit.Count, value=response.rate_limit.credits)
        if outcome is Outcome.THROTTLED:
            metrics.add_metric(name="PicsartThrottled", unit=MetricUnit.Count, value=1)
        elif 400 <= response.status < 500:
            metrics.add_metric(name="PicsartClientErrors", unit=MetricUnit.Count, value=1)
        elif response.status >= 500:
            metrics.add_metric(name="PicsartServerErrors", unit=MetricUnit.Count, value=1)

    def _store_result(self, job: _Job, attempt: Attempt, response: PicsartResponse) -> JobResult:
        url = response.result_url
        if url is None:
            return self._fail(job, attempt, response, "Picsart answered 200 without data.url")
        try:
            body, content_type = self._client.download_result(url)
        except ResultDownloadError as error:
            attempt.error = str(error)
            return self._retry_later(job, _counted(attempt, job), Outcome.TRANSIENT, None)
        tool, stored = self._settings.tool, job.stored
        assert stored is not None
        output_format = tool.output_format(self._settings.parameters)
        media_type, extension = FORMAT_MEDIA[output_format]
        output_key = result_key(stored.key, tool.name, extension)
        self._store.put_result(
            self._settings.output_bucket,
            output_key,
            body,
            content_type if content_type.startswith("image/") else media_type,
            {
                "source-bucket": stored.bucket,
                "source-key": stored.key,
                "source-version": stored.version_ref,
                "tool": tool.name,
                "picsart-correlation-id": response.correlation_id or "",
            },
        )
        self._jobs.finish(
            job.ref,
            JobStatus.SUCCEEDED,
            attempt,
            details={
                "output_bucket": self._settings.output_bucket,
                "output_key": output_key,
                "http_status": response.status,
            },
        )
        metrics.add_metric(name="JobsSucceeded", unit=MetricUnit.Count, value=1)
        logger.info("result stored", extra={"output_key": output_key})
        return JobResult(
            JobStatus.SUCCEEDED,
            output_key=output_key,
            picsart_correlation_id=response.correlation_id,
            http_status=response.status,
            picsart_correlation_ids=job.correlation_ids,
        )

    def _fail(self, job: _Job, attempt: Attempt, response: PicsartResponse, reason: str) -> JobResult:
        """Picsart refused this job for good: record the status, the error body and the correlation id."""
        attempt.error_body = response.raw_body
        self._jobs.finish(job.ref, JobStatus.FAILED, attempt, reason, {"http_status": response.status})
        metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        logger.error("job failed permanently", extra={"reason": reason, "error_body": response.raw_body})
        return JobResult(
            JobStatus.FAILED,
            reason=reason,
            picsart_correlation_id=response.correlation_id,
            http_status=response.status,
            picsart_correlation_ids=job.correlation_ids,
        )

    # -- parking work in the delay queue ---------------------------------------------------------------
    def _await_result(self, job: _Job, attempt: Attempt, transaction_id: str) -> JobResult:
        """An asynchronous job is accepted or still running: poll it later through the delay queue."""
        now = self._clock()
        job.transaction_id = transaction_id
        job.attempts_made = max(job.attempts_made, attempt.number)
        if job.polls >= MAX_POLLS:
            reason = f"the result of transaction {transaction_id} was not ready after {job.polls} polls"
            return self._dead_letter(job, job.message(now, reason), attempt, reason, {})
        reason = f"accepted: polling transaction {transaction_id}"
        message = job.message(self._retry_policy.poll_due_at(job.polls, now), reason)
        self._park(job, message, now, attempt, {"transaction_id": transaction_id})
        metrics.add_metric(name="JobsPolling", unit=MetricUnit.Count, value=1)
        return JobResult(
            JobStatus.WAITING,
            reason=reason,
            picsart_correlation_id=attempt.picsart_correlation_id,
            http_status=attempt.http_status,
            picsart_correlation_ids=job.correlation_ids,
            transaction_id=transaction_id,
        )

    def _retry_later(self, job: _Job, attempt: Attempt, outcome: Outcome, reset_at: float | None) -> JobResult:
        """Park the job in the delay queue, or dead-letter it when its attempts are used up."""
        now = self._clock()
        status_text = attempt.error or (f"HTTP {attempt.http_status}" if attempt.http_status else "no answer")
        message = job.message(
            self._retry_policy.due_at(outcome, attempt.number, now, reset_at),
            f"{outcome.value}: {status_text}",
            attempts_made=attempt.number,
        )
        details = {"http_status": attempt.http_status} if attempt.http_status else {}
        if attempt.number >= self._settings.max_attempts:
            reason = f"gave up after {attempt.number} attempts; last: {message.reason}"
            return self._dead_letter(job, message, attempt, reason, details)
        self._park(job, message, now, attempt, details)
        metrics.add_metric(name="JobsDelayed", unit=MetricUnit.Count, value=1)
        return JobResult(
            JobStatus.WAITING,
            reason=message.reason,
            picsart_correlation_id=attempt.picsart_correlation_id,
            http_status=attempt.http_status,
            picsart_correlation_ids=job.correlation_ids,
        )

    def _dead_letter(
        self, job: _Job, message: RetryMessage, attempt: Attempt, reason: str, details: dict[str, Any]
    ) -> JobResult:
        self._queue.dead_letter(message, reason)
        self._jobs.finish(job.ref, JobStatus.FAILED, attempt, reason, {**details, "dead_lettered": True})
        metrics.add_metric(name="JobsDeadLettered", unit=MetricUnit.Count, value=1)
        logger.error("job dead-lettered", extra={"reason": reason})
        return JobResult(
            JobStatus.FAILED,
            reason=reason,
            picsart_correlation_id=attempt.picsart_correlation_id,
            http_status=attempt.http_status,
            picsart_correlation_ids=job.correlation_ids,
        )

    def _defer(self, job: _Job, denial: Denial, record: bool = False) -> JobResult:
        """The fleet's budget is spent: park the job until it returns. No call was made, so no attempt.
        The record is updated for a new upload, or when this attempt already marked it as processing."""
        now = self._clock()
        self._join_line(job, denial)
        if denial.reason == "quota" and job.turn_at is not None and job.turn_at > now:
            # Its place in the fleet's line, still ahead: the window and the moment this job's budget will be
            # there.
            budget_back_at = job.turn_at
        else:
            # For quota: it had a place, and came before its window did (windows start with their first call,
            # so they drift later than planned): it keeps its turn at the head, right after the reset.
            budget_back_at = self._retry_policy.after_budget_returns(denial.retry_at, now)
        lead = 0.0
        if denial.reason == "quota":
            job.turn_at = budget_back_at
            # Due early enough to be prepared (S3 read, records: as long as this environment's last job took)
            # by its turn, whatever SQS's whole-second rounding: it then waits at most DELAY_ROUNDING_SECONDS
            # for its turn, in the invocation.
            lead = self._preparation_planned + DELAY_ROUNDING_SECONDS
        due_at = max(budget_back_at - lead, now)
        message = job.message(due_at, f"rate limit: the fleet's {denial.reason} budget is spent")
        self._park(job, message, now, record=record or not job.resumed)
        metrics.add_metric(name="CallsDeferred", unit=MetricUnit.Count, value=1)
        return JobResult(JobStatus.WAITING, reason=message.reason, picsart_correlation_ids=job.correlation_ids)

    def _hold_for_circuit(self, job: _Job, circuit: Open) -> JobResult:
        """The fleet's circuit is open: park the job until the next probe may go. No call, no attempt."""
        now = self._clock()
        message = job.message(
            self._retry_policy.after_budget_returns(circuit.retry_at, now), f"circuit open: {circuit.reason}"
        )
        self._park(job, message, now, record=not job.resumed)
        metrics.add_metric(name="CircuitBlocked", unit=MetricUnit.Count, value=1)
        return JobResult(JobStatus.WAITING, reason=message.reason, picsart_correlation_ids=job.correlation_ids)

    def _park_duplicate(self, job: _Job) -> JobResult:
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
            return JobResult(JobStatus.FAILED, reason=reason, duplicate=True)
        self._queue.schedule(message, now)
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        logger.info("duplicate delivery while in flight; checked again later", extra={"reason": message.reason})
        return JobResult(JobStatus.WAITING, reason=message.reason, duplicate=True)

    def _park(
        self,
        job: _Job,
        message: RetryMessage,
        now: float,
        attempt: Attempt | None = None,
        details: dict[str, Any] | None = None,
        record: bool = True,
    ) -> None:
        """Send the job to the delay queue and record it as waiting until its due time. Work that waits
        again without an attempt (resumed before its budget returned) keeps the record it has: a write
        per wait would cost more than it tells."""
        if job.held_messages is None:
            self._send_parked(message, now)
        else:
            job.held_messages.append(message)
        if record:
            due = datetime.fromtimestamp(message.due_at, UTC).isoformat(timespec="milliseconds")
            self._jobs.finish(job.ref, JobStatus.WAITING, attempt, message.reason, {**(details or {}), "due_at": due})

    def _send_held_messages(self, job: _Job) -> None:
        """Send what was parked while this invocation held the version, now that it is released. Sent while
        it is held, a message delivered at once finds the version in progress and is taken for a duplicate
        of itself (test_work_parked_by_the_invocation_holding_its_version_is_not_its_own_duplicate)."""
        held, job.held_messages = job.held_messages or [], None
        for message in held:
            self._send_parked(message, self._clock())

    def _send_parked(self, message: RetryMessage, now: float) -> None:
        delay = self._queue.schedule(message, now)
        logger.info("job parked in the delay queue", extra={"reason": message.reason, "delay_seconds": delay})

    # -- records ---------------------------------------------------------------------------------------
    def _start_record(self, job: _Job, attempt_count: int) -> None:
        """Mark the job as being processed now (a crash leaves it visibly `processing`)."""
        stored, upload = job.stored, job.upload
        assert stored is not None
        self._jobs.start(
            job.ref,
            {
                "tool": self._settings.tool.name,
                "size": stored.size,
                "etag": stored.etag,
                "attempt_count": attempt_count,
                **({"version_id": stored.version_id} if stored.version_id else {}),
                **({"s3_request_id": upload.s3_request_id} if upload.s3_request_id else {}),
            },
        )

    def _skip(self, ref: JobRef, rejection: Rejection, stored: StoredObject | None = None) -> JobResult:
        details = {"skip_code": rejection.code, **({"size": stored.size} if stored else {})}
        self._jobs.finish(ref, JobStatus.SKIPPED, reason=rejection.reason, details=details)
        metrics.add_metric(name="JobsSkipped", unit=MetricUnit.Count, value=1)
        logger.warning("upload not sent to Picsart", extra={"skip_code": rejection.code, "reason": rejection.reason})
        return JobResult(JobStatus.SKIPPED, reason=rejection.reason)


def _counted(attempt: Attempt, job: _Job) -> Attempt:
    """A request that failed counts as an attempt. A tool call already has its number; a poll (which
    counts only when it fails) gets the next one."""
    attempt.number = max(attempt.number, job.attempts_made + 1)
    return attempt


def _version_ref_of_event(upload: UploadedObject) -> str:
    if upload.version_id:
        return f"version:{upload.version_id}"
    return f"etag:{upload.etag}" if upload.etag else "unknown"
