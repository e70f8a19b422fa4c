"""Completion events: one EventBridge event for every job that ends, since Picsart has no webhooks.

A job ends succeeded (its output stored), failed for good (refused by Picsart, or dead-lettered with its
attempts used up), or skipped (never sent, with its reason). At that point, and only there, one event goes to
the bus EVENT_BUS_NAME names: source `picsart.adapter`, detail-type `Picsart Job Succeeded`, `Picsart Job
Failed` or `Picsart Job Skipped`, and the detail `job_event_detail` builds, whose JSON Schema is
`schemas/picsart-job-event.schema.json` (docs/events.md; tests/unit/test_completion_events.py validates every
event the code emits against it).

Once, not twice: the event is put before what makes a redelivery a no-op is written (a called job's
once-per-step record, saved when its section returns; a skipped job's record, written after the event), so an
invocation killed before the put loses no event, and one killed after it is the one way to a second event
(the soak counts and explains them). A replayed result (a duplicate delivery finding the job ended) emits
none.

Delivery never fails the job: a PutEvents that raises or refuses the entry is tried again a few times with a
short backoff, then given up with the metric `CompletionEventsUndelivered` and an error log carrying the
detail, from which the event can be put by hand. The detail names objects and Picsart's correlation ids; it
never holds the API key, and a URL in a reason loses its query string, so no presigned signature leaves.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Final, Protocol

from picsart_adapter.job import Job
from picsart_adapter.jobs import Attempt, JobRef, JobResult, JobStatus, utc_now_iso
from picsart_adapter.observability import MetricUnit, logger, metrics

__all__ = [
    "SCHEMA_VERSION",
    "SOURCE",
    "CompletionEvents",
    "DetailType",
    "PutsEvents",
    "job_event_detail",
]

SOURCE: Final = "picsart.adapter"
#: Bumped when a field changes meaning or goes away (added fields keep it).
SCHEMA_VERSION: Final = "1"
#: How often one event is tried in all, and the first pause between tries (doubling).
PUT_TRIES: Final = 3
FIRST_BACKOFF_SECONDS: Final = 0.2
#: Logged, with the event's key, for each try of a put that raised: that try may have delivered the event, so the
#: next one can deliver it twice (test_a_refused_put_is_tried_again_and_the_job_ends_as_it_did).
PUT_FAILED_MESSAGE: Final = "completion event put failed"
#: A reason longer than this is cut: EventBridge takes 256 KB per entry, and a reason is for people.
MAX_REASON_CHARS: Final = 2000
_URL_QUERY = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s'\"]*")


class DetailType(StrEnum):
    SUCCEEDED = "Picsart Job Succeeded"
    FAILED = "Picsart Job Failed"
    SKIPPED = "Picsart Job Skipped"


_DETAIL_TYPES: Final = {
    JobStatus.SUCCEEDED: DetailType.SUCCEEDED,
    JobStatus.FAILED: DetailType.FAILED,
    JobStatus.SKIPPED: DetailType.SKIPPED,
}


class PutsEvents(Protocol):
    """What is used of boto3's EventBridge client."""

    def put_events(self, *, Entries: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]: ...


def without_query(text: str) -> str:
    """The text with every URL's query string taken out (a presigned URL's signature lives there)."""
    return _URL_QUERY.sub(r"\1", text)


