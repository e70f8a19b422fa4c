"""The soak: thousands of uploads through the local stack while Picsart misbehaves and Lambdas die.

`picsart-local soak` (or `run_soak`) starts the local stack with:
- a rules file of one two-step pipeline for every upload (`bench.pipeline.SOAK_PIPELINE`, written beside the
  logs), so that a later step, which takes the step before's result as its input, runs under the same faults
  and kills as the first; or the rules file given (`--rules`, the RulesFile parameter);
- the emulator injecting faults: 500/503 answers, dropped connections, answers slower than the adapter's
  client timeout (PICSART_TIMEOUT_SECONDS, shortened), 429s without rate-limit headers;
- execution environments killed at random points of a job (crash_points.py): before the Picsart call,
  after it but before the output is written, after the output but before the record. The runner retries
  a killed invocation as Lambda does: an S3 event is retried (EventInvokeConfig) and then goes to the
  function's dead-letter queue; an SQS batch comes back after the queue's visibility timeout and, after
  maxReceiveCount receives, SQS moves it to the queue's dead-letter queue;
- the retry waits shortened (RATE_LIMIT_FLOOR_SECONDS, RETRY_BASE_SECONDS) so it ends in minutes.

The delay queue's visibility timeout is 360 s in template.yaml (six times the retry function's timeout, as
AWS advises). A batch whose environment was killed would stay invisible that long, so the soak lowers it
on the local queue after the stack starts (SetQueueAttributes, `--visibility-timeout`, default 60 s: the
function's timeout, the lowest Lambda accepts for an SQS event source). The template is not changed.

When nothing is left in flight it accounts for every upload, from its job records (one per pipeline its rule
runs; one scan of the table) and the dead-letter queues (drained, each message matched to its upload):
processed (every pipeline's output stored), failed for good (with the reason), skipped (with the reason),
dead-lettered (with the reason), or lost. It traces every Picsart call to its upload and step
(`bench.pipeline.attribute_calls`: a later step's input is the result of a call the step before recorded),
counts the successful calls per step of each object version and explains each one beyond what the upload
needed: a kill after the last step's successful call (at the output's write: the result was not recorded, so
the step is called again), an answer that came after the client had given up (a slow-answer fault), or an
invocation that timed out. A successful call that cannot be traced is unexplained. It lists output objects whose
job record does not say succeeded. It subscribes an SQS queue to the completion events through an EventBridge rule
(event_tap.py) and matches them to the jobs that ended: exactly one each, a second only after a kill once the event
was put (`after_event`) or a timed-out invocation. It scans every log line, queue message and table item for the API
key and for signed-URL signatures (`scan_for_secrets`: `secret_leaks`, which fails the soak unless 0). The figures
are printed and written to `out/soak.json`.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from boto3.dynamodb.conditions import Attr
from pydantic import ValidationError

from picsart_adapter.completion_events import PUT_FAILED_MESSAGE
from picsart_adapter.config import rules_path
from picsart_adapter.delay_queue import RetryMessage
from picsart_adapter.jobs import split_sort_key
from picsart_adapter.rules import Pipeline, Rules, load_rules
from picsart_adapter.s3_events import MalformedEventError, parse_s3_event
from picsart_local.bench.pipeline import (
    SOAK_PIPELINE,
    PipelineStep,
    StepOf,
    attribute_calls,
    idempotency_producers,
    pipelines_of,
    step_counts,
    write_rules,
)
from picsart_local.crash_points import EXIT_STATUS, CrashSettings, read_crash_log
from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LocalEnvironment, LocalOptions, default_template
from picsart_local.event_tap import EventTap
from picsart_local.moto_throttle import ThrottleLimits
from picsart_local.samples import product_photo

#: Job statuses that end a job.
FINAL = frozenset({"succeeded", "failed", "skipped"})
#: Kill points after which Picsart has answered 200: the work is redone, so a second success is expected. Both
#: are at the output's write, which follows a pipeline's last step: they explain a second call of that step only
#: (the steps before kept their results in their idempotency records).
KILLS_AFTER_SUCCESS = frozenset({"after_call", "after_output", "after_event"})
#: Kill points after which a job's completion event was put: the job is worked on again and puts a second one.
KILLS_AFTER_EVENT = frozenset({"after_event"})
#: The message the adapter logs for every answer it receives (`Answers.observe`), with its correlation id.
ANSWER_LOGGED = '"message":"Picsart answered"'
#: What the soak uploads: PNG images, without metadata (what the rules match on).
UPLOAD_CONTENT_TYPE = "image/png"


@dataclass
class SoakSettings:
    uploads: int = 2000
    #: Upload function environments (the runner's concurrency for S3 events).
    concurrency: int = 16
    #: Threads putting objects into the input bucket.
    upload_threads: int = 8
    #: Uploads put and not yet taken up by the upload function at most; the uploader waits while there are as
    #: many. Locally S3's asynchronous invocations queue in moto's SQS, whose every send and receive walks the
    #: whole queue: a backlog of thousands slows the whole stack down (docs/decisions.md, F3). In AWS the
    #: backlog costs nothing, so a bound changes what the soak shows only by pacing the arrivals.
    max_backlog: int = 400
    #: Share of Picsart answers that are 500 or 503 (half each).
    server_error_rate: float = 0.05
    drop_connection_rate: float = 0.02
    slow_answer_rate: float = 0.02
    bare_429_rate: float = 0.01
    #: Share of result downloads answered 503: the step is paid, and its result is fetched again with no call.
    result_fault_rate: float = 0.02
    #: The adapter's client timeout (PICSART_TIMEOUT_SECONDS); slow answers take longer than this.
    client_timeout_s: float = 2.0
    slow_answer_s: float = 4.0
    kill_before_call: float = 0.01
    kill_after_call: float = 0.01
    kill_after_output: float = 0.01
    #: After a job's completion event is put, before its once-per-step record: the event is put again.
    kill_after_event: float = 0.01
    #: MaxAttempts (template parameter); None keeps the template's default.
    max_attempts: int | None = None
    #: Every function's Timeout, locally (None: the template's). A killed job's idempotency lease lasts until
    #: its invocation's deadline, so this bounds how long a kill holds its upload up.
    function_timeout_s: float | None = None
    #: The delay queue's visibility timeout, locally (None: the function timeout in force, Lambda's minimum).
    visibility_timeout_s: int | None = None
    #: The emulator's quota: generous, so that the faults (not the quota) are what the soak exercises.
    quota: int = 100_000
    window_s: float = 60.0
    floor_s: float = 2.0
    retry_base_s: float = 0.5
    image_size: tuple[int, int] = (96, 72)
    #: Every upload's pipeline (as a rules file the functions get), unless the parameters name a RulesFile.
    pipeline: tuple[PipelineStep, ...] = SOAK_PIPELINE
    seed: int | None = None
    #: How long to wait for everything to settle after the last upload.
    timeout_s: float = 1800.0
    progress_every_s: float = 10.0
    prewarm: bool = True
    template_path: Path = field(default_factory=default_template)
    stack_name: str = "picsart-soak"
    parameters: dict[str, str] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path("out") / "logs")
    out: Path | None = field(default_factory=lambda: Path("out") / "soak.json")
    #: DynamoDB's per-item throughput cap on the stack's table (moto_throttle.py); None: no cap.
    item_throttle: ThrottleLimits | None = None

    def __post_init__(self) -> None:
        if self.uploads < 1 or self.concurrency < 1 or self.upload_threads < 1 or self.max_backlog < 1:
            raise ValueError("uploads, concurrency, upload threads and the backlog must be at least 1")
        if self.slow_answer_s <= self.client_timeout_s:
            raise ValueError("slow answers must take longer than the client timeout")

    def emulator(self) -> EmulatorSettings:
        return EmulatorSettings(
            quota=self.quota,
            window_seconds=self.window_s,
            fault_500_rate=self.server_error_rate / 2,
            fault_503_rate=self.server_error_rate / 2,
            drop_connection_rate=self.drop_connection_rate,
            slow_answer_rate=self.slow_answer_rate,
            slow_answer_seconds=self.slow_answer_s,
            bare_429_rate=self.bare_429_rate,
            result_fault_rate=self.result_fault_rate,
            seed=self.seed,
        )

    def crashes(self) -> CrashSettings:
        return CrashSettings(
            before_call=self.kill_before_call,
            after_call=self.kill_after_call,
            after_output=self.kill_after_output,
            after_event=self.kill_after_event,
            log_path=str(self.crash_log.resolve()),
            seed=self.seed,
        )

    @property
    def crash_log(self) -> Path:
        return self.log_dir / "crashes.jsonl"

    @property
    def given_rules_file(self) -> Path | None:
        """The rules file the parameters name (`--rules`), as the functions resolve it; None: the soak's own."""
        given = self.parameters.get("RulesFile", "").strip()
        return rules_path(given) if given else None

    @property
    def rules_file(self) -> Path:
        """The rules file the functions read: the one given, or the soak's own (`write_rules`)."""
        return self.given_rules_file or (self.log_dir / "soak-rules.json").resolve()

    def write_rules(self) -> Rules:
        """Write the soak's rules file (unless one is given) and return the rules the functions will read."""
        if self.given_rules_file is None:
            return write_rules(self.rules_file, self.pipeline).rules
        return load_rules(self.rules_file)

    def options(self) -> LocalOptions:
        parameters = dict(self.parameters)
        if self.max_attempts is not None:
            parameters["MaxAttempts"] = str(self.max_attempts)
        environment = {
            "PICSART_TIMEOUT_SECONDS": f"{self.client_timeout_s:g}",
            "RATE_LIMIT_FLOOR_SECONDS": f"{self.floor_s:g}",
            "RETRY_BASE_SECONDS": f"{self.retry_base_s:g}",
            **self.crashes().environment(),
        }
        return LocalOptions(
            template_path=self.template_path,
            stack_name=self.stack_name,
            parameters=parameters,
            function_environment=environment,
            # In place of the template's RulesFile, unless one is given: the soak's own pipeline.
            rules_file=None if self.given_rules_file else self.rules_file,
            emulator=self.emulator(),
            log_dir=self.log_dir,
            upload_concurrency=self.concurrency,
            prewarm=self.prewarm,
            item_throttle=self.item_throttle,
        )


