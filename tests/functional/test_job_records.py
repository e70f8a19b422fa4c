"""Job records in the jobs table (moto server): what a reader of a record, or of `report`, sees."""

from __future__ import annotations

import uuid
from typing import Any

from picsart_adapter.jobs import Attempt, JobRef, JobStatus, JobStore


def test_a_finished_record_keeps_every_attempt_but_not_the_wait_it_had(table: Any) -> None:
    jobs = JobStore(table)
    ref = JobRef("input", f"uploads/{uuid.uuid4()}.png", "version:v1")
    jobs.start(ref, {"tool": "removebg"})
    failed = Attempt(number=1, started_at="2026-01-01T00:00:00.000Z", outcome="transient", http_status=503)
    jobs.finish(ref, JobStatus.WAITING, failed, "transient: HTTP 503", {"due_at": "2026-01-01T00:00:02Z"})
    waiting = jobs.get(ref)
    assert waiting is not None
    assert (waiting["status"], waiting["reason"], waiting["due_at"]) == (
        "waiting",
        "transient: HTTP 503",
        "2026-01-01T00:00:02Z",
    )
    done = Attempt(number=2, started_at="2026-01-01T00:00:02.500Z", outcome="success", http_status=200)
    jobs.finish(ref, JobStatus.SUCCEEDED, done, details={"output_key": "removebg/x.png"})
    record = jobs.get(ref)
    assert record is not None
    assert record["status"] == "succeeded"
    assert "due_at" not in record
    assert "reason" not in record
    assert [a["http_status"] for a in record["attempts"]] == [503, 200]
    assert record["completed_at"]


def test_a_waiting_record_is_written_unless_the_record_has_ended(table: Any) -> None:
    """A late or duplicate "waiting" must not undo an ending (DynamoDB's condition, not a read first)."""
    jobs = JobStore(table)
    ref = JobRef("input", f"uploads/{uuid.uuid4()}.png", "version:v1")
    assert jobs.record_waiting(ref, None, "rate limit: quota", {"due_at": "2026-01-01T00:00:05Z"}) is None
    assert jobs.record_waiting(ref, None, "rate limit: quota", {"due_at": "2026-01-01T00:00:09Z"}) is None
    waiting = jobs.get(ref)
    assert waiting is not None
    assert (waiting["status"], waiting["due_at"]) == ("waiting", "2026-01-01T00:00:09Z")

    for ended in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SKIPPED):
        jobs.finish(ref, ended, reason=None if ended is JobStatus.SUCCEEDED else "why")
        kept = jobs.record_waiting(ref, None, "rate limit: quota", {"due_at": "2026-01-01T00:01:00Z"})
        assert kept is not None
        assert kept["status"] == ended.value, "the ending is returned"
        record = jobs.get(ref)
        assert record is not None
        assert record["status"] == ended.value, "the ending stays"
        assert "due_at" not in record

    replayed = jobs.record_waiting(ref, None, "replay", {"due_at": "2026-01-01T00:02:00Z"}, keep_ending=False)
    assert replayed is None
    record = jobs.get(ref)
    assert record is not None
    assert record["status"] == "waiting", "an operator's replay runs again whatever the record says"
