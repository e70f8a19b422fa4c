"""Job records in DynamoDB: one item per object version and pipeline, with every attempt of every step and its
correlation ids.

Key: pk = `object#<bucket>/<key>`, sk = `<version ref>#<pipeline>` (the version ref is `version:<id>` or
`etag:<etag>`), so every version and pipeline of one key is found with one query. An upload that never reaches a
pipeline (skipped before a rule is matched, or matched by none) has one item, sk = `<version ref>`. The same table
holds the fleet's rate-limit state under other pks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from boto3.dynamodb.conditions import Key

from picsart_adapter.conditional_write import Written, update_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

#: Job records are kept 90 days (the table's TTL attribute), long enough for any support report.
RECORD_RETENTION_SECONDS = 90 * 86_400


class JobStatus(StrEnum):
    PROCESSING = "processing"
    WAITING = "waiting"  # parked in the delay queue until its due time
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # permanent: Picsart refused this input, or attempts ran out (then also dead-lettered)
    SKIPPED = "skipped"  # never sent: not an image Picsart accepts, empty, too large, or gone


#: Where a job ends: nothing the job does afterwards changes its status (an operator's redrive reopens it).
ENDED: Final = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SKIPPED)


@dataclass(frozen=True)
class JobResult:
    """How one upload stands after an invocation handled it."""

    status: JobStatus
    reason: str | None = None
    output_key: str | None = None
    picsart_correlation_id: str | None = None
    http_status: int | None = None
    #: True when the version was already handled and its recorded result is returned without a call.
    duplicate: bool = False
    picsart_correlation_ids: list[str] = field(default_factory=list)
    #: An asynchronous tool accepted the job: the call that costs credits is made, its result is polled.
    transaction_id: str | None = None
    #: The rule and pipeline the job ran (None: it never reached one).
    rule: str | None = None
    pipeline: str | None = None
    #: A step before the last one succeeded: its `data.url`, the next step's input (kept as the step's result,
    #: so a redelivered step takes it up without a second call).
    result_url: str | None = None
    #: The step (1-based) this result is of.
    step: int | None = None
    #: Picsart answered the step and its output is fetched later (`AnsweredStep`): kept as the step's result, so
    #: a redelivered step is not called again.
    answered: bool = False

    @classmethod
    def from_record(cls, record: dict[str, Any], duplicate: bool = False) -> JobResult:
        """The result as kept in an idempotency record (a dict of these fields)."""
        return cls(
            status=JobStatus(record["status"]),
            reason=record.get("reason"),
            output_key=record.get("output_key"),
            picsart_correlation_id=record.get("picsart_correlation_id"),
            http_status=record.get("http_status"),
            duplicate=duplicate,
            picsart_correlation_ids=list(record.get("picsart_correlation_ids") or []),
            transaction_id=record.get("transaction_id"),
            rule=record.get("rule"),
            pipeline=record.get("pipeline"),
            result_url=record.get("result_url"),
            step=int(record["step"]) if record.get("step") is not None else None,
            answered=bool(record.get("answered")),
        )


@dataclass(frozen=True)
class JobRef:
    """One job: an object version, and the pipeline it runs (None: the upload before any pipeline)."""

    bucket: str
    key: str
    version_ref: str
    pipeline: str | None = None

    @property
    def item_key(self) -> dict[str, str]:
        sort_key = self.version_ref if self.pipeline is None else f"{self.version_ref}#{self.pipeline}"
        return {"pk": object_pk(self.bucket, self.key), "sk": sort_key}

    def for_pipeline(self, pipeline: str | None) -> JobRef:
        return JobRef(self.bucket, self.key, self.version_ref, pipeline)


def split_sort_key(sort_key: str) -> tuple[str, str | None]:
    """A record's sk as (version ref, pipeline), the pipeline None for an upload that reached none
    (`JobRef.item_key` builds it)."""
    version_ref, separator, pipeline = sort_key.partition("#")
    return version_ref, pipeline if separator else None


def object_pk(bucket: str, key: str) -> str:
    return f"object#{bucket}/{key}"


@dataclass
class Attempt:
    """One call to Picsart (or one try that got no answer), as a support report needs it."""

    number: int
    started_at: str
    outcome: str
    #: The pipeline's step (1-based) and its tool.
    step: int | None = None
    tool: str | None = None
    #: Set on a request for an asynchronous job's result: which poll this was.
    poll: int | None = None
    #: Set on a fetch of what an answered step made, after an earlier fetch failed (no call to Picsart).
    result_fetch: bool | None = None
    http_status: int | None = None
    picsart_correlation_id: str | None = None
    duration_ms: int | None = None
    rate_limit: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_body: str | None = None

    def as_item(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None and v != {}}


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, ref: JobRef) -> dict[str, Any] | None:
        item = self._table.get_item(Key=ref.item_key, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def for_object(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """Every version's record of one key, oldest first."""
        answer = self._table.query(KeyConditionExpression=Key("pk").eq(object_pk(bucket, key)), ConsistentRead=True)
        items = [dict(item) for item in answer.get("Items", [])]
        return sorted(items, key=lambda item: str(item.get("created_at", "")))

    def start(self, ref: JobRef, details: dict[str, Any]) -> None:
        """Mark the job as being processed now (a crash leaves it visibly `processing`)."""
        self._update(ref, {"status": JobStatus.PROCESSING.value, **details})

    def finish(
        self,
        ref: JobRef,
        status: JobStatus,
        attempt: Attempt | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        unless_ended: bool = False,
    ) -> Written:
        """Record where the job stands after an attempt (or a check that needed none); with `unless_ended`, only
        while the record has not ended (what was written, or the ended record)."""
        values: dict[str, Any] = {"status": status.value, **(details or {})}
        if reason is not None:
            values["reason"] = reason
        if status in ENDED:
            values["completed_at"] = utc_now_iso()
        # What described an earlier wait would mislead a reader of the finished record.
        stale = [] if status is JobStatus.WAITING else ["due_at"]
        if status is JobStatus.SUCCEEDED:
            stale.append("reason")
        remove = [name for name in stale if name not in values]
        return self._update(ref, values, attempt, remove=remove, unless_ended=unless_ended)

    def record_waiting(
        self,
        ref: JobRef,
        attempt: Attempt | None,
        reason: str,
        details: dict[str, Any],
        keep_ending: bool = True,
    ) -> dict[str, Any] | None:
        """Record the job as parked until `details["due_at"]`; None once written. With `keep_ending`, a record
        that has ended is kept and returned instead: a job parked before its once-per-step section may have ended
        elsewhere (an S3 event delivered again after the upload was processed), and a write that came late must
        not undo an ending (test_a_duplicate_event_of_a_finished_upload_leaves_its_record_as_it_ended). An
        operator's replay runs again whatever the record says."""
        written = self.finish(ref, JobStatus.WAITING, attempt, reason, details, unless_ended=keep_ending)
        return None if written.written else dict(written.item or {})

    def reopen(self, ref: JobRef, reason: str, details: dict[str, Any]) -> None:
        """An operator sent the job to the delay queue again (`picsart-local redrive` or `reprocess`): it is
        waiting once more, and what said it had ended goes; its attempts so far stay for the support report."""
        values = {"status": JobStatus.WAITING.value, "reason": reason, **details}
        self._update(ref, values, remove=["completed_at", "dead_lettered"])

    def _update(
        self,
        ref: JobRef,
        values: dict[str, Any],
        attempt: Attempt | None = None,
        remove: list[str] | None = None,
        unless_ended: bool = False,
    ) -> Written:
        now = utc_now_iso()
        names: dict[str, str] = {"#created_at": "created_at", "#expiration": "expiration"}
        expr_values: dict[str, Any] = {
            ":now": now,
            ":expiration": int(datetime.now(UTC).timestamp()) + RECORD_RETENTION_SECONDS,
            ":bucket": ref.bucket,
            ":key": ref.key,
        }
        sets = [
            "#created_at = if_not_exists(#created_at, :now)",
            "#expiration = :expiration",
            "#bucket = :bucket",
            "#key = :key",
            "#updated_at = :now",
        ]
        names.update({"#bucket": "bucket", "#key": "key", "#updated_at": "updated_at"})
        for index, (name, value) in enumerate(sorted(values.items())):
            names[f"#f{index}"] = name
            expr_values[f":f{index}"] = value
            sets.append(f"#f{index} = :f{index}")
        if attempt is not None:
            names["#attempts"] = "attempts"
            expr_values[":attempt"] = [attempt.as_item()]
            expr_values[":empty"] = []
            sets.append("#attempts = list_append(if_not_exists(#attempts, :empty), :attempt)")
            if attempt.picsart_correlation_id:
                names["#last_cid"] = "picsart_correlation_id"
                expr_values[":last_cid"] = attempt.picsart_correlation_id
                sets.append("#last_cid = :last_cid")
        removals = []
        for index, name in enumerate(remove or []):
            names[f"#r{index}"] = name
            removals.append(f"#r{index}")
        condition = None
        if unless_ended:
            names["#status"] = "status"
            expr_values.update({f":ended{index}": status.value for index, status in enumerate(ENDED)})
            ended = ", ".join(f":ended{index}" for index in range(len(ENDED)))
            condition = f"attribute_not_exists(#status) OR NOT (#status IN ({ended}))"
        return update_item(
            self._table,
            ref.item_key,
            "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removals) if removals else ""),
            condition,
            names=names,
            values=expr_values,
        )