@dataclass(frozen=True)
class DeadLetter:
    """One message drained from a dead-letter queue."""

    queue_url: str
    body: str
    attributes: dict[str, str]
    message_attributes: dict[str, str]
    keys: list[str]
    source: str  # "upload-function" (Lambda gave up on an S3 event), "attempts" (the adapter), "redrive" (SQS)
    reason: str
    #: The pipeline a delay-queue message was for (None: an S3 event, or work not matched to a rule yet).
    pipeline: str | None = None


@dataclass
class SoakReport:
    figures: dict[str, Any]
    #: Every upload's outcome: key -> {"status", "reason", ...}.
    uploads: dict[str, dict[str, Any]]
    #: The dead-letter messages drained at the end (bodies and attributes, for inspection).
    dead_letters: list[DeadLetter]
    #: Every completion event received (as EventBridge delivered it to the soak's queue).
    completion_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        f = self.figures
        return bool(
            f["settled"]
            and f["lost"] == 0
            and f["unfinished"] == 0
            and f["orphan_outputs"] == 0
            and f["duplicate_successes"]["unexplained"] == 0
            and _events_ok(f.get("completion_events"))
            and f.get("secret_leaks", 0) == 0
        )


Printer = Callable[[str], None]


def run_soak(
    settings: SoakSettings,
    *,
    echo: Printer = print,
    inspect: Callable[[LocalEnvironment, SoakReport], None] | None = None,
) -> SoakReport:
    """Run the soak; `inspect` sees the environment and the report before the stack stops."""
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    settings.crash_log.unlink(missing_ok=True)
    rules = settings.write_rules()
    started = time.monotonic()
    echo(
        f"soak: {settings.uploads} uploads, {settings.concurrency} at a time; faults: "
        f"{settings.server_error_rate:.0%} 500/503, {settings.drop_connection_rate:.0%} dropped, "
        f"{settings.slow_answer_rate:.0%} slower than the {settings.client_timeout_s:g} s client timeout, "
        f"{settings.bare_429_rate:.0%} bare 429, {settings.result_fault_rate:.0%} result downloads 503; "
        f"kills: {settings.kill_before_call:.1%} before the call, "
        f"{settings.kill_after_call:.1%} after it, {settings.kill_after_output:.1%} after the output, "
        f"{settings.kill_after_event:.1%} after the completion event; "
        f"rules {settings.rules_file}: {_describe(rules)}"
    )
    with LocalEnvironment(settings.options()) as env:
        assert env.runner is not None
        assert env.emulator is not None
        delay_queue_url = env.outputs["DelayQueueUrl"]
        env.runner.function_timeout_s = settings.function_timeout_s
        visibility = settings.visibility_timeout_s or _visibility_timeout(env, settings)
        env.client("sqs").set_queue_attributes(
            QueueUrl=delay_queue_url, Attributes={"VisibilityTimeout": str(visibility)}
        )
        tap = subscribe_completion_events(env)
        ready = time.monotonic()
        echo(f"soak: local stack ready in {ready - started:.0f} s; logs in {settings.log_dir}/")
        versions: dict[str, str | None] = {}
        keys = [f"soak/{index:05d}.png" for index in range(settings.uploads)]
        uploader = threading.Thread(
            target=_upload_all, args=(env, keys, settings, versions), name="soak-uploads", daemon=True
        )
        uploader.start()
        uploaded_at: float | None = None
        deadline: float | None = None
        settled = False
        next_progress = time.monotonic() + settings.progress_every_s
        while True:
            if uploaded_at is None and not uploader.is_alive():
                uploaded_at = time.monotonic()
                deadline = uploaded_at + settings.timeout_s
                echo(f"soak: {len(versions)} uploads put in {uploaded_at - ready:.0f} s")
            if uploaded_at is not None:
                try:
                    env.runner.wait_idle(timeout=max(0.5, next_progress - time.monotonic()))
                    settled = True
                    break
                except TimeoutError:
                    pass
                assert deadline is not None
                if time.monotonic() >= deadline:
                    echo(f"soak: not settled {settings.timeout_s:.0f} s after the last upload; accounting now")
                    break
            else:
                uploader.join(timeout=max(0.1, next_progress - time.monotonic()))
            if time.monotonic() >= next_progress:
                tap.drain()  # taken as they come: a long queue in moto slows every send to it
                echo(_progress(env, settings, len(versions), time.monotonic() - ready))
                next_progress = time.monotonic() + settings.progress_every_s
        settled_at = time.monotonic()
        echo(f"soak: settled in {settled_at - ready:.0f} s; accounting")
        report = account(env, settings, versions, settled=settled, rules=rules)
        account_completion_events(report, tap.drain(), env, settings)
        tap.stop()
        report.figures.update(scan_for_secrets(env, settings.log_dir, report.dead_letters, report.completion_events))
        report.figures["local_settings"] = {
            "function_timeout_s": settings.function_timeout_s or "template",
            "delay_queue_visibility_timeout_s": visibility,
            "max_attempts": env.stack.template.parameters.get("MaxAttempts") if env.stack else None,
            "picsart_timeout_s": settings.client_timeout_s,
        }
        report.figures["item_throttle"] = item_throttle_figures(env)
        report.figures["seconds"] = {
            "stack_start": round(ready - started, 1),
            "uploads": round((uploaded_at or settled_at) - ready, 1),
            "to_settle": round(settled_at - ready, 1),
            "accounting": round(time.monotonic() - settled_at, 1),
            "total": round(time.monotonic() - started, 1),
        }
        if inspect is not None:
            inspect(env, report)
    if settings.out is not None:
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(json.dumps({"settings": _settings_record(settings), **report.figures}, indent=2))
    for line in summary_lines(report):
        echo(line)
    if settings.out is not None:
        echo(f"soak: figures written to {settings.out}")
    return report


