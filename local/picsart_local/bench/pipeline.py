"""Pipelines in the bench and the soak: the rules file they give the functions, and which upload and step each
Picsart call was for.

The rules file has one rule, matching every upload, with one pipeline of the steps given (`BENCH_PIPELINE`, or
the soak's `SOAK_PIPELINE`): every upload makes one output after one call per step, step n+1 taking step n's
`data.url`.

Picsart's call log names the `image_url` each call was given, not the upload. A first step's image is the
uploaded object (`/<bucket>/<key>`); a later step's is the result of the step before (`/results/<id>.<ext>`).
That result was recorded, with the correlation id of the call that made it, in the idempotency record of the
step that made it (the next step takes it up from there, `idempotency.py`). So each call is traced back, result
by result, to its upload: `attribute_calls`. A step of one version called twice is then two successful calls
with the same upload and step, whatever their inputs were (a first step called twice gives the second step two
different inputs).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import unquote, urlsplit

from boto3.dynamodb.conditions import Key

from picsart_adapter.idempotency import STATIC_PK
from picsart_adapter.rules import (
    Pipeline,
    Rule,
    Rules,
    match_upload,
    output_extension,
    output_key,
    parse_rules,
)

if TYPE_CHECKING:
    from picsart_local.environment import LocalEnvironment


@dataclass(frozen=True)
class PipelineStep:
    """One step of a bench or soak pipeline: a catalogued tool and its parameters."""

    tool: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


#: The bench's pipeline: three calls per upload. Tools the emulator serves; two 2x upscales of a small image stay
#: far below upscale's input limit. One constant, so the scenario's steps change in one place.
BENCH_PIPELINE: Final = (
    PipelineStep("removebg", {"format": "PNG"}),
    PipelineStep("upscale", {"upscale_factor": 2, "format": "PNG"}),
    PipelineStep("upscale", {"upscale_factor": 2, "format": "PNG"}),
)
#: The soak's pipeline: two calls per upload, so a later step runs under the same faults and kills as the first.
SOAK_PIPELINE: Final = BENCH_PIPELINE[:2]
PIPELINE_NAME: Final = "pipeline"
RULE_NAME: Final = "every-upload"
#: Idempotency records the functions keep, under one partition (`idempotency.py`).
IDEMPOTENCY_PK: Final = STATIC_PK
#: A chain of results longer than this is not followed (a pipeline has a few steps; this only stops a cycle).
_MAX_STEPS = 64


def rules_document(steps: Sequence[PipelineStep], pipeline: str = PIPELINE_NAME) -> dict[str, Any]:
    """The rules file's content: one rule for every upload, with one pipeline of `steps`, default output keys."""
    return {
        "rules": [{"name": RULE_NAME, "match": {}, "pipelines": [pipeline]}],
        "pipelines": {
            pipeline: {"steps": [{"tool": step.tool, "parameters": dict(step.parameters)} for step in steps]}
        },
    }


@dataclass(frozen=True)
class PipelineRules:
    """A written rules file, as the functions will read it."""

    path: Path
    rules: Rules

    @property
    def rule(self) -> Rule:
        return self.rules.rules[0]

    @property
    def pipeline(self) -> Pipeline:
        return self.rule.pipelines[0]

    @property
    def tools(self) -> frozenset[str]:
        return frozenset(step.tool for step in self.pipeline.steps)

    @property
    def steps(self) -> int:
        return len(self.pipeline.steps)

    def output_key(self, source_key: str) -> str:
        """Where the pipeline's output of `source_key` goes (its template names no version)."""
        return output_key(self.pipeline, self.rule, source_key, "", output_extension(self.pipeline) or "bin")


def pipelines_of(rules: Rules, key: str, content_type: str | None, size: int) -> tuple[Pipeline, ...]:
    """The pipelines an upload (with no metadata) runs under `rules`: its rule's, or none when no rule matches."""
    matched = match_upload(rules, key, content_type, size)
    return matched.pipelines if matched is not None else ()


