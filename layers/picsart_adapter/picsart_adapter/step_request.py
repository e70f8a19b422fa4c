"""One step's request to Picsart (stage 5 of the sequence in `processing`): the job record marked `processing`,
the step's input (a presigned URL for the first step, the step before's `data.url` as given after it), the fleet's
budget taken right before the request, one request (a tool call, or a poll of an asynchronous job), and its answer
taken through the table of outcomes to `answers`."""

from __future__ import annotations

import time
from collections.abc import Callable

from picsart_adapter.answers import Answers
from picsart_adapter.circuit import Admission, FleetCircuit, Probe
from picsart_adapter.credit_floor import CreditFloor
from picsart_adapter.job import Job, ProcessorSettings, counted
from picsart_adapter.job_budget import JobBudget
from picsart_adapter.jobs import Attempt, JobResult, utc_now_iso
from picsart_adapter.observability import MetricUnit, logger, metrics, tracer
from picsart_adapter.outcomes import Outcome, classify
from picsart_adapter.parking import Parking
from picsart_adapter.picsart_client import PicsartClient, PicsartResponse, PicsartTransportError
from picsart_adapter.rate_limit import Denial, FleetRateLimiter, Grant
from picsart_adapter.storage import ObjectStore

__all__ = ["StepRequest"]


class StepRequest:
    """Makes a step's one request once the checks before it let it go, and hands the answer on."""

    def __init__(
        self,
        settings: ProcessorSettings,
        store: ObjectStore,
        client: PicsartClient,
        limiter: FleetRateLimiter,
        circuit: FleetCircuit,
        budget: JobBudget,
        credit_floor: CreditFloor,
        parking: Parking,
        answers: Answers,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._limiter = limiter
        self._circuit = circuit
        self._budget = budget
        self._credit_floor = credit_floor
        self._parking = parking
        self._answers = answers
        self._clock = clock

    def call_tool(self, job: Job, admission: Admission) -> JobResult:
        """Call the step's tool with its input by URL: the record marked `processing` first, the budget taken
        last, right before the call, since a grant counts in the second it was taken
        (test_the_budget_is_taken_right_before_the_call_after_the_record_and_the_presigned_url)."""
        step, stored = job.current_step, job.stored
        assert stored is not None
        self._answers.start_record(job, job.attempts_made + 1)
        if job.step == 0:
            image_url = self._store.presigned_get_url(stored, self._settings.presigned_url_ttl_seconds)
        else:
            # The step before's result, exactly as Picsart gave it: the guide forbids taking result URLs apart,
            # and the intermediate image never passes through Lambda or S3.
            assert job.input_url is not None, "a step after the first has the step before's result as input"
            image_url = job.input_url
        grant = self._acquire(job, admission)
        if isinstance(grant, JobResult):
            return grant
        attempt = Attempt(
            number=job.attempts_made + 1, started_at=utc_now_iso(), outcome="", step=job.step + 1, tool=step.tool
        )
        call = lambda: self._client.call_tool(step.catalogued, image_url, step.parameters)  # noqa: E731
        return self._send(job, admission, attempt, f"## picsart.{step.tool}", call)

    def poll(self, job: Job, admission: Admission) -> JobResult:
        """Ask for the result of an asynchronous job Picsart accepted."""
        step, transaction_id = job.current_step, job.transaction_id
        assert transaction_id is not None
        self._answers.start_record(job, job.attempts_made)
        grant = self._acquire(job, admission)
        if isinstance(grant, JobResult):
            return grant
        job.polls += 1
        attempt = Attempt(
            number=job.attempts_made,
            started_at=utc_now_iso(),
            outcome="",
            poll=job.polls,
            step=job.step + 1,
            tool=step.tool,
        )
        poll = lambda: self._client.poll(step.catalogued, transaction_id)  # noqa: E731
        return self._send(job, admission, attempt, f"## picsart.{step.tool}.poll", poll)

    def give_back(self, admission: Admission) -> None:
        """An admission not used for a call: a probe's turn goes back (a budget unit stays spent)."""
        if isinstance(admission, Probe):
            self._circuit.record(admission, None, None, "the probe's call was not made")

    def _acquire(self, job: Job, admission: Admission) -> Grant | JobResult:
        """The fleet's budget for the call about to be made (`JobBudget.take`), or the job parked until it
        returns."""
        decision = self._budget.take(job)
        if isinstance(decision, Denial):
            self.give_back(admission)
            return self._parking.defer(job, decision, record=True)
        job.throttled_in_a_row = 0
        if (reached := self._credit_floor.after_grant(job, decision.state)) is not None:
            # The balance reached the rule's floor since this environment's view: the unit goes unused.
            self.give_back(admission)
            return self._parking.hold_for_credit_floor(job, reached, record=True)
        if isinstance(admission, Probe):
            logger.info("probing Picsart: the fleet's circuit is open")
        return decision

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
            self._limiter.observe(
                response.rate_limit,
                throttled=outcome is Outcome.THROTTLED,
                sent_at=self._clock() - response.duration_ms / 1000,
            )
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
