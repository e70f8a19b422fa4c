"""`picsart-local reprocess`: objects already uploaded sent through their rules again, as the rules are now.

Each current object version under the prefix (optionally modified since a time) is read as the upload function
reads it (size, first bytes, metadata: `ObjectStore.describe`), checked, and matched to its rule with the plan of
`picsart-local plan` (`plan.build_plan`). For each pipeline of that rule, its job record for the version says
what is left to do:
- `succeeded` with the pipeline's current definition (`pipeline_hash`): its outputs are there, **up to date**;
- `waiting` or `processing`: the work is **in progress** (parked work whose pipeline changed runs as it is now);
- anything else (no record, failed, skipped, or succeeded with an older definition): **queued**.
A queued job is a delay-queue message at its pipeline's first step, a replay (`RetryMessage.replay`, part of the
idempotency key): a step an earlier run failed for good is called again. Its record says it waits again.

Picsart calls are counted as the functions pay them, one per step (`+ polls` for an asynchronous step). The jobs
are spread over time with SQS DelaySeconds (work due later than SQS's 900 s hops, as parked work does) at a pace
the fleet's limiter takes: a share of the limit per window the limiter item has learned, or a default pace while
it knows none. The limiter refuses and lines up what comes too early anyway; the pace keeps that line short and
leaves the rest of the quota to new uploads.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

from picsart_adapter.delay_queue import DelayQueue, RetryMessage
from picsart_adapter.input_checks import SNIFFED_MEDIA_TYPES, check_object, sniff_image_format
from picsart_adapter.jobs import JobRef, JobStore
from picsart_adapter.rate_limit import LimiterState, key_fingerprint
from picsart_adapter.rules import Rules
from picsart_adapter.storage import ObjectStore
from picsart_local.plan import build_plan, calls_text
from picsart_local.redrive import replay_id

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

#: Above this many Picsart calls, reprocess asks before it queues anything (as remove.bg's batch tool asks).
CONFIRM_ABOVE_CALLS: Final = 50
#: The share of the fleet's learned rate the reprocessed work is paced at: the rest is left to new uploads.
PACE_SHARE: Final = 0.5
#: Calls per second while the limiter item has learned no limit (no call made yet, or an unknown key).
DEFAULT_PACE_PER_SECOND: Final = 1.0
_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}

Decision = Literal["queue", "up to date", "in progress"]


@dataclass(frozen=True)
class PipelineWork:
    """One pipeline of one object version: what it costs and what is done with it."""

    rule: str
    pipeline: str
    hash: str
    calls: int
    polls: bool
    decision: Decision
    why: str


@dataclass(frozen=True)
class ObjectWork:
    """One current object version, its rule's pipelines, or why it is skipped."""

    key: str
    version_id: str | None
    etag: str
    version_ref: str
    rule: str | None
    pipelines: tuple[PipelineWork, ...] = ()
    skipped: str | None = None

    @property
    def queued(self) -> list[PipelineWork]:
        return [work for work in self.pipelines if work.decision == "queue"]


@dataclass(frozen=True)
class ReprocessPlan:
    bucket: str
    prefix: str
    rules_source: str
    objects: tuple[ObjectWork, ...]
    replay: str

    @property
    def jobs(self) -> list[tuple[ObjectWork, PipelineWork]]:
        return [(item, work) for item in self.objects for work in item.queued]

    @property
    def calls(self) -> int:
        return sum(work.calls for _, work in self.jobs)

    @property
    def polls(self) -> bool:
        return any(work.polls for _, work in self.jobs)

    def count(self, decision: Decision) -> int:
        return sum(1 for item in self.objects for work in item.pipelines if work.decision == decision)


@dataclass(frozen=True)
class Pace:
    calls_per_second: float
    why: str


@dataclass
class SendResult:
    sent: int = 0
    last_delay_seconds: float = 0.0
    keys: list[str] = field(default_factory=list)