def _visibility_timeout(env: LocalEnvironment, settings: SoakSettings) -> int:
    """The timeout of the functions the delay queue feeds (as overridden): the least Lambda allows."""
    assert env.stack is not None
    template = env.stack.template
    timeouts = [
        settings.function_timeout_s or function.timeout_s
        for function in template.functions.values()
        for source in function.sqs_events
        if template.resources[source.queue_logical_id].ref == env.outputs["DelayQueueUrl"]
    ]
    return math.ceil(max(timeouts, default=60))


def _describe(rules: Rules) -> str:
    """`rule "r": p (removebg -> upscale)`, for the soak's first line."""

    def steps(pipeline: Pipeline) -> str:
        return " -> ".join(step.tool for step in pipeline.steps)

    return "; ".join(
        f'rule "{rule.name}": ' + ", ".join(f"{pipeline.name} ({steps(pipeline)})" for pipeline in rule.pipelines)
        for rule in rules.rules
    )


def _image(settings: SoakSettings) -> bytes:
    """The image every upload is (the rules match on its type and size)."""
    buffer = io.BytesIO()
    product_photo(size=settings.image_size).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload_all(
    env: LocalEnvironment, keys: list[str], settings: SoakSettings, versions: dict[str, str | None]
) -> None:
    body = _image(settings)
    s3 = env.client("s3")
    bucket = env.input_bucket
    runner = env.runner
    assert runner is not None

    def put(key: str) -> None:
        while len(versions) - runner.counters().invocations.get("UploadFunction", 0) >= settings.max_backlog:
            time.sleep(0.2)
        answer = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/png")
        versions[key] = answer.get("VersionId")

    with ThreadPoolExecutor(settings.upload_threads, thread_name_prefix="soak-put") as pool:
        list(pool.map(put, keys))