def write_rules(path: Path, steps: Sequence[PipelineStep], pipeline: str = PIPELINE_NAME) -> PipelineRules:
    """Write the rules file for `steps` and check it as the functions will (an invalid step fails here, before
    a stack starts)."""
    text = json.dumps(rules_document(steps, pipeline), indent=2) + "\n"
    rules = parse_rules(text, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return PipelineRules(path.resolve(), rules)


# ------------------------------------------------------------------------------------ calls to their upload


class RecordedCall(Protocol):
    """What attribution needs of one call in the emulator's log (its `CallRecord`)."""

    @property
    def correlation_id(self) -> str: ...

    @property
    def image_url_path(self) -> str | None: ...


@dataclass(frozen=True)
class StepOf:
    """The upload (its key) and the step (1-based) one call was for."""

    key: str
    step: int


def producers_from_items(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Result path (`/results/<id>.<ext>`) -> correlation id of the call that made it, from the functions'
    idempotency records (a step before the last keeps its result's URL there)."""
    producers: dict[str, str] = {}
    for item in items:
        if item.get("pk") != IDEMPOTENCY_PK or not item.get("data"):
            continue
        try:
            data = json.loads(str(item["data"]))
        except ValueError:
            continue
        url, correlation_id = data.get("result_url"), data.get("picsart_correlation_id")
        if isinstance(url, str) and isinstance(correlation_id, str) and correlation_id:
            producers[urlsplit(url).path] = correlation_id
    return producers


def idempotency_producers(env: LocalEnvironment) -> dict[str, str]:
    """`producers_from_items` over the idempotency records of the local stack's jobs table (one partition)."""
    assert env.stack is not None
    table = env.stack.resource("dynamodb").Table(env.outputs["JobsTableName"])
    request: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(IDEMPOTENCY_PK), "ConsistentRead": True}
    items: list[dict[str, Any]] = []
    while True:
        page = table.query(**request)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return producers_from_items(items)
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def attribute_calls(
    calls: Sequence[RecordedCall], source_prefix: str, producers: Mapping[str, str]
) -> list[StepOf | None]:
    """For each call, in order, the upload and step it was for; None when it cannot be traced: no image, or an
    input that is neither an upload under `source_prefix` (`/<bucket>/`) nor a recorded result."""
    by_correlation_id = {call.correlation_id: call for call in calls}
    found: dict[int, StepOf | None] = {}

    def trace(call: RecordedCall, depth: int) -> StepOf | None:
        if id(call) in found:
            return found[id(call)]
        path = call.image_url_path
        traced: StepOf | None = None
        if path is not None and path.startswith(source_prefix):
            traced = StepOf(unquote(path[len(source_prefix) :]), 1)
        elif path is not None and depth < _MAX_STEPS:
            producer = by_correlation_id.get(producers.get(path, ""))
            before = trace(producer, depth + 1) if producer is not None else None
            traced = StepOf(before.key, before.step + 1) if before is not None else None
        found[id(call)] = traced
        return traced

    return [trace(call, 0) for call in calls]


@dataclass(frozen=True)
class StepCounts:
    """Calls per step and the paid calls made twice, from attributed calls."""

    steps: int
    #: Per step (index 0 is step 1): calls, successful calls, 429s.
    calls: list[int]
    ok: list[int]
    http_429: list[int]
    #: Per step: successful calls beyond those one upload needed (one per pipeline that has the step).
    duplicates: list[int]
    #: (key, step) -> successful calls, for those with more than they needed.
    duplicated: dict[StepOf, int]
    #: Uploads with a successful call at every step.
    complete: int
    #: Calls that could not be traced to an upload and step, and how many of them succeeded.
    unattributed: int
    unattributed_ok: int

    @property
    def duplicate_calls(self) -> int:
        return sum(self.duplicates)

    @property
    def useful(self) -> int:
        """Successful calls that an upload needed."""
        return sum(self.ok) - self.duplicate_calls

    def as_record(self) -> dict[str, Any]:
        return {
            "calls_by_step": self.calls,
            "calls_ok_by_step": self.ok,
            "http_429_by_step": self.http_429,
            "duplicate_calls_by_step": self.duplicates,
            "uploads_with_every_step": self.complete,
            "unattributed_calls": self.unattributed,
            "unattributed_calls_ok": self.unattributed_ok,
        }


def step_counts(
    statuses: Sequence[int],
    attributed: Sequence[StepOf | None],
    steps: int,
    expected: Callable[[StepOf], int] | None = None,
) -> StepCounts:
    """Count attributed calls (`statuses[i]` is the HTTP status of the call `attributed[i]` is for). `expected`
    says how many successful calls a step of an upload needs: one, unless its rule runs several pipelines (each
    has its own step 1 on the same upload)."""
    calls, ok, refused = [0] * steps, [0] * steps, [0] * steps
    successes: Counter[StepOf] = Counter()
    unattributed = unattributed_ok = 0
    for status, of in zip(statuses, attributed, strict=True):
        if of is None or not 1 <= of.step <= steps:
            unattributed += 1
            unattributed_ok += status == 200
            continue
        calls[of.step - 1] += 1
        refused[of.step - 1] += status == 429
        if status == 200:
            ok[of.step - 1] += 1
            successes[of] += 1
    needed = {of: max(1, expected(of) if expected is not None else 1) for of in successes}
    duplicates = [0] * steps
    for of, count in successes.items():
        duplicates[of.step - 1] += max(0, count - needed[of])
    steps_done: Counter[str] = Counter(of.key for of in successes)
    return StepCounts(
        steps=steps,
        calls=calls,
        ok=ok,
        http_429=refused,
        duplicates=duplicates,
        duplicated={of: count for of, count in successes.items() if count > needed[of]},
        complete=sum(1 for count in steps_done.values() if count == steps),
        unattributed=unattributed,
        unattributed_ok=unattributed_ok,
    )