def job_event_detail(
    ref: JobRef,
    result: JobResult,
    *,
    rule: str | None = None,
    step: int | None = None,
    steps: int | None = None,
    attempt: Attempt | None = None,
    output_bucket: str | None = None,
    output_keys: Sequence[str] = (),
    dead_lettered: bool = False,
    skip_code: str | None = None,
    s3_request_id: str | None = None,
    correlation_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """The event's detail for a job that ended with `result` (schemas/picsart-job-event.schema.json)."""
    reason = without_query(result.reason)[:MAX_REASON_CHARS] if result.reason else None
    credits = attempt.rate_limit.get("credits") if attempt is not None else None
    return {
        "schema_version": SCHEMA_VERSION,
        "status": result.status.value,
        "bucket": ref.bucket,
        "key": ref.key,
        "version_id": ref.version_ref.removeprefix("version:") if ref.version_ref.startswith("version:") else None,
        "version_ref": ref.version_ref,
        "rule": rule if rule is not None else result.rule,
        "pipeline": ref.pipeline if ref.pipeline is not None else result.pipeline,
        "reason": reason,
        "skip_code": skip_code,
        "dead_lettered": dead_lettered,
        "output_bucket": output_bucket if output_keys else None,
        "output_keys": list(output_keys),
        "picsart_correlation_ids": [
            cid for cid in dict.fromkeys([*correlation_ids, *result.picsart_correlation_ids]) if cid
        ],
        "attempts": attempt.number if attempt is not None else 0,
        "step": step if step is not None else result.step,
        "steps": steps,
        "http_status": result.http_status,
        "credits_available": credits if isinstance(credits, int) else None,
        "s3_request_id": s3_request_id,
        "ended_at": utc_now_iso(),
    }


class CompletionEvents:
    """Puts one job's completion event on the bus, tried again on failure, never raising."""

    def __init__(
        self,
        client: PutsEvents | None,
        bus_name: str = "default",
        sleep: Callable[[float], None] = time.sleep,
        tries: int = PUT_TRIES,
    ) -> None:
        self._client = client
        self._bus_name = bus_name
        self._sleep = sleep
        self._tries = tries

    def job_ended(
        self,
        job: Job,
        result: JobResult,
        attempt: Attempt | None = None,
        *,
        output_bucket: str | None = None,
        output_keys: Sequence[str | None] = (),
        dead_lettered: bool = False,
    ) -> bool:
        """Put the event of a job that ended while it ran its pipeline (stored, failed, dead-lettered)."""
        detail = job_event_detail(
            job.ref,
            result,
            rule=job.rule_name,
            step=job.step + 1 if job.pipeline else None,
            steps=len(job.pipeline.steps) if job.pipeline else None,
            attempt=attempt,
            output_bucket=output_bucket,
            output_keys=[key for key in output_keys if key],
            dead_lettered=dead_lettered,
            s3_request_id=job.upload.s3_request_id,
            # The steps done keep their call's id even when this invocation replayed their recorded result.
            correlation_ids=job.step_correlation_ids,
        )
        return self.put(detail)

    def put(self, detail: Mapping[str, Any]) -> bool:
        """Put the event of one ended job; False when it could not be delivered (counted and logged)."""
        status = JobStatus(detail["status"])
        entry = {
            "Source": SOURCE,
            "DetailType": _DETAIL_TYPES[status].value,
            "Detail": json.dumps(detail, separators=(",", ":")),
            "EventBusName": self._bus_name,
        }
        if self._client is None:  # a processor built without a bus (tests of other parts)
            return True
        error = "no answer"
        for attempt in range(self._tries):
            if attempt:
                self._sleep(FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                answer = self._client.put_events(Entries=[entry])
            except Exception as raised:  # whatever the SDK raises, the job's end stands
                error = f"{type(raised).__name__}: {raised}"
                # A put whose answer was lost (a read timeout) may have been delivered: the next try can deliver
                # the event a second time. PutEvents takes no idempotency token, so this is said where it happens.
                logger.warning(PUT_FAILED_MESSAGE, extra={"error": error, "event_key": detail.get("key")})
                continue
            (outcome,) = answer.get("Entries") or [{}]
            if not answer.get("FailedEntryCount") and outcome.get("EventId"):
                logger.info(
                    "completion event put",
                    extra={"detail_type": entry["DetailType"], "event_id": outcome["EventId"]},
                )
                return True
            error = f"{outcome.get('ErrorCode', 'no event id')}: {outcome.get('ErrorMessage', '')}".strip(": ")
        metrics.add_metric(name="CompletionEventsUndelivered", unit=MetricUnit.Count, value=1)
        logger.error(
            "completion event not delivered",
            extra={"detail_type": entry["DetailType"], "bus": self._bus_name, "error": error, "detail": detail},
        )
        return False
