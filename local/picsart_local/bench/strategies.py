"""The strategies `picsart-local bench` compares, each a SAM template that the local stack builds and runs.

- ``adapter``: template.yaml as it is (the real handlers, layer, table and delay queue).
- ``pipeline``: the adapter with a rules file: every upload through a pipeline of several steps
  (pipeline.py's `BENCH_PIPELINE`), each step a call taking its own unit of the fleet's budget. It is not
  another way to handle the rate limit, so it is compared with the floor and its targets, not with the others.
- ``sdk-retry``, ``backoff``: template.yaml with UploadFunction's code replaced by a baseline handler (its
  timeout raised to Lambda's 900 s maximum, so that sleeping retries are not cut short) and RetryFunction's
  event source disabled (nothing feeds the delay queue).
- ``concurrency-cap``: as above, but S3 notifies a work queue (WorkQueue, added) that UploadFunction
  consumes one message at a time with ScalingConfig.MaximumConcurrency = N; a 429 fails the delivery and
  the message comes back after the queue's visibility timeout. N comes from the quota and the call's
  latency (Little's law, at least 2, Lambda's minimum), unless given.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from picsart_local.bench.pipeline import BENCH_PIPELINE, PipelineStep
from picsart_local.emulator.settings import ResetTimeFormat

HANDLERS_DIR: Final = Path(__file__).resolve().parent / "handlers"
#: The ways of handling Picsart's rate limit that the bench compares, all with one call per upload.
RATE_LIMIT_STRATEGIES: Final = ("adapter", "sdk-retry", "backoff", "concurrency-cap")
#: Every name `--strategies` takes: the four, and the adapter running a pipeline.
STRATEGY_NAMES: Final = (*RATE_LIMIT_STRATEGIES, "pipeline")
#: Lambda's maximum timeout: an invocation that sleeps through retries is not cut short.
BASELINE_TIMEOUT_S: Final = 900
#: Deliveries of one message before SQS moves it to the dead-letter queue (concurrency-cap).
CAP_MAX_RECEIVE_COUNT: Final = 10
#: Lambda's least MaximumConcurrency for an SQS event source.
CAP_MIN_CONCURRENCY: Final = 2
WORK_QUEUE: Final = "WorkQueue"
UPLOAD_FUNCTION: Final = "UploadFunction"
RETRY_FUNCTION: Final = "RetryFunction"

DESCRIPTIONS: Final = {
    "adapter": "this project: shared DynamoDB budget, delay queue timed to the reset",
    "sdk-retry": "each invocation alone; on 429 sleep Reset-Time (s) + 1-2 s (TypeScript SDK)",
    "backoff": "each invocation alone; exponential backoff with jitter on 429 (tenacity/urllib3)",
    "concurrency-cap": "no limiter; SQS event source MaximumConcurrency = N, 429s retried by visibility",
    "pipeline": "this project with a rules file: each upload through a pipeline, one unit of budget per step",
}
#: The Reset-Time form each strategy's emulator writes: the one that strategy expects (the adapter reads
#: every form; the backoff and concurrency-cap baselines never read it).
RESET_FORMS: Final[dict[str, ResetTimeFormat]] = {
    "adapter": "epoch_ms",
    "sdk-retry": "seconds",
    "backoff": "epoch_ms",
    "concurrency-cap": "epoch_ms",
    "pipeline": "epoch_ms",
}


@dataclass(frozen=True)
class StrategyPlan:
    """What it takes to run one strategy on the local stack."""

    name: str
    description: str
    reset_time_format: ResetTimeFormat
    #: The template to run; None: the project's own template, unchanged.
    document: dict[str, Any] | None = None
    function_environment: Mapping[str, str] = field(default_factory=dict)
    #: Logical id of the queue the input bucket notifies (concurrency-cap), else None.
    work_queue: str | None = None
    max_concurrency: int | None = None
    visibility_timeout_s: int | None = None
    #: The steps every upload goes through (the functions get them as a rules file); empty: no rules file.
    pipeline: tuple[PipelineStep, ...] = ()

    def write_template(self, folder: Path, source: Path) -> Path:
        """The template file to run: the source itself, or the derived one written into `folder` (JSON,
        which YAML readers take as it is)."""
        if self.document is None:
            return source
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        path.write_text(json.dumps(self.document, indent=1) + "\n")
        return path


def cap_concurrency(quota: int, window_s: float, call_latency_s: float) -> int:
    """MaximumConcurrency that keeps one-call-at-a-time consumers under quota/window (Little's law)."""
    return max(CAP_MIN_CONCURRENCY, math.floor(quota / window_s * call_latency_s))


def cap_visibility_timeout(window_s: float) -> int:
    """Visibility timeout (and function timeout, which SQS requires to be no longer) of the work queue:
    about one window, so a throttled message comes back when the quota has, and at least 10 s."""
    return max(10, math.ceil(window_s))


def plan_strategy(
    name: str,
    document: Mapping[str, Any],
    template_dir: Path,
    *,
    window_s: float,
    max_concurrency: int,
    reset_time_format: ResetTimeFormat | None = None,
) -> StrategyPlan:
    """The plan of one strategy, from the project's template (as load_template read it)."""
    description = DESCRIPTIONS[name]
    reset = reset_time_format or RESET_FORMS[name]
    if name == "adapter":
        return StrategyPlan(name, description, reset)
    if name == "pipeline":
        return StrategyPlan(name, description, reset, pipeline=BENCH_PIPELINE)
    if name in ("sdk-retry", "backoff"):
        handler = f"{name.replace('-', '_')}_handler.lambda_handler"
        derived = baseline_document(document, template_dir, handler, BASELINE_TIMEOUT_S)
        return StrategyPlan(name, description, reset, derived)
    if name == "concurrency-cap":
        visibility = cap_visibility_timeout(window_s)
        derived = concurrency_cap_document(document, template_dir, max_concurrency, visibility)
        # The call must end well within the function's timeout.
        environment = {"PICSART_TIMEOUT_SECONDS": str(max(1, visibility - 2))}
        return StrategyPlan(name, description, reset, derived, environment, WORK_QUEUE, max_concurrency, visibility)
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGY_NAMES)}")