def _progress(env: LocalEnvironment, settings: SoakSettings, uploaded: int, elapsed: float) -> str:
    """One line of progress, from what costs moto nothing: the emulator's call log, the runner's counters,
    the queue depths (a scan of the table would hold moto's lock, and slow the soak down, every time)."""
    assert env.runner is not None
    assert env.emulator is not None
    calls = [c for c in env.emulator.calls() if c.image_url_path]
    uploaded_images = f"/{env.input_bucket}/"
    first_steps_ok = len(
        {c.image_url_path for c in calls if c.status == 200 and (c.image_url_path or "").startswith(uploaded_images)}
    )
    counters = env.runner.counters()
    kills = len(read_crash_log(settings.crash_log))
    depth = env.client("sqs").get_queue_attributes(
        QueueUrl=env.outputs["DelayQueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
    )["Attributes"]
    waiting = sum(int(value) for value in depth.values())
    return (
        f"[{elapsed:5.0f} s] uploaded {uploaded}/{settings.uploads}, first step called successfully "
        f"{first_steps_ok}; "
        f"Picsart calls {len(calls)} ({sum(1 for c in calls if c.status == 200)} ok); "
        f"in the delay queue {waiting}; kills {kills}; invocations "
        + ", ".join(f"{name} {count}" for name, count in sorted(counters.invocations.items()))
    )


def _scan(env: LocalEnvironment, pk_prefix: str | None = None, *projection: str) -> list[dict[str, Any]]:
    """Every item of the jobs table (whose pk starts with `pk_prefix`, if given)."""
    assert env.stack is not None
    jobs = env.stack.resource("dynamodb").Table(env.outputs["JobsTableName"])
    request: dict[str, Any] = {"ConsistentRead": True}
    if pk_prefix:
        request["FilterExpression"] = Attr("pk").begins_with(pk_prefix)
    if projection:
        names = {f"#p{index}": name for index, name in enumerate(("pk", *projection))}
        request["ProjectionExpression"] = ", ".join(names)
        request["ExpressionAttributeNames"] = names
    items: list[dict[str, Any]] = []
    while True:
        page = jobs.scan(**request)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def scan_table(env: LocalEnvironment) -> list[dict[str, Any]]:
    """Every item of the jobs table: job records, idempotency records, the limiter's and circuit's state."""
    return _scan(env)


# ---------------------------------------------------------------------------------------------- accounting


def dead_letter_queue_urls(env: LocalEnvironment) -> list[str]:
    """The dead-letter queues of the stack's functions (async failures) and of their SQS sources (redrive)."""
    assert env.stack is not None
    template = env.stack.template
    by_arn = {queue.attribute("Arn"): queue.logical_id for queue in template.queues}
    logical_ids: list[str] = []
    for function in template.functions.values():
        if function.dead_letter_queue_logical_id:
            logical_ids.append(function.dead_letter_queue_logical_id)
        for source in function.sqs_events:
            policy = template.resources[source.queue_logical_id].properties.get("RedrivePolicy") or {}
            target = by_arn.get(str(policy.get("deadLetterTargetArn")))
            if target:
                logical_ids.append(target)
    return [env.stack.queue_url(logical_id) for logical_id in dict.fromkeys(logical_ids)]


def drain_dead_letters(env: LocalEnvironment) -> list[DeadLetter]:
    """Take every message out of the dead-letter queues, each matched to the uploads it names."""
    sqs = env.client("sqs")
    drained: list[DeadLetter] = []
    for url in dead_letter_queue_urls(env):
        empty_receives = 0
        while empty_receives < 2:
            answer = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=300,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                empty_receives += 1
                continue
            empty_receives = 0
            for message in messages:
                drained.append(_dead_letter(url, message))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return drained


def _dead_letter(url: str, message: Any) -> DeadLetter:
    body = str(message.get("Body", ""))
    attributes = {str(k): str(v) for k, v in message.get("Attributes", {}).items()}
    message_attributes = {
        str(name): str(value.get("StringValue", "")) for name, value in message.get("MessageAttributes", {}).items()
    }
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict) and "Records" in document:
        try:
            keys = [upload.key for upload in parse_s3_event(document).uploads]
        except MalformedEventError:
            keys = []
        reason = f"upload function: Lambda gave up on the S3 event: {message_attributes.get('ErrorMessage', '?')}"
        return DeadLetter(url, body, attributes, message_attributes, keys, "upload-function", reason)
    try:
        retry = RetryMessage.model_validate_json(body)
    except ValidationError:
        reason = message_attributes.get("reason", "unreadable message")
        return DeadLetter(url, body, attributes, message_attributes, [], "unreadable", reason)
    reason = message_attributes.get("reason") or retry.reason
    if reason.startswith("gave up after"):
        return DeadLetter(url, body, attributes, message_attributes, [retry.key], "attempts", reason, retry.pipeline)
    # Moved by SQS after maxReceiveCount receives (the count includes the receive that drained it here).
    receives = int(attributes.get("ApproximateReceiveCount", "0")) - 1
    reason = f"delay queue: moved by SQS after {receives} receives without success; parked for: {reason}"
    return DeadLetter(url, body, attributes, message_attributes, [retry.key], "redrive", reason, retry.pipeline)