def asks_before_sending(calls: int) -> bool:
    """Whether the operator is asked before the work is queued (unless `--yes`)."""
    return calls > CONFIRM_ABOVE_CALLS


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from now (`90s`, `30m`, `2h`, `7d`) or an ISO 8601 date or time (UTC when it
    names no zone)."""
    found = _DURATION.match(text.strip())
    if found:
        return now - timedelta(seconds=float(found.group(1)) * _UNIT_SECONDS[found.group(2)])
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since takes a duration (90s, 30m, 2h, 7d) or an ISO 8601 time (2026-12-01T10:00Z), got {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def current_versions(s3: S3Client, bucket: str, prefix: str, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The current version of every object under the prefix (no delete markers), modified since `since`."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            if not version.get("IsLatest"):
                continue
            if since is not None and version["LastModified"] < since:
                continue
            yield dict(version)


def plan_reprocess(
    s3: S3Client,
    jobs: JobStore,
    rules: Rules,
    bucket: str,
    prefix: str,
    *,
    rules_source: str,
    now: float,
    since: datetime | None = None,
    rule: str | None = None,
) -> ReprocessPlan:
    """Every current version under the prefix with what each of its rule's pipelines needs (`--rule` keeps the
    objects whose rule is that one)."""
    if rule is not None and rule not in {each.name for each in rules.rules}:
        known = ", ".join(each.name for each in rules.rules)
        raise ValueError(f"--rule {rule!r}: the rules ({rules_source}) have no such rule; they have {known}")
    store = ObjectStore(s3)
    found: list[ObjectWork] = []
    for version in current_versions(s3, bucket, prefix, since):
        version_id = version.get("VersionId")
        item = describe_work(store, jobs, rules, bucket, version["Key"], None if version_id == "null" else version_id)
        if rule is None or item.rule == rule:
            found.append(item)
    return ReprocessPlan(bucket, prefix, rules_source, tuple(found), replay_id(now, "reprocess"))


def describe_work(
    store: ObjectStore, jobs: JobStore, rules: Rules, bucket: str, key: str, version_id: str | None
) -> ObjectWork:
    """One object version as the upload function would see it, and each pipeline's decision."""
    stored = store.describe(bucket, key, version_id)
    if stored is None:
        return ObjectWork(key, version_id, "", "", None, skipped="the object no longer exists")
    base = ObjectWork(key, stored.version_id, stored.etag, stored.version_ref, rule=None)
    rejection = check_object(stored.size, stored.head)
    if rejection is not None:
        return replace(base, skipped=rejection.reason)
    sniffed = sniff_image_format(stored.head)
    content_type = SNIFFED_MEDIA_TYPES.get(sniffed) if sniffed else None
    plan = build_plan(
        rules,
        key,
        size=stored.size,
        content_type=content_type,
        metadata=stored.metadata,
        version_ref=stored.version_ref,
    )
    if plan.rule is None:
        return replace(base, skipped=plan.skipped)
    records = {str(record.get("sk")): record for record in jobs.for_object(bucket, key)}
    pipelines = tuple(
        _decide(plan.rule, planned.name, planned.hash, planned.calls, planned.polls, records, stored.version_ref)
        for planned in plan.pipelines
    )
    return replace(base, rule=plan.rule, pipelines=pipelines)


def _decide(
    rule: str,
    pipeline: str,
    definition: str,
    calls: int,
    polls: bool,
    records: Mapping[str, Mapping[str, Any]],
    version_ref: str,
) -> PipelineWork:
    record = records.get(f"{version_ref}#{pipeline}")
    status = str(record.get("status")) if record else None
    decision: Decision
    if record is not None and status == "succeeded" and record.get("pipeline_hash") == definition:
        decision, why = "up to date", f"succeeded with this definition: {record.get('output_key') or 'no output key'}"
    elif record is not None and status in {"waiting", "processing"}:
        decision, why = "in progress", f"{status}: {record.get('reason') or 'its work is under way'}"
    elif record is None:
        decision, why = "queue", "never run"
    elif status == "succeeded":
        decision, why = "queue", f"its outputs are of an earlier definition ({record.get('pipeline_hash')})"
    else:
        decision, why = "queue", f"it ended {status}: {record.get('reason') or ''}".rstrip(": ")
    return PipelineWork(rule, pipeline, definition, calls, polls, decision, why)


def read_limiter(table: Table, api_key: Callable[[], str]) -> LimiterState | None:
    """The fleet's limiter item (its key is the API key's fingerprint), or None when it cannot be read."""
    try:
        fingerprint = key_fingerprint(api_key())
        item = table.get_item(Key={"pk": f"ratelimit#{fingerprint}", "sk": "state"}).get("Item")
    except Exception:  # no access to the secret or the item: the default pace, said so
        return None
    return LimiterState.from_item(item) if item else None


def choose_pace(state: LimiterState | None, spike_per_second: int, given: float | None = None) -> Pace:
    """Calls per second for the queued work: as given (`--pace`), a share of the limiter's learned rate, or the
    default while it has learned none."""
    if given is not None:
        if given <= 0:
            raise ValueError(f"--pace must be above 0 calls per second, got {given}")
        return Pace(given, "as given (--pace)")
    if state is None or state.window_ms is None or state.window_ms <= 0:
        return Pace(DEFAULT_PACE_PER_SECOND, "the fleet's limiter has learned no limit yet: the default pace")
    window_s = state.window_ms / 1000
    rate = min(state.limit / window_s, float(spike_per_second)) * PACE_SHARE
    return Pace(
        rate,
        f"{PACE_SHARE:.0%} of the fleet's {state.limit} calls per {window_s:.3g} s window, the rest left to uploads",
    )


