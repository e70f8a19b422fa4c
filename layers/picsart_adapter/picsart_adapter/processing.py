"""The domain: what happens to one uploaded object, from the checks to the stored outputs and their records.

An upload is checked, then matched to the first rule that takes it (`rules.match_upload`); each of the rule's
pipelines is one job, which runs its steps in order, step n+1 taking step n's `data.url` exactly as given.
Every job ends in one of: processed (output stored, job `succeeded`), not sent with a recorded reason
(`skipped`: not an image, no rule matches, over a tool's limit), refused by Picsart with the error body recorded
(`failed`, and the rule's failure policy applied), parked in the delay queue for a later attempt (`waiting`),
or — attempts used up — in the dead-letter queue with its reason (`failed`).

Each step goes through the same sequence: the fleet's circuit (no calls while a configuration fault or spent
credits stand), the rule's credit floor (`credit_floor`), the fleet's rate-limit budget (`job_budget`), once per
version, pipeline definition and step (`idempotency`), the call (`step_request`), its answer through the one
table of outcomes (`outcomes.classify`, `answers`), and the next step, the output stored, or the work parked with
its step (`parking`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from picsart_adapter.answers import Answers
from picsart_adapter.circuit import Admission, FleetCircuit, Open
from picsart_adapter.completion_events import CompletionEvents
from picsart_adapter.credit_floor import CreditFloor
from picsart_adapter.delay_queue import DelayQueue, RetryMessage
from picsart_adapter.idempotency import DuplicateInFlight, OncePerStep
from picsart_adapter.input_checks import (
    SNIFFED_MEDIA_TYPES,
    Rejection,
    check_object,
    check_step_input,
    sniff_image_format,
)
from picsart_adapter.job import Job, ProcessorSettings
from picsart_adapter.job_budget import JobBudget
from picsart_adapter.jobs import JobResult, JobStatus, JobStore
from picsart_adapter.observability import MetricUnit, logger, metrics
from picsart_adapter.outputs import Outputs
from picsart_adapter.parking import Parking
from picsart_adapter.picsart_client import PicsartClient
from picsart_adapter.rate_limit import FleetRateLimiter
from picsart_adapter.retry_policy import RetryPolicy
from picsart_adapter.rules import Match, match_upload, pipeline_hash
from picsart_adapter.s3_events import UploadedObject
from picsart_adapter.step_request import StepRequest
from picsart_adapter.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["MAX_INPUT_URL_AGE_SECONDS", "JobResult", "ProcessorSettings", "UploadProcessor"]

#: A step's input that is the step before's result is reused while it is younger than this: Picsart's result
#: URLs stay valid about 24 hours (docs/picsart-api.md), and a step parked near the end of that could find it
#: gone by the time its call lands. Older, the pipeline runs again from the stored source.
MAX_INPUT_URL_AGE_SECONDS = 12 * 3600


class UploadProcessor:
    """Takes a new upload, or work back from the delay queue, through the sequence: the checks, the rule, then for
    each step of each pipeline the circuit, the budget, once per step, the call, the answer, then the next step,
    the output stored or the work parked."""

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
        once: OncePerStep,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        events: CompletionEvents | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue
        self._limiter = limiter
        self._circuit = circuit
        self._credit_floor = CreditFloor(limiter, settings.credit_floor_hold_seconds)
        self._once = once
        self._clock = clock
        self._context: LambdaContext | None = None
        self._budget = JobBudget(limiter, retry_policy, clock, sleep, self.has_time_for)
        outputs = Outputs(settings, store)
        # Every job that ends puts one completion event (completion_events.py); None: none is put.
        events = events or CompletionEvents(None)
        self._parking = Parking(settings, queue, jobs, retry_policy, self._budget, outputs, clock, events)
        self._answers = Answers(settings, outputs, jobs, client, circuit, self._parking, clock, events)
        self._request = StepRequest(
            settings,
            store,
            client,
            limiter,
            circuit,
            self._budget,
            self._credit_floor,
            self._parking,
            self._answers,
            clock,
        )

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Called by the handlers at each invocation: work in progress is known to end with it, and a short
        wait is taken only when the invocation has time for it."""
        self._context = context
        self._once.register_lambda_context(context)

    def process(
        self, upload: UploadedObject, attempts_made: int = 0, correlation_ids: Sequence[str] = ()
    ) -> list[JobResult]:
        """Handle one new upload: checked first (nothing known to fail is sent, and no budget is spent on it), then
        matched to a rule, whose pipelines run one after the other: one result per pipeline, or one skip."""
        return self._take_up(Job(upload, attempts_made, list(correlation_ids), taken_up_at=self._clock()))

    def resume(self, message: RetryMessage) -> list[JobResult] | None:
        """Take up parked work from the delay queue at its step. Work not yet due (a wait longer than SQS's 900 s
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
            circuit_refusals=message.circuit_refusals,
            throttled_in_a_row=message.throttled_in_a_row,
            # A bare upload (no pipeline yet) may have no record of its pipelines: it is taken up as a new one.
            resumed=message.pipeline is not None,
            transaction_id=message.transaction_id,
            polls=message.polls,
            in_flight_since=message.in_flight_since,
            in_line=message.in_line,
            turn_at=message.turn_at,
            taken_up_at=now,
            step=message.step,
            input_url=message.input_url,
            input_url_at=message.input_url_at,
            step_correlation_ids=list(message.step_correlation_ids),
            reruns=message.reruns,
            replay=message.replay,
            answered=message.answered,
        )
        if message.pipeline is None:
            # Not matched to a rule yet (parked by an older version of the adapter, or driven back from the
            # dead-letter queue as a bare upload): it is taken up as a new upload.
            return self._take_up(job)
        rules = self._settings.rules
        job.rule = next((rule for rule in rules.rules if rule.name == message.rule), None)
        job.pipeline = rules.pipelines.get(message.pipeline)
        if job.rule is None or job.pipeline is None:
            job.pipeline = None
            reason = f'the rules no longer have rule "{message.rule}" with pipeline "{message.pipeline}"'
            gone = Rejection("rules-changed", reason)
            return [self._answers.skip(job.ref.for_pipeline(message.pipeline), gone, rule=message.rule)]
        if pipeline_hash(job.pipeline) != message.pipeline_hash:
            job.run_again(f'pipeline "{job.pipeline.name}" changed while its work was parked: it runs as it is now')
        elif job.step and now - (job.input_url_at or 0.0) > MAX_INPUT_URL_AGE_SECONDS:
            age_hours = (now - (job.input_url_at or 0.0)) / 3600
            job.run_again(
                f"step {job.step + 1}'s input, step {job.step}'s result, was {age_hours:.1f} h old, too old to "
                "reuse: the pipeline runs again from the stored source"
            )
        return [self._run(job)]

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
    def _take_up(self, job: Job) -> list[JobResult]:
        """Check the upload, match it to a rule, and run each of the rule's pipelines."""
        skipped = self._check(job)
        if skipped is not None:
            return [skipped]
        match = self._match(job)
        if isinstance(match, JobResult):
            return [match]
        return [self._run(job.for_pipeline(match.rule, pipeline)) for pipeline in match.pipelines]

    def _match(self, job: Job) -> Match | JobResult:
        """The rule the upload matches (first match wins), or the upload skipped because none does."""
        stored = job.stored
        assert stored is not None
        sniffed = sniff_image_format(stored.head)
        content_type = SNIFFED_MEDIA_TYPES.get(sniffed) if sniffed else None
        match = match_upload(self._settings.rules, stored.key, content_type, stored.size, stored.metadata)
        if match is None:
            metrics.add_metric(name="UploadsUnmatched", unit=MetricUnit.Count, value=1)
            reason = f"no rule matches it ({content_type or 'unknown type'}, {stored.size} bytes)"
            return self._answers.skip(job.ref, Rejection("no-rule", reason), stored)
        logger.info("rule matched", extra={"rule": match.rule.name, "pipelines": [p.name for p in match.pipelines]})
        return match

    def _check(self, job: Job) -> JobResult | None:
        """Describe the object as it is in S3 now and check it against Picsart's limits: a JobResult when
        it is not to be sent, None when it is (`job.stored` is set)."""
        upload = job.upload
        stored = self._store.describe(upload.bucket, upload.key, upload.version_id)
        if stored is None:
            return self._answers.skip(job.ref, Rejection("object-gone", "the object no longer exists (deleted first)"))
        job.stored = stored
        rejection = check_object(stored.size, stored.head)
        return self._answers.skip(job.ref, rejection, stored) if rejection else None

    def _run(self, job: Job) -> JobResult:
        """Run the job's steps from the one it is at, each step's result the next one's input, until the last
        step's output is stored or the job waits or ends early."""
        while True:
            result = self._attempt(job)
            if job.is_last_step or result.status is not JobStatus.SUCCEEDED or result.result_url is None:
                return result
            job.advance(result.result_url, result.picsart_correlation_id, self._clock())
            if not self.has_time_for():
                return self._parking.continue_later(job)

    def _attempt(self, job: Job) -> JobResult:
        """Check what costs nothing first: waiting work that cannot go yet costs a read and a message, not a
        record, an idempotency record or S3 reads. The budget itself is taken right before the call."""
        # A configuration fault or spent credits seen anywhere in the fleet stops every call until a probe
        # shows it is fixed: the guide warns that hammering through 4xx answers can suspend an integration.
        if job.answered is not None:
            # Picsart answered this step already: only what it made is fetched, with no call and no budget.
            if job.stored is None and (skipped := self._check(job)):
                return skipped
            return self._run_once(job, job.result_fetch_key, lambda: self._answers.fetch_answered(job))
        admission = self._circuit.admit()
        if isinstance(admission, Open):
            return self._parking.hold_for_circuit(job, admission)
        if (reached := self._credit_floor.before_grant(job)) is not None:
            self._request.give_back(admission)
            return self._parking.hold_for_credit_floor(job, reached)
        known = self._limiter.known_denial()
        if known is not None:
            self._budget.join_line(job, known)
        if known is not None and not self._budget.can_wait_once_prepared(job, known):
            self._request.give_back(admission)
            return self._parking.defer(job, known)
        if job.stored is None and (skipped := self._check(job)):
            self._request.give_back(admission)
            return skipped
        step, stored = job.current_step, job.stored
        assert stored is not None
        if job.step == 0 and (too_big := check_step_input(step.tool, step.parameters, stored.head)):
            self._request.give_back(admission)
            return self._answers.skip(job.ref, too_big, stored, rule=job.rule_name)
        if job.transaction_id is not None:
            # The call that costs credits was made and accepted: only its result is fetched now.
            return self._request.poll(job, admission)
        return self._run_once(job, job.step_key, lambda: self._request.call_tool(job, admission), admission)

    def _run_once(
        self,
        job: Job,
        key: Mapping[str, str | int],
        work: Callable[[], JobResult],
        admission: Admission | None = None,
    ) -> JobResult:
        """Run `work` once for `key`: S3 and SQS deliver at least once, and a step that has its final result costs
        no second call, nor a fetched result a second output and event. What is parked while the key is held is
        sent once it is released, whatever path leaves the section. An admission not used goes back."""
        self._parking.hold_messages(job)
        try:
            result = self._once.run(key, work)
        except DuplicateInFlight:
            if admission is not None:
                self._request.give_back(admission)
            return self._parking.park_duplicate(job)
        finally:
            self._parking.send_held_messages(job)
        if result.duplicate:
            if admission is not None:
                self._request.give_back(admission)
            logger.info("already handled; no call made", extra={"version_ref": job.ref.version_ref})
            metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
        return result