def account(
    env: LocalEnvironment,
    settings: SoakSettings,
    versions: dict[str, str | None],
    *,
    settled: bool = True,
    rules: Rules | None = None,
) -> SoakReport:
    """Where every upload ended, the Picsart calls per step of each version, kills and orphan outputs. When the run
    did not settle, an upload neither finished nor dead-lettered may still be in the delay queue: it is
    `unfinished` then, `lost` only when nothing was left in flight. `rules` are those the functions read (by
    default, read again from the soak's rules file)."""
    assert env.runner is not None
    assert env.emulator is not None
    assert env.stack is not None
    rules = rules if rules is not None else load_rules(settings.rules_file)
    size = len(_image(settings))
    pipelines = {key: pipelines_of(rules, key, UPLOAD_CONTENT_TYPE, size) for key in versions}
    bucket = env.input_bucket
    dead_letters = drain_dead_letters(env)
    dead_by_key: dict[str, list[DeadLetter]] = {}
    for letter in dead_letters:
        for key in letter.keys:
            dead_by_key.setdefault(key, []).append(letter)

    # The job records: one scan of the table rather than JobStore.for_object per key (moto sorts the whole
    # table for every Query, which takes minutes for thousands of keys); the same items, grouped by key.
    pk_prefix = f"object#{bucket}/"
    records_by_key: dict[str, list[dict[str, Any]]] = {}
    for item in sorted(_scan(env, pk_prefix), key=lambda item: str(item.get("created_at", ""))):
        records_by_key.setdefault(str(item["pk"]).removeprefix(pk_prefix), []).append(item)
    uploads = {
        key: upload_entry(
            records_by_key.get(key, []), versions[key], pipelines[key], dead_by_key.get(key, []), settled=settled
        )
        for key in sorted(versions)
    }
    missing = settings.uploads - len(versions)  # puts that failed: never uploaded, so not lost by the adapter

    # Output objects and the records that should vouch for them.
    s3 = env.client("s3")
    outputs: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.output_bucket):
        outputs.update(item["Key"] for item in page.get("Contents", []))
    vouched = {key for e in uploads.values() if e["status"] == "succeeded" for key in e.get("output_keys", [])}
    orphans = sorted(outputs - vouched)
    missing_outputs = sorted(vouched - outputs)

    # Picsart calls, each traced to its upload and step: successes, late answers, kills.
    tools = {step.tool for pipeline in rules.pipelines.values() for step in pipeline.steps}
    calls = [c for c in env.emulator.calls() if c.tool in tools and c.image_url_path]
    prefix = f"/{bucket}/"
    traced = attribute_calls(calls, prefix, idempotency_producers(env))
    steps = max((len(pipeline.steps) for pipeline in rules.pipelines.values()), default=1)

    def needed(of: StepOf) -> int:
        return sum(1 for pipeline in pipelines.get(of.key, ()) if len(pipeline.steps) >= of.step)

    counts = step_counts([c.status for c in calls], traced, steps, needed)
    by_status = Counter(str(c.status) for c in calls)
    # Result downloads (the adapter's, and Picsart's own reads of a result given as the next step's input), and
    # the attempts that fetched an answered step's result again with no call after a failed download.
    downloads = Counter(str(c.status) for c in env.emulator.calls() if c.path.startswith("/results/"))
    fetched_again = sum(
        1
        for records in records_by_key.values()
        for record in records
        for attempt in record.get("attempts") or []
        if attempt.get("result_fetch")
    )
    late: Counter[StepOf] = Counter()
    timeout_ms = settings.client_timeout_s * 1000
    # Every answer the adapter receives is logged with its correlation id, before anything else is done with it. A
    # successful call whose id no function logged was answered after the client gave up: its server time is over
    # the timeout, or, on a loaded machine, the request waited to be read for longer than the emulator times.
    received = answers_logged(settings.log_dir)
    for call, of in zip(calls, traced, strict=True):
        never_seen = call.duration_ms >= timeout_ms or call.correlation_id not in received
        if call.status == 200 and of is not None and never_seen:
            late[of] += 1  # answered after the client had given up: the adapter never saw it
    kills = read_crash_log(settings.crash_log)
    kills_after_success: Counter[StepOf] = Counter()
    for kill in kills:
        if kill["point"] in KILLS_AFTER_SUCCESS and kill.get("source"):
            key = str(kill["source"]).removeprefix(prefix)
            # The output's write follows the last step of one of the upload's pipelines.
            for last in {len(pipeline.steps) for pipeline in pipelines.get(key, ())}:
                kills_after_success[StepOf(key, last)] += 1
    # An invocation the runner stopped at its timeout was cut short at any point, like a kill.
    timed_out: Counter[str] = Counter()
    # Invocations that failed for another reason than an injected kill or a timeout: the handler raised.
    handler_errors: Counter[str] = Counter()
    for invocation in env.runner.history():
        result = invocation.result
        if result.error_type == "Sandbox.Timedout":
            timed_out.update(_event_keys(invocation.event))
        elif not result.ok and not (
            result.error_type == "Runtime.ExitError" and f"exit status {EXIT_STATUS}" in (result.error_message or "")
        ):
            handler_errors[f"{invocation.function_logical_id}: {result.error_type}: {result.error_message}"] += 1
    duplicated = sorted(counts.duplicated, key=lambda of: (of.key, of.step))
    extra = {of: counts.duplicated[of] - needed(of) for of in duplicated}
    unexplained = [of for of in duplicated if extra[of] > kills_after_success[of] + late[of] + timed_out[of.key]]
    by_step = []
    for step in range(1, steps + 1):
        mine = [of for of in duplicated if of.step == step]
        by_step.append(
            {
                "step": step,
                "calls": counts.calls[step - 1],
                "successful": counts.ok[step - 1],
                "versions_with_2_or_more": len(mine),
                "extra_successful_calls": sum(extra[of] for of in mine),
                "with_a_kill_after_a_successful_call": sum(1 for of in mine if kills_after_success[of]),
                "with_a_late_answer": sum(1 for of in mine if late[of]),
                "with_a_timed_out_invocation": sum(1 for of in mine if timed_out[of.key]),
                "unexplained": sum(1 for of in unexplained if of.step == step),
            }
        )
    # Only a first step's image is a presigned URL of the upload; later steps take Picsart's own result URLs.
    expires = Counter(str(c.image_url_expires) for c in calls if (c.image_url_path or "").startswith(prefix))

    statuses = Counter(entry["status"] for entry in uploads.values())
    dead_sources = Counter(letter.source for letter in dead_letters)
    counters = env.runner.counters()
    successes_by_version = Counter(of for call, of in zip(calls, traced, strict=True) if call.status == 200 and of)
    figures: dict[str, Any] = {
        "uploads": settings.uploads,
        "uploads_put": len(versions),
        "uploads_not_put": missing,
        "rules": {
            "file": str(settings.rules_file),
            "pipelines": {name: [step.tool for step in pipeline.steps] for name, pipeline in rules.pipelines.items()},
        },
        "processed": statuses["succeeded"],
        "failed": statuses["failed"],
        "skipped": statuses["skipped"],
        "dead_lettered": statuses["dead-lettered"],
        "lost": statuses["lost"],
        "unfinished": statuses["unfinished"],
        "settled": settled,
        "accounted": sum(count for status, count in statuses.items() if status not in {"lost", "unfinished"}),
        "failed_reasons": dict(
            Counter(_short(str(e.get("reason"))) for e in uploads.values() if e["status"] == "failed")
        ),
        "skipped_reasons": dict(
            Counter(_short(str(e.get("reason"))) for e in uploads.values() if e["status"] == "skipped")
        ),
        "dead_letter_messages": {
            "total": len(dead_letters),
            "by_source": dict(dead_sources),
            "uploads_named": len(dead_by_key),
            "reasons": dict(Counter(_short(letter.reason) for letter in dead_letters)),
        },
        "lost_uploads": {key: e for key, e in uploads.items() if e["status"] in {"lost", "unfinished"}},
        "dead_lettered_uploads": {key: e for key, e in uploads.items() if e["status"] == "dead-lettered"},
        "orphan_outputs": len(orphans),
        "orphan_output_keys": orphans,
        "missing_outputs": len(missing_outputs),
        "picsart_calls": {
            "total": len(calls),
            "by_status": dict(sorted(by_status.items())),
            "by_step": counts.calls,
            "successful": sum(counts.ok) + counts.unattributed_ok,
            "successful_by_step": counts.ok,
            "late_successes": sum(late.values()),
            "untraced": counts.unattributed,
            "untraced_successful": counts.unattributed_ok,
            "versions_called": len({of.key for of in traced if of is not None}),
            "versions_with_every_step": counts.complete,
            "max_successes_per_step_of_a_version": max(successes_by_version.values(), default=0),
            "presigned_url_expires_seconds": dict(expires),
        },
        "result_downloads": {"by_status": dict(sorted(downloads.items())), "fetched_again": fetched_again},
        "duplicate_successes": {
            "versions_with_2_or_more": len(duplicated),
            "with_a_kill_after_a_successful_call": sum(1 for of in duplicated if kills_after_success[of]),
            "with_a_late_answer": sum(1 for of in duplicated if late[of]),
            "with_a_timed_out_invocation": sum(1 for of in duplicated if timed_out[of.key]),
            "extra_successful_calls": sum(extra.values()),
            # A successful call not traced to an upload and step could be a step paid twice: unexplained.
            "unexplained": len(unexplained) + counts.unattributed_ok,
            "unexplained_keys": [f"{of.key} step {of.step}" for of in unexplained],
            "by_step": by_step,
        },
        "kills": {
            "total": len(kills),
            "by_point": dict(Counter(str(kill["point"]) for kill in kills)),
            "by_function": dict(Counter(str(kill.get("function")) for kill in kills)),
            "after_a_successful_call": sum(
                1 for kill in kills if kill["point"] in KILLS_AFTER_SUCCESS and kill.get("source")
            ),
        },
        "handler_errors": sum(handler_errors.values()),
        "handler_error_messages": dict(handler_errors),
        "invocations": {
            "by_function": dict(counters.invocations),
            "errors": dict(counters.errors),
            "cold_starts": dict(counters.cold_starts),
            "timeouts": dict(counters.timeouts),
            "async_events_dead_lettered": dict(counters.dead_lettered),
            "batch_item_failures": dict(counters.batch_item_failures),
        },
    }
    return SoakReport(figures, uploads, dead_letters)


