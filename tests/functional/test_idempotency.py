"""At most one successful Picsart call per object version: Powertools Idempotency on the jobs table (moto).

The work is a stand-in counting its runs; what is checked is which runs the idempotent section lets through.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from picsart_adapter.idempotency import STATIC_PK, DuplicateInFlight, OncePerStep
from picsart_adapter.jobs import JobResult, JobStatus
from picsart_local.stack import LocalStack


@dataclass
class Context:
    """What Powertools reads of the Lambda context: the time the invocation has left."""

    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


StepKey = dict[str, str | int]


def new_once(stack: LocalStack, context: Context | None = None) -> OncePerStep:
    once = OncePerStep(stack.outputs["JobsTableName"], stack.client("dynamodb"))
    once.register_lambda_context(context or Context())  # type: ignore[arg-type]
    return once


@pytest.fixture
def once(stack: LocalStack) -> OncePerStep:
    return new_once(stack)


@pytest.fixture
def ref() -> StepKey:
    return {
        "bucket": "input",
        "key": f"uploads/{uuid.uuid4()}.jpg",
        "version_ref": "version:v1",
        "pipeline_hash": "0123456789abcdef",
        "step": 0,
        "run": 0,
    }


class Work:
    def __init__(self, *results: JobResult) -> None:
        self.results = list(results)
        self.runs = 0

    def __call__(self) -> JobResult:
        self.runs += 1
        return self.results.pop(0)


SUCCEEDED = JobResult(JobStatus.SUCCEEDED, output_key="removebg/a.jpg.png", picsart_correlation_ids=["c1"])


def test_a_version_that_succeeded_is_not_run_again(once: OncePerStep, ref: StepKey) -> None:
    work = Work(SUCCEEDED, SUCCEEDED)
    first = once.run(ref, work)
    again = once.run(ref, work)
    assert work.runs == 1
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.status is JobStatus.SUCCEEDED
    assert (again.output_key, again.picsart_correlation_ids) == ("removebg/a.jpg.png", ["c1"])


def test_a_permanent_failure_is_final_too(once: OncePerStep, ref: StepKey) -> None:
    """A redelivered event of a refused upload does not ask Picsart again: it would answer the same 4xx."""
    work = Work(JobResult(JobStatus.FAILED, reason="HTTP 415", http_status=415))
    once.run(ref, work)
    again = once.run(ref, work)
    assert work.runs == 1
    assert (again.status, again.http_status, again.duplicate) == (JobStatus.FAILED, 415, True)


def test_work_parked_for_a_retry_is_not_a_duplicate(once: OncePerStep, ref: StepKey) -> None:
    work = Work(JobResult(JobStatus.WAITING, reason="transient: HTTP 503"), SUCCEEDED)
    assert once.run(ref, work).status is JobStatus.WAITING
    retried = once.run(ref, work)
    assert (retried.status, retried.duplicate, work.runs) == (JobStatus.SUCCEEDED, False, 2)


def test_a_step_answered_but_not_yet_fetched_is_kept_so_a_duplicate_pays_no_second_call(
    once: OncePerStep, ref: StepKey
) -> None:
    """Picsart answered 200 and the result's download failed: the paid call is made, so a redelivered event
    gets the kept result back (the parked message fetches the result itself)."""
    answered = JobResult(JobStatus.WAITING, reason="transient: result download failed", answered=True)
    work = Work(answered, SUCCEEDED)
    once.run(ref, work)
    again = once.run(ref, work)
    assert (again.status, again.answered, again.duplicate, work.runs) == (JobStatus.WAITING, True, True, 1)


def test_other_versions_of_the_same_key_are_separate(once: OncePerStep, ref: StepKey) -> None:
    work = Work(SUCCEEDED, SUCCEEDED)
    once.run(ref, work)
    once.run({**ref, "version_ref": "version:v2"}, work)
    assert work.runs == 2


@pytest.mark.parametrize(
    "other",
    [{"step": 1}, {"pipeline_hash": "fedcba9876543210"}, {"run": 1}],
    ids=["next step", "changed pipeline", "run again"],
)
def test_another_step_pipeline_definition_or_run_is_new_work(
    once: OncePerStep, ref: StepKey, other: dict[str, str | int]
) -> None:
    """One paid call per step per version per pipeline definition: a changed pipeline is new work, and so is a
    pipeline run again because an intermediate result grew too old."""
    work = Work(SUCCEEDED, SUCCEEDED, SUCCEEDED)
    once.run(ref, work)
    assert once.run(ref, work).duplicate is True
    assert once.run({**ref, **other}, work).duplicate is False
    assert work.runs == 2


def test_both_functions_share_the_records(stack: LocalStack, ref: StepKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload function and the retry function see each other's results (one key prefix, not the
    function's name as Powertools would use by default)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "UploadFunction")
    upload = new_once(stack)
    upload.run(ref, Work(SUCCEEDED))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "RetryFunction")
    retry = new_once(stack)
    work = Work(SUCCEEDED)
    assert retry.run(ref, work).duplicate is True
    assert work.runs == 0


def test_a_concurrent_duplicate_is_told_the_version_is_in_flight(once: OncePerStep, ref: StepKey) -> None:
    inside, release = threading.Event(), threading.Event()

    def slow() -> JobResult:
        inside.set()
        release.wait(10)
        return SUCCEEDED

    first = threading.Thread(target=once.run, args=(ref, slow))
    first.start()
    try:
        assert inside.wait(10)
        with pytest.raises(DuplicateInFlight):
            once.run(ref, Work(SUCCEEDED))
    finally:
        release.set()
        first.join()
    assert once.run(ref, Work(SUCCEEDED)).duplicate is True


def test_records_live_in_the_jobs_table_under_their_own_partition(
    stack: LocalStack, once: OncePerStep, ref: StepKey
) -> None:
    once.run(ref, Work(SUCCEEDED))
    table = stack.resource("dynamodb").Table(stack.outputs["JobsTableName"])
    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": STATIC_PK})["Items"]
    assert items, "the record is in the jobs table"
    assert all(str(item["sk"]).startswith("picsart-call#") for item in items)
    assert all(int(item["expiration"]) > 0 for item in items), "records expire with the table's TTL"


def test_a_crashed_invocation_holds_its_version_only_until_it_would_have_timed_out(
    stack: LocalStack, ref: StepKey
) -> None:
    """The in-progress record expires with the invocation's remaining time: the event's retry can run."""
    crashing = new_once(stack, Context(remaining_ms=300))

    def crash() -> JobResult:
        raise SystemExit("the execution environment died")  # not an Exception: nothing is cleaned up

    with pytest.raises(SystemExit):
        crashing.run(ref, crash)
    with pytest.raises(DuplicateInFlight):
        new_once(stack).run(ref, Work(SUCCEEDED))
    time.sleep(0.5)
    work = Work(SUCCEEDED)
    assert new_once(stack).run(ref, work).status is JobStatus.SUCCEEDED
    assert work.runs == 1
