"""How the local tools read where an upload stands from its job records (`UploadOutcome.of_records`), which
`wait_for`, the soak and the demo rely on to say an upload has ended."""

from __future__ import annotations

from typing import Any

from picsart_local.environment import UploadOutcome


def record(pipeline: str, status: str, created_at: str, **fields: Any) -> dict[str, Any]:
    return {"sk": f"v1#{pipeline}", "pipeline": pipeline, "status": status, "created_at": created_at, **fields}


def test_an_upload_has_ended_when_every_pipeline_of_its_rule_has() -> None:
    both = ["cut", "white"]
    records = [
        record("cut", "succeeded", "1", rule_pipelines=both, output_key="cut/a.png"),
        record("white", "succeeded", "2", rule_pipelines=both, output_key="white/a.jpg"),
    ]
    outcome = UploadOutcome.of_records("a.png", records)
    assert outcome is not None
    assert outcome.status == "succeeded"
    assert outcome.output_keys == {"cut": "cut/a.png", "white": "white/a.jpg"}


def test_a_pipeline_of_the_rule_with_no_record_yet_keeps_the_upload_processing() -> None:
    records = [record("cut", "succeeded", "1", rule_pipelines=["cut", "white"])]
    outcome = UploadOutcome.of_records("a.png", records)
    assert outcome is not None
    assert outcome.status == "processing"


def test_an_upload_has_not_ended_while_one_pipeline_record_lacks_the_rule_pipelines() -> None:
    """A record written first by parking a job (before it started) names its pipeline only by its sort key.
    Read newest first, it once made an upload look done while that pipeline still waited."""
    waiting = {"sk": "v1#white", "status": "waiting", "created_at": "2", "due_at": "2026-12-07T12:00:00.000+00:00"}
    records = [record("cut", "succeeded", "1", rule_pipelines=["cut", "white"]), waiting]
    outcome = UploadOutcome.of_records("a.png", records)
    assert outcome is not None
    assert outcome.status == "waiting"
    assert set(outcome.pipelines) == {"cut", "white"}


def test_the_first_ending_other_than_success_is_the_uploads_status() -> None:
    both = ["cut", "white"]
    records = [
        record("cut", "failed", "1", rule_pipelines=both, reason="HTTP 400"),
        record("white", "succeeded", "2", rule_pipelines=both),
    ]
    outcome = UploadOutcome.of_records("a.png", records)
    assert outcome is not None
    assert (outcome.status, outcome.reason) == ("failed", "HTTP 400")


def test_only_the_newest_version_counts() -> None:
    old = {"sk": "v0#cut", "pipeline": "cut", "status": "failed", "created_at": "0", "rule_pipelines": ["cut"]}
    records = [old, record("cut", "succeeded", "1", rule_pipelines=["cut"])]
    outcome = UploadOutcome.of_records("a.png", records)
    assert outcome is not None
    assert outcome.status == "succeeded"


def test_no_record_yet_is_no_outcome() -> None:
    assert UploadOutcome.of_records("a.png", []) is None
