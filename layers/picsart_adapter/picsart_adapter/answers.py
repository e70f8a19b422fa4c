"""What Picsart's answer leads to: the circuit told, the answer observed (attempt, logs, metrics), then the next
step's input, the output stored, the job failed for good (and the rule's failure policy applied), or parked for
a poll or a retry. And the job records around a request: started before it, skipped instead of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from picsart_adapter.circuit import Admission, FleetCircuit, Probe
from picsart_adapter.completion_events import CompletionEvents, job_event_detail
from picsart_adapter.delay_queue import AnsweredStep
from picsart_adapter.input_checks import Rejection
from picsart_adapter.job import Job, ProcessorSettings, counted
from picsart_adapter.jobs import Attempt, JobRef, JobResult, JobStatus, JobStore, utc_now_iso
from picsart_adapter.observability import MetricUnit, logger, metrics
from picsart_adapter.outcomes import Outcome
from picsart_adapter.outputs import Outputs, output_metadata
from picsart_adapter.parking import Parking
from picsart_adapter.picsart_client import PicsartClient, PicsartResponse, ResultDownloadError
from picsart_adapter.rate_limit import parse_reset_time
from picsart_adapter.rules import pipeline_hash
from picsart_adapter.storage import StoredObject

__all__ = ["Answers"]


class Answers:
    """Takes one answer through to the job's end or its next wait, and writes the job's records."""

    def __init__(
        self,
        settings: ProcessorSettings,
        outputs: Outputs,
        jobs: JobStore,
        client: PicsartClient,
        circuit: FleetCircuit,
        parking: Parking,
        clock: Callable[[], float],
        events: CompletionEvents,
    ) -> None:
        self._events = events
        self._settings = settings
        self._outputs = outputs
        self._jobs = jobs
        self._client = client
        self._circuit = circuit
        self._parking = parking
        self._clock = clock

    def handle(
        self, job: Job, admission: Admission, attempt: Attempt, response: PicsartResponse, outcome: Outcome
    ) -> JobResult:
        """Tell the fleet's circuit, then store the result, fail the job for good, or park it for a poll or a
        retry (a configuration fault or spent credits: until the circuit's probe)."""
        refusal = f"HTTP {response.status}: {response.error_detail}"
        tripped = self._circuit.record(admission, outcome, response.status, refusal, response.correlation_id)
        if tripped and tripped.opened_now:
            metrics.add_metric(name="CircuitOpened", unit=MetricUnit.Count, value=1)
            logger.error("the fleet's circuit opened: no calls until a probe succeeds", extra={"why": tripped.reason})
        elif isinstance(admission, Probe) and tripped is None and outcome is Outcome.SUCCESS:
            logger.info("probe succeeded: the fleet's circuit is closed")
        tool = job.current_step.catalogued
        if outcome is Outcome.SUCCESS:
            return self._step_done(job, attempt, response)
        if outcome is Outcome.ACCEPTED and tool.asynchronous:
            transaction_id = response.transaction_id or job.transaction_id
            if transaction_id:
                return self._parking.await_result(job, attempt, transaction_id)
            return self._fail(job, attempt, response, "Picsart answered 202 without a transaction_id to poll")
        if outcome is Outcome.ACCEPTED:
            return self._fail(job, attempt, response, f"Picsart answered 202 to the synchronous {tool.name} tool")
        if outcome.retryable:
            if outcome in {Outcome.CONFIGURATION, Outcome.CREDITS} and tripped:
                # The fleet's fault, held by the circuit: the job waits for the probe with every other job.
                job.circuit_refusals += 1
                reset_at: float | None = tripped.probe_at
            else:
                reset_at = parse_reset_time(response.rate_limit.reset_time, self._clock())
            return self._parking.retry_later(job, counted(attempt, job), outcome, reset_at)
        return self._fail(job, attempt, response, f"Picsart refused the request: {refusal}")

    @staticmethod
    def observe(response: PicsartResponse, outcome: Outcome, attempt: Attempt) -> None:
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

    def _step_done(self, job: Job, attempt: Attempt, response: PicsartResponse) -> JobResult:
        """A step succeeded: its result is the next step's input, or the pipeline's output."""
        data = (response.body or {}).get("data")
        if job.current_step.catalogued.result == "data":
            if data is None:
                return self._fail(job, attempt, response, "Picsart answered 200 without data")
            return self._store_output(job, attempt, response, data=data)
        url = response.result_url
        if url is None:
            return self._fail(job, attempt, response, "Picsart answered 200 without data.url")
        if not job.is_last_step:
            self._jobs.finish(job.ref, JobStatus.PROCESSING, attempt, details={"steps_done": job.step + 1})
            logger.info("step done; its result is the next step's input", extra={"step": job.step + 1})
            return JobResult(
                JobStatus.SUCCEEDED,
                picsart_correlation_id=response.correlation_id,
                http_status=response.status,
                picsart_correlation_ids=job.correlation_ids,
                rule=job.rule_name,
                pipeline=job.pipeline_name,
                result_url=url,
                step=job.step + 1,
            )
        return self._store_output(job, attempt, response, image_url=url)

    def _store_output(
        self, job: Job, attempt: Attempt, response: PicsartResponse, image_url: str | None = None, data: object = None
    ) -> JobResult:
        answered = AnsweredStep(
            result_url=image_url, data=data, correlation_id=response.correlation_id, http_status=response.status
        )
        return self._store_answered(job, attempt, answered)

    def fetch_answered(self, job: Job) -> JobResult:
        """Fetch and store what a step Picsart has answered made, after an earlier fetch failed: no second call
        (test_a_failed_result_download_is_fetched_again_without_a_second_call)."""
        answered = job.answered
        assert answered is not None
        self.start_record(job, job.attempts_made + 1)
        attempt = Attempt(
            number=job.attempts_made + 1,
            started_at=utc_now_iso(),
            outcome=Outcome.SUCCESS.value,
            step=job.step + 1,
            tool=job.current_step.tool,
            picsart_correlation_id=answered.correlation_id,
            result_fetch=True,
        )
        return self._store_answered(job, attempt, answered)

    def _store_answered(self, job: Job, attempt: Attempt, answered: AnsweredStep) -> JobResult:
        """Download what the pipeline made and store it: the last step's image, or a data step's answer (with the
        image of the step before it, whose result the data step has just read). A failed download parks the job
        with the answer, and the answer is kept as the step's result (`JobResult.answered`)."""
        source = answered.result_url or (job.input_url if job.step else None)
        try:
            image = self._client.download_result(source) if source else None
        except ResultDownloadError as error:
            attempt.error = str(error)
            if attempt.result_fetch:
                attempt.outcome = Outcome.TRANSIENT.value
            job.answered = answered
            parked = self._parking.retry_later(job, counted(attempt, job), Outcome.TRANSIENT, None)
            # The call's own answer is kept as the step's result; a failed fetch is not final, and is tried again.
            return replace(parked, answered=parked.status is JobStatus.WAITING and not attempt.result_fetch)
        job.answered = None
        details: dict[str, object] = {"output_bucket": self._outputs.bucket, "http_status": answered.http_status}
        if answered.result_url is not None and image is not None:
            output_key = self._outputs.write_image(job, *image, output_metadata(job, answered.correlation_id))
        else:
            output_key, sidecar_key = self._outputs.write_data(job, answered.data, answered.correlation_id, image)
            details["sidecar_key"] = sidecar_key
        details["output_key"] = output_key
        self._jobs.finish(job.ref, JobStatus.SUCCEEDED, attempt, details=details)
        metrics.add_metric(name="JobsSucceeded", unit=MetricUnit.Count, value=1)
        logger.info("output stored", extra={"output_key": output_key})
        result = JobResult(
            JobStatus.SUCCEEDED,
            output_key=output_key,
            picsart_correlation_id=answered.correlation_id,
            http_status=answered.http_status,
            picsart_correlation_ids=job.correlation_ids,
            rule=job.rule_name,
            pipeline=job.pipeline_name,
            step=job.step + 1,
        )
        # Before the once-per-step record is saved: a kill before the put loses no event (completion_events.py).
        output_keys = [output_key, *([str(details["sidecar_key"])] if "sidecar_key" in details else [])]
        self._events.job_ended(job, result, attempt, output_bucket=self._outputs.bucket, output_keys=output_keys)
        return result

    def _fail(self, job: Job, attempt: Attempt, response: PicsartResponse, reason: str) -> JobResult:
        """Picsart refused this job for good: record the status, the error body and the correlation id."""
        attempt.error_body = response.raw_body
        if job.pipeline is not None:
            reason = f"{job.step_label}: {reason}"
        logger.error("job failed permanently", extra={"reason": reason, "error_body": response.raw_body})
        reason, fallback = self._outputs.copy_original(job, reason)
        self._jobs.finish(job.ref, JobStatus.FAILED, attempt, reason, {"http_status": response.status, **fallback})
        metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        result = JobResult(
            JobStatus.FAILED,
            reason=reason,
            output_key=fallback.get("output_key"),
            picsart_correlation_id=response.correlation_id,
            http_status=response.status,
            picsart_correlation_ids=job.correlation_ids,
            rule=job.rule_name,
            pipeline=job.pipeline_name,
            step=job.step + 1,
        )
        self._events.job_ended(
            job, result, attempt, output_bucket=fallback.get("output_bucket"), output_keys=[result.output_key]
        )
        return result

    # -- records ---------------------------------------------------------------------------------------
    def start_record(self, job: Job, attempt_count: int) -> None:
        """Mark the job as being processed now (a crash leaves it visibly `processing`)."""
        stored, upload, pipeline = job.stored, job.upload, job.pipeline
        assert stored is not None
        assert pipeline is not None
        self._jobs.start(
            job.ref,
            {
                **job.record_identity,
                "pipeline_hash": pipeline_hash(pipeline),
                "steps": [step.tool for step in pipeline.steps],
                "step": job.step + 1,
                "tool": job.current_step.tool,
                "size": stored.size,
                "etag": stored.etag,
                "attempt_count": attempt_count,
                **({"version_id": stored.version_id} if stored.version_id else {}),
                **({"s3_request_id": upload.s3_request_id} if upload.s3_request_id else {}),
                **({"reruns": job.reruns, "rerun_reason": job.rerun_reason} if job.rerun_reason else {}),
            },
        )

    def skip(
        self, ref: JobRef, rejection: Rejection, stored: StoredObject | None = None, rule: str | None = None
    ) -> JobResult:
        result = JobResult(JobStatus.SKIPPED, reason=rejection.reason, pipeline=ref.pipeline, rule=rule)
        # A skip has no once-per-step record: its job record tells a redelivered event, which emits no second
        # completion event, and is written after the event so that a kill in between loses none
        # (test_a_redelivered_skip_emits_no_second_event).
        if (self._jobs.get(ref) or {}).get("status") == JobStatus.SKIPPED.value:
            result = replace(result, duplicate=True)
        else:
            self._events.put(job_event_detail(ref, result, skip_code=rejection.code))
        details = {"skip_code": rejection.code, **({"size": stored.size} if stored else {})}
        self._jobs.finish(ref, JobStatus.SKIPPED, reason=rejection.reason, details=details)
        metrics.add_metric(name="JobsSkipped", unit=MetricUnit.Count, value=1)
        logger.warning("upload not sent to Picsart", extra={"skip_code": rejection.code, "reason": rejection.reason})
        return result