def upload_entry(
    records: list[dict[str, Any]],
    version_id: str | None,
    pipelines: tuple[Pipeline, ...],
    dead_letters: list[DeadLetter],
    *,
    settled: bool = True,
) -> dict[str, Any]:
    """Where one upload ended, from its job records (oldest first; one per pipeline, sk `<version>#<pipeline>`, or
    one without a pipeline when it was skipped before a rule took it) and the dead-letter messages naming it.

    Each of its rule's pipelines ends succeeded, failed or skipped by its record, or dead-lettered, or it is lost
    (`unfinished` when the run did not settle). The upload is lost or unfinished if any pipeline is; else
    succeeded when every pipeline is (`output_keys`); else dead-lettered, failed or skipped, in that order, with
    the first such pipeline's reason."""
    version = f"version:{version_id}" if version_id else None
    keys = [(split_sort_key(str(r.get("sk", ""))), r) for r in records]
    mine = [(pipeline, r) for (ref, pipeline), r in keys if version is None or ref == version]
    bare = [r for pipeline, r in mine if pipeline is None]
    by_pipeline = {pipeline: r for pipeline, r in mine if pipeline is not None}
    entry: dict[str, Any] = {}
    if dead_letters:
        entry["dead_letters"] = [{"source": d.source, "reason": d.reason, "pipeline": d.pipeline} for d in dead_letters]
    if bare and str(bare[-1].get("status")) in FINAL and not by_pipeline:
        # Ended before any pipeline: not an image, gone, or no rule matches it.
        entry.update(status=str(bare[-1].get("status")), reason=bare[-1].get("reason"), record_status=None)
        return entry
    ends: dict[str, tuple[str, Any]] = {}
    for pipeline in pipelines:
        record = by_pipeline.get(pipeline.name)
        status = str(record.get("status")) if record else None
        letters = [d for d in dead_letters if d.pipeline in (None, pipeline.name)]
        if status in FINAL and record is not None:
            ends[pipeline.name] = (status, record.get("reason"))
        elif letters:
            ends[pipeline.name] = ("dead-lettered", letters[0].reason)
        else:
            reason = f"job record says {status!r}; not in any dead-letter queue"
            ends[pipeline.name] = ("lost" if settled else "unfinished", reason)
    entry["record_status"] = {name: str(r.get("status")) for name, r in by_pipeline.items()}
    entry["pipelines"] = {name: {"status": status, "reason": reason} for name, (status, reason) in ends.items()}
    if not pipelines:
        status = "lost" if settled else "unfinished"
        entry.update(status=status, reason="no rule takes it, and no record says it was skipped")
        return entry
    for status in ("lost", "unfinished", "dead-lettered", "failed", "skipped"):
        ended = [(name, reason) for name, (each, reason) in ends.items() if each == status]
        if ended:
            name, reason = ended[0]
            entry.update(status=status, reason=reason if len(ends) == 1 else f"pipeline {name}: {reason}")
            return entry
    entry["status"] = "succeeded"
    entry["output_keys"] = [str(by_pipeline[name].get("output_key")) for name in ends]
    return entry


