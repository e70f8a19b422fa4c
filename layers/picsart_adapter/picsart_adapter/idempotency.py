"""At most one successful Picsart call per step of a pipeline per object version, however often its event
arrives (Powertools Idempotency on the jobs table).

S3 delivers events at least once, and SQS delivers messages at least once. Each step's work runs inside
Powertools' idempotent section keyed by the step: the version (bucket, key, version id or etag), the pipeline's
definition (`rules.pipeline_hash`: its tools and parameters), the step's index and the run (a pipeline run again
from its first step because an intermediate result grew too old is a new run), with the same key prefix in both
functions, so a duplicate from either source finds the same record:
- finished (succeeded, or failed for good): the recorded result is returned and no call is made; a step before
  the last one keeps its result's URL, which the next step takes up;
- in progress in another invocation: `DuplicateInFlight` is raised and the caller parks the duplicate;
- accepted by an asynchronous tool (its result is being polled), or answered with a result that could not be
  fetched yet (`AnsweredStep`): kept too, since the call that costs credits was made;
- not finished (parked in the delay queue to try again): the record is deleted, so the retry after a
  failure is not mistaken for a duplicate.
A changed pipeline has another hash, so its steps are new work; a renamed one is not.

Records live in the jobs table under pk `idempotency#picsart-call` (Powertools' static partition key with a
sort key), sk `picsart-call#<md5 of the step key>`, expiring with the job records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from picsart_adapter.jobs import RECORD_RETENTION_SECONDS, JobResult, JobStatus

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "picsart-call"
STATIC_PK = f"idempotency#{KEY_PREFIX}"
#: Results kept as final: a duplicate gets these back without a call. Anything else will be tried again.
FINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})


class DuplicateInFlight(Exception):
    """Another invocation is working on this object version right now."""


class _NotFinal(Exception):
    """Carries a result that must not be kept (the job will be tried again) out of the idempotent section,
    which deletes the in-progress record when the section raises."""

    def __init__(self, result: JobResult) -> None:
        super().__init__(result.status.value)
        self.result = result


@dataclass(frozen=True)
class _Replayed:
    """Marks a result read back from the idempotency record."""

    value: dict[str, Any]


class OncePerStep:
    """Runs each paid call once per object version, pipeline definition and step (see the module's docstring)."""

    def __init__(self, table_name: str, dynamodb: DynamoDBClient) -> None:
        self._config = IdempotencyConfig(
            expires_after_seconds=RECORD_RETENTION_SECONDS,
            raise_on_no_idempotency_key=True,
            response_hook=_mark_replayed,
        )
        store = DynamoDBPersistenceLayer(
            table_name=table_name,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value=STATIC_PK,
            boto3_client=dynamodb,
        )
        self._section = idempotent_function(
            _run_work,
            data_keyword_argument="version",
            persistence_store=store,
            config=self._config,
            key_prefix=KEY_PREFIX,
        )

    def register_lambda_context(self, context: LambdaContext) -> None:
        """An in-progress record expires when its invocation would time out, so a crashed invocation does
        not hold the version for longer than that."""
        self._config.register_lambda_context(context)

    def run(self, step_key: Mapping[str, str | int], work: Callable[[], JobResult]) -> JobResult:
        """Run `work` for this step (`Job.step_key`: the version, the pipeline's hash, the step and the run) unless
        a final result is recorded; raise DuplicateInFlight when another invocation is running it now."""
        try:
            answer = self._section(version=dict(step_key), work=work)
        except _NotFinal as not_final:
            return not_final.result
        except IdempotencyAlreadyInProgressError as error:
            raise DuplicateInFlight(str(error)) from None
        if isinstance(answer, _Replayed):
            return JobResult.from_record(answer.value, duplicate=True)
        return JobResult.from_record(answer)


def is_kept(result: JobResult) -> bool:
    """Whether a step's result is kept as its record (final, or a paid call made whose result comes later)."""
    return result.status in FINAL or result.transaction_id is not None or result.answered


def _run_work(version: dict[str, str | int], work: Callable[[], JobResult]) -> dict[str, Any]:
    result = work()
    if not is_kept(result):
        raise _NotFinal(result)
    return asdict(result)


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> _Replayed:
    return _Replayed(dict(response or {}))
