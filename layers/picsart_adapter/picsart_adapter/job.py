"""The job being worked on: one object version and one pipeline in this invocation, with what earlier attempts
and steps left behind, and the settings every job is worked on with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from picsart_adapter.delay_queue import AnsweredStep, RetryMessage
from picsart_adapter.jobs import Attempt, JobRef
from picsart_adapter.rules import Pipeline, Rule, Rules, Step, pipeline_hash
from picsart_adapter.s3_events import UploadedObject
from picsart_adapter.storage import StoredObject

__all__ = ["Job", "ProcessorSettings", "counted"]


@dataclass(frozen=True)
class ProcessorSettings:
    #: What happens to each upload: the rules file, or the one rule made of `PICSART_TOOL` (config.py).
    rules: Rules
    output_bucket: str
    presigned_url_ttl_seconds: int
    max_attempts: int
    #: The longest one Picsart request may take (the client's timeout): how long a duplicate waits for the
    #: invocation already working on its version, and how much time an invocation keeps for one more job.
    request_timeout_seconds: float = 30.0
    #: How long work held at its rule's credit floor waits before it looks again (`credit_floor`).
    credit_floor_hold_seconds: float = 300.0


@dataclass
class Job:
    """One object version being worked on in this invocation, with what earlier attempts left behind."""

    #: The version as the event or the delay-queue message names it.
    upload: UploadedObject
    attempts_made: int
    correlation_ids: list[str] = field(default_factory=list)
    #: Of the attempts made, the calls refused for the fleet's fault (a configuration fault or spent credits, met
    #: by the call that opened the circuit or by a probe). They are recorded like any attempt and do not count
    #: towards `max_attempts`: every other job waits for the probe without an attempt, and a job that happens to
    #: probe again and again is not dead-lettered for a fault that is not its own
    #: (test_a_refusal_the_circuit_holds_spends_none_of_the_jobs_attempts).
    circuit_refusals: int = 0
    #: Throttles of the fleet's limiter item, or grants expired in its slow writes, met in a row
    #: (`RetryMessage.throttled_in_a_row`).
    throttled_in_a_row: int = 0
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
    #: Messages parked while this invocation holds the step's once-per-step record, sent once it is
    #: released (None: not holding it, messages go at once).
    held_messages: list[RetryMessage] | None = None
    #: The rule matched and the pipeline this job runs (None: the upload is not matched yet).
    rule: Rule | None = None
    pipeline: Pipeline | None = None
    #: The step to run (0-based) and its input when it is not the first (the step before's `data.url`, as given,
    #: and when it was given).
    step: int = 0
    input_url: str | None = None
    input_url_at: float | None = None
    #: The Picsart correlation id of each step done, in step order.
    step_correlation_ids: list[str] = field(default_factory=list)
    #: How often the pipeline was run again from its first step, and why this time (for the record).
    reruns: int = 0
    rerun_reason: str | None = None
    #: The operator's request that sent this work again (`RetryMessage.replay`), None for the first run.
    replay: str | None = None
    #: The step is answered and only what it made is still to be fetched and stored (no second call).
    answered: AnsweredStep | None = None

    @property
    def rule_name(self) -> str | None:
        return self.rule.name if self.rule else None

    @property
    def pipeline_name(self) -> str | None:
        return self.pipeline.name if self.pipeline else None

    @property
    def result_fetch_key(self) -> dict[str, str | int]:
        """The once-per-step key of fetching an answered step's result: it is stored, and its event put, once
        however often the parked message arrives (test_a_redelivered_fetch_stores_the_result_once)."""
        return {**self.step_key, "result_fetch": 1}

    @property
    def record_identity(self) -> dict[str, Any]:
        """What every write of its job record names, the first included (a job parked before it starts has a
        record too): its rule, its pipeline, and every pipeline the rule runs for this version, since the upload
        has ended when each of them has (test_a_job_parked_before_it_starts_names_its_pipelines)."""
        if self.pipeline is None:
            return {}
        return {
            "rule": self.rule_name or "",
            "rule_pipelines": [each.name for each in self.rule.pipelines] if self.rule else [self.pipeline.name],
            "pipeline": self.pipeline.name,
        }

    @property
    def ref(self) -> JobRef:
        pipeline = self.pipeline_name
        if self.stored is not None:
            return JobRef(self.stored.bucket, self.stored.key, self.stored.version_ref, pipeline)
        return JobRef(self.upload.bucket, self.upload.key, _version_ref_of_event(self.upload), pipeline)

    @property
    def current_step(self) -> Step:
        assert self.pipeline is not None, "a job runs a step once it has a pipeline"
        return self.pipeline.steps[self.step]

    @property
    def is_last_step(self) -> bool:
        return self.pipeline is not None and self.step == len(self.pipeline.steps) - 1

    @property
    def step_label(self) -> str:
        """`step 2 (upscale)`, 1-based, as records and logs name a step."""
        return f"step {self.step + 1} ({self.current_step.tool})"

    @property
    def step_key(self) -> dict[str, str | int]:
        """What makes one paid call unique: the version, the pipeline's definition, the step and the run. An
        operator's replay is a run of its own: a step that failed for good (or was given up) in an earlier run is
        called again (test_a_replayed_job_calls_the_step_an_earlier_run_failed_for_good). Without one the key
        is what it always was, so work parked before replays existed keeps its records."""
        assert self.pipeline is not None
        ref = self.ref
        key: dict[str, str | int] = {
            "bucket": ref.bucket,
            "key": ref.key,
            "version_ref": ref.version_ref,
            "pipeline_hash": pipeline_hash(self.pipeline),
            "step": self.step,
            "run": self.reruns,
        }
        if self.replay:
            key["replay"] = self.replay
        return key

    def for_pipeline(self, rule: Rule, pipeline: Pipeline) -> Job:
        """The job of one of the pipelines the upload's rule runs, from its first step."""
        return Job(
            self.upload,
            self.attempts_made,
            list(self.correlation_ids),
            stored=self.stored,
            resumed=self.resumed,
            taken_up_at=self.taken_up_at,
            rule=rule,
            pipeline=pipeline,
            replay=self.replay,
        )

    def advance(self, result_url: str, correlation_id: str | None, now: float) -> None:
        """The step succeeded before the last one: the next step takes its result as input, with attempts, polls
        and its place in the fleet's line of its own."""
        self.step_correlation_ids.append(correlation_id or "")
        self.step += 1
        self.input_url, self.input_url_at = result_url, now
        self.attempts_made, self.polls, self.transaction_id, self.circuit_refusals = 0, 0, None, 0
        self.in_line, self.turn_at, self.in_flight_since = False, None, None

    def run_again(self, reason: str) -> None:
        """Run the pipeline again from its first step, whose input (the stored source) is always at hand."""
        self.rerun_reason = reason
        self.step, self.input_url, self.input_url_at = 0, None, None
        self.step_correlation_ids = []
        self.attempts_made, self.polls, self.transaction_id, self.answered = 0, 0, None, None
        self.circuit_refusals = 0
        self.reruns += 1

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
            circuit_refusals=self.circuit_refusals,
            throttled_in_a_row=self.throttled_in_a_row,
            due_at=due_at,
            reason=reason,
            picsart_correlation_ids=self.correlation_ids,
            transaction_id=self.transaction_id,
            polls=self.polls,
            in_flight_since=self.in_flight_since,
            in_line=self.in_line,
            turn_at=self.turn_at,
            rule=self.rule_name,
            pipeline=self.pipeline_name,
            pipeline_hash=pipeline_hash(self.pipeline) if self.pipeline else None,
            step=self.step,
            input_url=self.input_url,
            input_url_at=self.input_url_at,
            step_correlation_ids=self.step_correlation_ids,
            reruns=self.reruns,
            replay=self.replay,
            answered=self.answered,
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