def schedule(plan: ReprocessPlan, pace: Pace, now: float) -> list[tuple[ObjectWork, PipelineWork, float]]:
    """When each queued job is due: in order, each after the calls of those before it at the pace."""
    due: list[tuple[ObjectWork, PipelineWork, float]] = []
    calls_before = 0
    for item, work in plan.jobs:
        due.append((item, work, now + calls_before / pace.calls_per_second))
        calls_before += work.calls
    return due


def send(
    plan: ReprocessPlan,
    sqs: SQSClient,
    jobs: JobStore,
    delay_queue_url: str,
    dead_letter_queue_url: str,
    pace: Pace,
    now: float,
    progress: Progress | None = None,
) -> SendResult:
    """Queue every job of the plan: its record says it waits again, then its message goes, delayed to its turn."""
    queue = DelayQueue(sqs, delay_queue_url, dead_letter_queue_url)
    result = SendResult()
    for item, work, due_at in schedule(plan, pace, now):
        ref = JobRef(plan.bucket, item.key, item.version_ref, work.pipeline)
        reason = f"{plan.replay}: queued to run pipeline {work.pipeline} as it is now ({work.why})"
        due = datetime.fromtimestamp(due_at, UTC).isoformat(timespec="milliseconds")
        # Recorded first: the message may be taken up at once, and its record must not go back to waiting then.
        jobs.reopen(ref, reason, {"replay": plan.replay, "due_at": due})
        message = RetryMessage(
            bucket=plan.bucket,
            key=item.key,
            version_id=item.version_id,
            etag=item.etag,
            attempt=0,
            due_at=due_at,
            reason=reason,
            rule=work.rule,
            pipeline=work.pipeline,
            pipeline_hash=work.hash,
            replay=plan.replay,
        )
        queue.schedule(message, now)
        result.sent += 1
        result.last_delay_seconds = due_at - now
        result.keys.append(item.key)
        if progress is not None:
            progress.update(result.sent)
    if progress is not None:
        progress.finish()
    return result


def render_plan(plan: ReprocessPlan, since: datetime | None = None) -> str:
    """Each object and pipeline with its decision, then the totals and the Picsart calls it costs."""
    after = f" modified since {since.isoformat(timespec='seconds')}" if since else ""
    lines = [f"Reprocess s3://{plan.bucket}/{plan.prefix}{after} with the rules of {plan.rules_source}"]
    for item in plan.objects:
        version = f"version {item.version_id}" if item.version_id else f"etag {item.etag}"
        if item.skipped is not None:
            lines.append(f"  {item.key} ({version}): skipped: {item.skipped}")
            continue
        lines.append(f"  {item.key} ({version}), rule {item.rule}")
        for work in item.pipelines:
            cost = f", {calls_text(work.calls, work.polls)}" if work.decision == "queue" else ""
            lines.append(f"    {work.pipeline} ({work.hash}): {work.decision}{cost}: {work.why}")
    skipped = sum(1 for item in plan.objects if item.skipped is not None)
    lines.append(
        f"{len(plan.objects)} objects: {len(plan.jobs)} jobs to queue, {plan.count('up to date')} up to date, "
        f"{plan.count('in progress')} in progress, {skipped} skipped"
    )
    lines.append(f"Picsart calls it will cost: {calls_text(plan.calls, plan.polls)}")
    return "\n".join(lines) + "\n"


def render_pace(plan: ReprocessPlan, pace: Pace) -> str:
    spread = plan.calls / pace.calls_per_second if plan.jobs else 0.0
    return f"Pace: {pace.calls_per_second:.3g} calls/s ({pace.why}); the work is spread over about {spread:.0f} s\n"


class Progress:
    """A plain progress bar on a terminal (`[#####-----] 12/40 queued`); silent when the stream is not one."""

    WIDTH: Final = 30

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self._total = max(1, total)
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled

    def update(self, done: int) -> None:
        if not self._enabled:
            return
        filled = round(self.WIDTH * done / self._total)
        self._stream.write(f"\r[{'#' * filled}{'-' * (self.WIDTH - filled)}] {done}/{self._total} queued")
        self._stream.flush()

    def finish(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()