def baseline_document(document: Mapping[str, Any], template_dir: Path, handler: str, timeout_s: int) -> dict[str, Any]:
    """The template with UploadFunction running a baseline handler and RetryFunction's event source disabled."""
    derived = copy.deepcopy(dict(document))
    _absolute_code_paths(derived, template_dir)
    upload = derived["Resources"][UPLOAD_FUNCTION]["Properties"]
    upload.update({"CodeUri": str(HANDLERS_DIR), "Handler": handler, "Timeout": timeout_s})
    retry = derived["Resources"].get(RETRY_FUNCTION, {}).get("Properties", {})
    for event in (retry.get("Events") or {}).values():
        if event.get("Type") == "SQS":
            event.setdefault("Properties", {})["Enabled"] = False
    return derived


def concurrency_cap_document(
    document: Mapping[str, Any], template_dir: Path, max_concurrency: int, visibility_timeout_s: int
) -> dict[str, Any]:
    """Uploads -> WorkQueue -> UploadFunction, one message per invocation, at most `max_concurrency` at once.

    The bucket's notification to WorkQueue is configured once the stack runs (see run.py): the local stack
    wires S3 notifications only to functions.
    """
    derived = baseline_document(document, template_dir, "concurrency_cap_handler.lambda_handler", visibility_timeout_s)
    derived["Resources"][WORK_QUEUE] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "VisibilityTimeout": visibility_timeout_s,
            "MessageRetentionPeriod": 345600,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                "maxReceiveCount": CAP_MAX_RECEIVE_COUNT,
            },
        },
    }
    upload = derived["Resources"][UPLOAD_FUNCTION]["Properties"]
    upload["Events"] = {
        "Work": {
            "Type": "SQS",
            "Properties": {
                "Queue": {"Fn::GetAtt": [WORK_QUEUE, "Arn"]},
                "BatchSize": 1,
                "ScalingConfig": {"MaximumConcurrency": max_concurrency},
            },
        }
    }
    derived.setdefault("Outputs", {})["WorkQueueUrl"] = {"Value": {"Ref": WORK_QUEUE}}
    return derived


def _absolute_code_paths(document: dict[str, Any], template_dir: Path) -> None:
    """CodeUri and ContentUri made absolute, so the derived template can live anywhere."""
    for resource in document["Resources"].values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = str((template_dir / properties[key]).resolve())
