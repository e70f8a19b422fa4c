"""The domain: what happens to one uploaded object, from the checks to the stored result and its record.

Every upload ends in one of: processed (result stored, job `succeeded`), not sent with a recorded reason
(`skipped`), refused by Picsart with the error body recorded (`failed`), parked in the delay queue for a
later attempt (`waiting`), or — attempts used up — in the dead-letter queue with its reason (`failed`).

The sequence: the checks, then the fleet's circuit (no calls while a configuration fault or spent credits
stand), the fleet's rate-limit budget (`job_budget`), once per version, the call, its answer through the one
table of outcomes (`outcomes.classify`, `answers`), and the result stored or the work parked (`parking`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from picsart_adapter.answers import Answers
from picsart_adapter.circuit import Admission, FleetCircuit, Open, Probe
from picsart_adapter.delay_queue import DelayQueue, RetryMessage
from picsart_adapter.idempotency import DuplicateInFlight, OncePerVersion
from picsart_adapter.input_checks import Rejection, check_key, check_object
from picsart_adapter.job import Job, ProcessorSettings, counted
from picsart_adapter.job_budget import JobBudget
from picsart_adapter.jobs import Attempt, JobResult, JobStore, utc_now_iso
from picsart_adapter.observability import MetricUnit, logger, metrics, tracer
from picsart_adapter.outcomes import Outcome, classify
from picsart_adapter.parking import Parking
from picsart_adapter.picsart_client import PicsartClient, PicsartResponse, PicsartTransportError
from picsart_adapter.rate_limit import Denial, FleetRateLimiter, Grant
from picsart_adapter.retry_policy import RetryPolicy
from picsart_adapter.s3_events import UploadedObject
from picsart_adapter.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["JobResult", "ProcessorSettings", "UploadProcessor"]


class UploadProcessor:
    """Takes a new upload, or work back from the delay queue, through the sequence: the checks, the circuit, the
    budget, once per version, the call, the answer, then the result stored or the work parked."""

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
        self._queue = queue
        self._client = client
        self._limiter = limiter
        self._circuit = circuit
        self._once = once
        self._clock = clock
        self._context: LambdaContext | None = None
        self._budget = JobBudget(limiter, retry_policy, clock, sleep, self.has_time_for)
        self._parking = Parking(settings, queue, jobs, retry_policy, self._budget, clock)
        self._answers = Answers(settings, store, jobs, client, circuit, self._parking, clock)

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Called by the handlers at each invocation: work in progress is known to end with it, and a short
        wait is taken only when the invocation has time for it."""
        self._context = context
        self._once.register_lambda_context(context)

    def process(self, upload: UploadedObject, attempts_made: int = 0, correlation_ids: Sequence[str] = ()) -> JobResult:
        """Handle one new upload: checked first (nothing known to fail is sent, and no budget is spent on it)."""
        job = Job(upload, attempts_made, list(correlation_ids), taken_up_at=self._clock())
        return self._check(job) or self._attempt(job)

    def resume(self, message: RetryMessage) -> JobResult | None:
        """Take up parked work from the delay queue. Work not yet due (a wait longer than SQS's 900 s
        delay) is sent on for another hop and None is returned."""
        now = self._clock()
        if message.due_at > now + 1:
            delay = self._queue.schedule(message, now)
            logger.info("not due yet; re-delayed", extra={"delay_seconds": delay})
            return None
        job = Job(
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

    def has_time_for(self, wait_seconds: float = 0.0) -> bool:
        """Whether this invocation has time left for one more job after waiting `wait_seconds` (always, when no
        Lambda context is registered)."""
        if self._context is None:
            return True
        return self._context.get_remaining_time_in_millis() >= self.time_needed_ms + wait_seconds * 1000

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
    def _check(self, job: Job) -> JobResult | None:
        """Describe the object as it is in S3 now and check it against Picsart's limits: a JobResult when
        it is not to be sent, None when it is (`job.stored` is set)."""
        upload = job.upload
        stored = self._store.describe(upload.bucket, upload.key, upload.version_id)
        if stored is None:
            return self._answers.skip(job.ref, Rejection("object-gone", "the object no longer exists (deleted first)"))
        job.stored = stored
        rejection = check_key(stored.key) or check_object(stored.size, stored.head)
        return self._answers.skip(job.ref, rejection, stored) if rejection else None

    def _attempt(self, job: Job) -> JobResult:
        """Check what costs nothing first: waiting work that cannot go yet costs a read and a message, not a
        record, an idempotency record or S3 reads. The budget itself is taken right before the call."""
        # A configuration fault or spent credits seen anywhere in the fleet stops every call until a probe
        # shows it is fixed: the guide warns that hammering through 4xx answers can suspend an integration.
        admission = self._circuit.admit()
        if isinstance(admission, Open):
            return self._parking.hold_for_circuit(job, admission)
        known = self._limiter.known_denial()
        if known is not None:
            self._budget.join_line(job, known)
        if known is not None and not self._budget.can_wait_once_prepared(job, known):
            self._unused(admission)
            return self._parking.defer(job, known)
        if job.stored is None and (skipped := self._check(job)):
            self._unused(admission)
            return skipped
        if job.transaction_id is not None:
            # The call that costs credits was made and accepted: only its result is fetched now.
            return self._poll(job, admission)
        # S3 and SQS deliver at least once: a version that has its final result costs no second call. What is
        # parked while the version is held is sent once it is released, whatever path leaves the section.
        self._parking.hold_messages(job)
        try:
            result = self._once.run(job.ref, lambda: self._call_tool(job, admission))
        except DuplicateInFlight:
            self._unused(admission)
            return self._parking.park_duplicate(job)
        finally:
            self._parking.send_held_messages(job)
        if result.duplicate:
            self._unused(admission)
            logger.info("already handled; no call made", extra={"version_ref": job.ref.version_ref})
            metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        return result

    def _acquire(self, job: Job, admission: Admission) -> Grant | JobResult:
        """The fleet's budget for the call about to be made (`JobBudget.take`), or the job parked until it
        returns."""
        decision = self._budget.take(job)
        if isinstance(decision, Denial):
            self._unused(admission)
            return self._parking.defer(job, decision, record=True)
        if isinstance(admission, Probe):
            logger.info("probing Picsart: the fleet's circuit is open")
        return decision

    def _unused(self, admission: Admission) -> None:
        """An admission not used for a call: a probe's turn goes back (a budget unit stays spent)."""
        if isinstance(admission, Probe):
            self._circuit.record(admission, None, None, "the probe's call was not made")

    # -- the requests ----------------------------------------------------------------------------------
    def _call_tool(self, job: Job, admission: Admission) -> JobResult:
        tool, stored = self._settings.tool, job.stored
        assert stored is not None
        self._answers.start_record(job, job.attempts_made + 1)
        image_url = self._store.presigned_get_url(stored, self._settings.presigned_url_ttl_seconds)
        grant = self._acquire(job, admission)
        if isinstance(grant, JobResult):
            return grant
        attempt = Attempt(number=job.attempts_made + 1, started_at=utc_now_iso(), outcome="")
        parameters = self._settings.parameters
        call = lambda: self._client.call_tool(tool, image_url, parameters)  # noqa: E731
        return self._send(job, admission, attempt, f"## picsart.{tool.name}", call)

    def _poll(self, job: Job, admission: Admission) -> JobResult:
        """Ask for the result of an asynchronous job Picsart accepted."""
        tool, transaction_id = self._settings.tool, job.transaction_id
        assert transaction_id is not None
        self._answers.start_record(job, job.attempts_made)
        grant = self._acquire(job, admission)
        if isinstance(grant, JobResult):
            return grant
        job.polls += 1
        attempt = Attempt(number=job.attempts_made, started_at=utc_now_iso(), outcome="", poll=job.polls)
        poll = lambda: self._client.poll(tool, transaction_id)  # noqa: E731
        return self._send(job, admission, attempt, f"## picsart.{tool.name}.poll", poll)

    def _send(
        self,
        job: Job,
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
                return self._parking.retry_later(job, counted(attempt, job), Outcome.TRANSIENT, None)
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
        self._answers.observe(response, outcome, attempt)
        if response.correlation_id:
            job.correlation_ids.append(response.correlation_id)
        return self._answers.handle(job, admission, attempt, response, outcome)