def _event_keys(event: Any) -> list[str]:
    """The object keys an invocation's event names: S3 notification records or delay-queue messages."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return []
    if records and isinstance(records[0], dict) and records[0].get("eventSource") == "aws:sqs":
        keys = []
        for record in records:
            try:
                keys.append(RetryMessage.model_validate_json(record.get("body", "")).key)
            except ValidationError:
                continue
        return keys
    try:
        return [upload.key for upload in parse_s3_event(event).uploads]
    except MalformedEventError:
        return []


def _short(reason: str, length: int = 120) -> str:
    """A reason without what differs between uploads (counts of attempts stay), for grouping."""
    return reason if len(reason) <= length else reason[: length - 1] + "…"


def summary_lines(report: SoakReport) -> Iterable[str]:
    f = report.figures
    calls, duplicates, kills = f["picsart_calls"], f["duplicate_successes"], f["kills"]
    seconds = f.get("seconds", {})
    yield ""
    yield f"uploads            {f['uploads']} (put {f['uploads_put']})"
    pipelines = ", ".join(f"{name}: {' -> '.join(tools)}" for name, tools in f["rules"]["pipelines"].items())
    yield f"rules              {f['rules']['file']} ({pipelines})"
    yield f"processed          {f['processed']}"
    yield f"failed for good    {f['failed']}" + "".join(
        f"\n  {count:5d} x {reason}" for reason, count in f["failed_reasons"].items()
    )
    yield f"skipped            {f['skipped']}" + "".join(
        f"\n  {count:5d} x {reason}" for reason, count in f["skipped_reasons"].items()
    )
    yield f"dead-lettered      {f['dead_lettered']} (only in a dead-letter queue)"
    yield f"lost               {f['lost']}" + (
        "" if f["settled"] else f" (not settled: {f['unfinished']} unfinished, still in the delay queue or running)"
    )
    dead = f["dead_letter_messages"]
    yield f"dead-letter msgs   {dead['total']} naming {dead['uploads_named']} uploads {dead['by_source']}" + "".join(
        f"\n  {count:5d} x {reason}" for reason, count in dead["reasons"].items()
    )
    yield f"orphan outputs     {f['orphan_outputs']} (output objects whose job record does not say succeeded)"
    yield f"Picsart calls      {calls['total']} {calls['by_status']}, by step {calls['by_step']}"
    yield (
        f"successful calls   {calls['successful']}, by step {calls['successful_by_step']}; "
        f"{calls['versions_with_every_step']} versions with every step "
        f"({calls['late_successes']} answered after the client gave up, "
        f"{calls['untraced']} not traced to an upload and step)"
    )
    results = f["result_downloads"]
    yield (
        f"result downloads   {results['by_status']}; {results['fetched_again']} answered steps' results fetched "
        "again with no call"
    )
    yield (
        f"2+ successes       {duplicates['versions_with_2_or_more']} steps of a version: "
        f"{duplicates['with_a_kill_after_a_successful_call']} with a kill after a successful call, "
        f"{duplicates['with_a_late_answer']} with a late answer, "
        f"{duplicates['with_a_timed_out_invocation']} with a timed-out invocation, "
        f"{duplicates['unexplained']} unexplained"
    )
    for step in duplicates["by_step"]:
        yield (
            f"  step {step['step']}: {step['versions_with_2_or_more']} versions, "
            f"{step['extra_successful_calls']} extra calls: {step['with_a_kill_after_a_successful_call']} with a "
            f"kill after a successful call, {step['with_a_late_answer']} with a late answer, "
            f"{step['with_a_timed_out_invocation']} with a timed-out invocation, {step['unexplained']} unexplained"
        )
    yield from completion_event_lines(f.get("completion_events"))
    yield f"kills              {kills['total']} {kills['by_point']} {kills['by_function']}"
    yield f"presigned expiry   {calls['presigned_url_expires_seconds']} (X-Amz-Expires seen by Picsart)"
    yield f"invocations        {f['invocations']['by_function']} errors {f['invocations']['errors']}"
    yield f"handler errors     {f['handler_errors']} (invocations that failed, not by a kill or a timeout)" + "".join(
        f"\n  {count:5d} x {_short(message)}" for message, count in f["handler_error_messages"].items()
    )
    if "secret_leaks" in f:
        yield f"secret leaks       {f['secret_leaks']} (API key or URL signature) in {f['secrets_scanned']}" + "".join(
            f"\n  {place}" for place in f["secret_leak_places"]
        )
    if "local_settings" in f:
        yield f"local settings     {f['local_settings']}"
    if seconds:
        yield (
            f"time               {seconds['total']:.0f} s in all: stack {seconds['stack_start']:.0f} s, "
            f"uploads {seconds['uploads']:.0f} s, settled after {seconds['to_settle']:.0f} s"
        )
    yield f"result             {'OK' if report.ok else 'FAILED'}"


# ------------------------------------------------------------------------------------- completion events


def subscribe_completion_events(env: LocalEnvironment) -> EventTap:
    """An SQS queue subscribed to every completion event of the soak's uploads (deleted with the stack)."""
    assert env.stack is not None
    return EventTap(env.stack).start()


def account_completion_events(
    report: SoakReport, events: list[dict[str, Any]], env: LocalEnvironment, settings: SoakSettings
) -> None:
    """Add the completion events' figures to the report (`completion_event_figures`), from the events the soak's
    queue received, the kills after an event was put and the invocations cut at their timeout."""
    assert env.runner is not None
    report.completion_events = events
    kills_after_event = Counter(
        str(kill["source"]) for kill in read_crash_log(settings.crash_log) if kill["point"] in KILLS_AFTER_EVENT
    )
    timed_out: Counter[str] = Counter()
    for invocation in env.runner.history():
        if invocation.result.error_type == "Sandbox.Timedout":
            timed_out.update(_event_keys(invocation.event))
    figures = completion_event_figures(
        report.uploads, events, kills_after_event, timed_out, retried_puts(settings.log_dir)
    )
    report.figures["completion_events"] = {**figures, "undelivered_logged": _undelivered_logged(settings.log_dir)}


def completion_event_figures(
    uploads: dict[str, dict[str, Any]],
    events: list[dict[str, Any]],
    kills_after_event: Counter[str],
    timed_out: Counter[str],
    retried: Counter[str] | None = None,
) -> dict[str, Any]:
    """Exactly one completion event per job that ended: each job whose record ended it (succeeded, failed, among
    them dead-lettered by the adapter, or skipped; `upload_entry`) is matched to the events naming its key and
    pipeline. A job with none is a lost event; a job with more is explained by a kill after its event was put, by
    an invocation cut at its timeout, or by a put tried again after one that raised (`retried`; per key), and is
    unexplained otherwise. A job that reached a dead-letter
    queue with no code running (Lambda gave up on its S3 event, SQS moved its message) has no event by design."""
    received = Counter((str(e["detail"]["key"]), e["detail"].get("pipeline")) for e in events)
    ended: list[tuple[str, str | None]] = []
    dead_lettered_without_code: list[tuple[str, str | None]] = []
    for key, entry in uploads.items():
        pipelines = entry.get("pipelines")
        if pipelines is None:
            if entry["status"] in FINAL:  # ended before any pipeline
                ended.append((key, None))
            continue
        for name, end in pipelines.items():
            if end["status"] in FINAL:
                ended.append((key, name))
            elif end["status"] == "dead-lettered":
                dead_lettered_without_code.append((key, name))
    without = [job for job in ended if received[job] == 0]
    twice = [job for job in ended if received[job] > 1]
    retried = retried or Counter()
    explained = {job: kills_after_event[job[0]] + timed_out[job[0]] + retried[job[0]] for job in twice}
    unexplained = [job for job in twice if received[job] - 1 > explained[job]]
    ended_set = set(ended)
    return {
        "received": len(events),
        "by_detail_type": dict(Counter(str(e["detail-type"]) for e in events)),
        "jobs_ended": len(ended),
        "jobs_with_one_event": sum(1 for job in ended if received[job] == 1),
        "jobs_without_an_event": len(without),
        "jobs_without_an_event_keys": [_job_name(job) for job in without],
        "jobs_with_2_or_more": len(twice),
        "extra_events": sum(received[job] - 1 for job in twice),
        "with_a_kill_after_the_event": sum(1 for job in twice if kills_after_event[job[0]]),
        "with_a_timed_out_invocation": sum(1 for job in twice if timed_out[job[0]]),
        "with_a_put_tried_again": sum(1 for job in twice if retried[job[0]]),
        "unexplained": len(unexplained),
        "unexplained_keys": [_job_name(job) for job in unexplained],
        "events_of_no_ended_job": sum(count for job, count in received.items() if job not in ended_set),
        # Lambda or SQS put them in a dead-letter queue with no adapter code running: no event, the DLQ alarm.
        "dead_lettered_without_code": len(dead_lettered_without_code),
    }


def _job_name(job: tuple[str, str | None]) -> str:
    key, pipeline = job
    return f"{key} ({pipeline})" if pipeline else key


def answers_logged(log_dir: Path) -> set[str]:
    """The correlation ids of every Picsart answer a function logged as received (`ANSWER_LOGGED`)."""
    return {str(line.get("picsart_correlation_id")) for line in _logged(log_dir, ANSWER_LOGGED)}


def retried_puts(log_dir: Path) -> Counter[str]:
    """Per key, the completion-event puts that raised and were tried again (each logged `PUT_FAILED_MESSAGE`):
    one whose answer was lost may have been delivered, and its next try delivers the event again."""
    return Counter(str(line.get("event_key")) for line in _logged(log_dir, PUT_FAILED_MESSAGE))


def _logged(log_dir: Path, text: str) -> Iterator[dict[str, Any]]:
    """The functions' JSON log lines under `log_dir` that contain `text` (Lambda's own lines are not JSON)."""
    for path in log_dir.rglob("*.log"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if text in line:
                with contextlib.suppress(ValueError):
                    yield json.loads(line)


def _undelivered_logged(log_dir: Path) -> int:
    """Events the functions gave up putting (each logged "completion event not delivered")."""
    return sum(
        path.read_text(encoding="utf-8", errors="replace").count("completion event not delivered")
        for path in log_dir.rglob("*.log")
    )


def _events_ok(figures: dict[str, Any] | None) -> bool:
    """No ended job without its event, no second event unexplained, no event of a job that did not end."""
    if figures is None:  # accounted without a subscription (account() alone)
        return True
    return bool(
        figures["jobs_without_an_event"] == 0
        and figures["unexplained"] == 0
        and figures["events_of_no_ended_job"] == 0
        and figures["undelivered_logged"] == 0
    )


def completion_event_lines(figures: dict[str, Any] | None) -> Iterable[str]:
    if figures is None:
        return
    yield (
        f"completion events  {figures['received']} {figures['by_detail_type']} for {figures['jobs_ended']} ended "
        f"jobs: {figures['jobs_with_one_event']} with one, {figures['jobs_without_an_event']} without, "
        f"{figures['jobs_with_2_or_more']} with 2+ ({figures['with_a_kill_after_the_event']} with a kill after "
        f"the event, {figures['with_a_timed_out_invocation']} with a timed-out invocation, "
        f"{figures['with_a_put_tried_again']} with a put tried again, "
        f"{figures['unexplained']} unexplained); {figures['events_of_no_ended_job']} of no ended job; "
        f"{figures['dead_lettered_without_code']} dead-lettered by Lambda or SQS (no event by design); "
        f"{figures['undelivered_logged']} undelivered"
    )


def item_throttle_figures(env: LocalEnvironment) -> dict[str, Any] | None:
    """What DynamoDB's per-item cap refused (requests, by partition prefix and kind); None: no cap."""
    if env.stack is None or env.stack.item_throttle is None:
        return None
    refused: Counter[str] = Counter()
    for model in env.stack.throttles.values():
        for (prefix, kind), count in model.throttled.items():
            refused[f"{prefix} {kind}"] += count
    return {**asdict(env.stack.item_throttle), "throttled_requests": dict(sorted(refused.items()))}


def _settings_record(settings: SoakSettings) -> dict[str, Any]:
    record = asdict(settings)
    for name, value in record.items():
        if isinstance(value, Path):
            record[name] = str(value)
    return record


# ------------------------------------------------------------------------------------------------- secrets

#: What a signed URL's query carries: its signature, and the credential that signed it. None of it may be kept
#: anywhere: a presigned `image_url` is a bearer token to the object until it expires.
SIGNATURE_MARKERS = ("X-Amz-Signature=", "Signature=", "X-Amz-Credential", "AWSAccessKeyId=")


def leaks_in(texts: dict[str, str], api_key: str) -> list[str]:
    """Where the API key or a signed URL's signature appears in `texts` (name -> text), as "<name>: <what>". The
    key itself is never named: the place is, with "the API key"."""
    markers = {api_key: "the API key", **{marker: marker for marker in SIGNATURE_MARKERS}}
    return [f"{name}: {label}" for name, text in texts.items() for marker, label in markers.items() if marker in text]


def scan_for_secrets(
    env: LocalEnvironment,
    log_dir: Path,
    dead_letters: Iterable[DeadLetter],
    completion_events: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The soak's secret scan: every log line (each file under `log_dir`: function logs, X-Ray segments, the
    crash log), every queue message (S3 notifications and delay-queue batches as the functions received them,
    dead letters as drained, completion events as the tap's queue delivered them) and every table item, for the
    API key (the secret's value) and for signed-URL
    signatures. Figures: `secret_leaks` (how many places), where (`secret_leak_places`, at most 20) and how much
    was scanned (`secrets_scanned`), so that no leak found in nothing is not taken for a clean run."""
    assert env.stack is not None
    assert env.runner is not None
    secret_name = str(env.stack.template.parameters["PicsartApiKeySecretName"])
    api_key = env.client("secretsmanager").get_secret_value(SecretId=secret_name)["SecretString"]
    logs = {
        str(path): path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(log_dir.rglob("*"))
        if path.is_file()
    }
    messages = [json.dumps(record.event) for record in env.runner.history()]
    messages += [json.dumps([letter.body, letter.attributes, letter.message_attributes]) for letter in dead_letters]
    messages += [json.dumps(event) for event in completion_events]
    items = scan_table(env)
    leaks = [
        *leaks_in(logs, api_key),
        *leaks_in({f"message {index}": message for index, message in enumerate(messages)}, api_key),
        *leaks_in({f"{item.get('pk')} {item.get('sk')}": json.dumps(item, default=str) for item in items}, api_key),
    ]
    return {
        "secret_leaks": len(leaks),
        "secret_leak_places": leaks[:20],
        "secrets_scanned": {
            "log_files": len(logs),
            "log_lines": sum(text.count("\n") for text in logs.values()),
            "queue_messages": len(messages),
            "table_items": len(items),
        },
    }
