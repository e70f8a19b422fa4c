"""Running the bench: one strategy at a time, each on its own local stack (moto server, emulator, runner)
with the same settings and the same images; then the report.

Every strategy's execution environments are initialised before its burst (the runner's prewarm, like
provisioned concurrency): on two shared cores a storm of cold starts would otherwise dominate the timings.
Cold starts are measured on their own (coldstart.py). The pipeline scenario runs the adapter with a rules file
(pipeline.py): fewer uploads, as many calls.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import boto3
from botocore.config import Config

from picsart_adapter.picsart_client import PicsartClient
from picsart_adapter.rules import result_key
from picsart_adapter.tools import FORMAT_MEDIA, TOOLS
from picsart_local.bench import metrics
from picsart_local.bench.coldstart import import_times, layer_size
from picsart_local.bench.metering import BENCH_USER_AGENT, FUNCTION, LOCAL, Meter, metering
from picsart_local.bench.pipeline import (
    BENCH_PIPELINE,
    PipelineRules,
    StepCounts,
    attribute_calls,
    idempotency_producers,
    step_counts,
    write_rules,
)
from picsart_local.bench.report import (
    check_docs,
    evaluate_targets,
    print_report,
    write_docs,
    write_json,
    write_plot,
)
from picsart_local.bench.strategies import (
    STRATEGY_NAMES,
    StrategyPlan,
    cap_concurrency,
    plan_strategy,
)
from picsart_local.cfn_template import load_template
from picsart_local.emulator import EmulatorSettings, PicsartEmulator
from picsart_local.emulator.settings import ResetTimeFormat
from picsart_local.environment import LocalEnvironment, LocalOptions, default_template
from picsart_local.moto_throttle import ThrottleLimits
from picsart_local.samples import SAMPLE_SIZE, SAMPLES, product_photo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: SQS requests that are not the work itself (the bench's idle checks, setting up the stack).
SQS_CONTROL_ACTIONS = frozenset(
    {"GetQueueAttributes", "GetQueueUrl", "CreateQueue", "DeleteQueue", "ListQueues", "SetQueueAttributes"}
)
UPLOAD_THREADS = 8
#: The pipeline's images: small, so that its later steps' inputs (each upscale doubles the sides) stay cheap for
#: the emulator and far below upscale's input limit.
PIPELINE_IMAGE_SIZE = (96, 72)
CALIBRATION_CALLS = 5
_IDLE_CHECK_S = 2.0
#: What the numbers mean, written into bench.json beside them (metrics.py and metering.py say more).
DEFINITIONS = {
    "makespan_s": "first upload (its S3 write) to the last output written",
    "makespan_parts": "the makespan less the (windows - 1) full windows the quota imposes: first upload to "
    "first call, quota idle between a window's end and the next window's first call, the last window's first "
    "to last call, and the last call to the last output",
    "floor_s": "(ceil(C/Q) - 1) * W + max(0, ceil(r/S) - 2) + t_call: C calls (one per upload; uploads x steps "
    "for the pipeline), Q calls per W-second window, r = calls in the last window, S = spike arrest per second, "
    "t_call = median duration of the run's successful calls",
    "calls": "tool calls the emulator received",
    "http_429_after_first_answer": "429s arriving after the first answer of their quota window was received",
    "calls_wasted": "calls beyond the first success of each upload (429s, other errors, repeats)",
    "duplicate_calls": "successful calls for an upload that already had one (for the pipeline: for a step of an "
    "upload that already had one, each call traced to its upload and step through the result it was given)",
    "pipeline": "the adapter with a rules file of one pipeline (pipeline_steps), for --uploads / steps uploads: "
    "as many calls as the other strategies make; every step takes its own unit of the fleet's budget",
    "lost": "uploads without an output when the run ended",
    "ddb_*_units_per_call": "capacity units of every DynamoDB request the functions made, computed from moto's "
    "item sizes by DynamoDB's billing rule, divided by calls; 'limiter' counts the ratelimit# item only",
    "sqs_requests_per_upload": "SQS requests on the strategy's queues by the functions and the event-source "
    "pollers (the local pollers long-poll 1 s where Lambda's use up to 20 s), divided by uploads",
    "latency": "upload (S3 write) to its output (S3 write)",
    "lambda_busy_s": "sum of invocation durations (sleeping included)",
    "lambda_duration_p50_s": "median invocation duration; with no sleeping, high values mean the machine's "
    "cores are saturated (every execution environment and the moto server share them)",
    "load_average_1m": "the machine's load average when the strategy's burst ended",
    "stack_cpu_share": "CPU time of the bench's own process (moto server, emulator, runner, all in one "
    "interpreter) over the burst's wall time: near 1.0 it is the bottleneck, which real AWS would not be",
}
_IDLE_CONFIRM_S = 3.0


@dataclass(frozen=True)
class BenchOptions:
    uploads: int = 300
    concurrency: int = 32
    quota: int = 60
    window_s: float = 10.0
    spike: int = 20
    strategies: tuple[str, ...] = STRATEGY_NAMES
    #: Uploads of the pipeline scenario; None: `uploads` divided by its steps, so it makes as many calls.
    pipeline_uploads: int | None = None
    out: Path = Path("out")
    log_dir: Path = Path("out/logs/bench")
    template_path: Path = field(default_factory=default_template)
    parameters: dict[str, str] = field(default_factory=dict)
    #: Longest wait for one strategy's burst to finish; uploads not done by then are lost.
    timeout_s: float = 900.0
    latency_ms: float = 0.0
    #: Up to this much more answer time per call, drawn uniformly (the emulator's latency_spread_ms).
    latency_spread_ms: float = 0.0
    #: DynamoDB's per-item throughput cap on the stack (moto_throttle.py); None: no cap.
    item_throttle: ThrottleLimits | None = None
    #: MaximumConcurrency of the concurrency-cap strategy; None: from the quota and the call latency.
    cap_concurrency: int | None = None
    adapter_reset_form: ResetTimeFormat = "epoch_ms"
    import_runs: int = 9
    skip_cold_start: bool = False
    skip_layer_size: bool = False
    progress: bool = True
    #: A docs page whose part between the bench markers gets this run's table (and its plot beside it).
    docs: Path | None = None
    #: The command as given, written on the docs page with the table.
    command: str = "picsart-local bench"

    def __post_init__(self) -> None:
        for name in ("uploads", "concurrency", "quota", "spike"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1")
        if self.window_s <= 0:
            raise ValueError("--window must be positive")
        unknown = [name for name in self.strategies if name not in STRATEGY_NAMES]
        if unknown or not self.strategies:
            raise ValueError(f"unknown strategy {unknown}; choose from {', '.join(STRATEGY_NAMES)}")
        if self.pipeline_uploads is not None and self.pipeline_uploads < 1:
            raise ValueError("the pipeline's uploads must be at least 1")

    def uploads_of_pipeline(self, steps: int) -> int:
        """Uploads of the pipeline scenario: as given, or as many as make `uploads` calls (at least one)."""
        return self.pipeline_uploads or max(1, self.uploads // max(1, steps))


@dataclass
class Progress:
    """`[#####.....] 150/300 adapter` on one line of stderr, redrawn in place."""

    total: int
    label: str
    stream: TextIO | None
    width: int = 30
    started: float = field(default_factory=time.monotonic)

    shown: str = ""

    def update(self, done: int) -> None:
        if self.stream is None:
            return
        filled = self.width * done // max(1, self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.started
        line = f"[{bar}] {done}/{self.total} {self.label} {elapsed:5.0f} s"
        if line != self.shown:  # redrawn only when it changes: a log file gets one line a second at most
            self.shown = line
            self.stream.write("\r" + line)
            self.stream.flush()

    def finish(self, done: int) -> None:
        self.update(done)
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def run_bench(options: BenchOptions, stdout: TextIO | None = None, stderr: TextIO | None = None) -> dict[str, Any]:
    """Run every strategy, print the table, write bench.json and bench.png (and the docs page, when one is
    given: checked first, so a page without its markers fails before the runs); return the report. Output goes
    to `stdout` and `stderr`, by default the process's as they are when it runs (not when this module was
    imported: a test's captured streams are closed after it)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if options.docs is not None:
        check_docs(options.docs)
    started = time.monotonic()
    options.out.mkdir(parents=True, exist_ok=True)
    images = bench_images()
    pipeline_images = bench_images(PIPELINE_IMAGE_SIZE)
    report: dict[str, Any] = {
        "settings": _settings_record(options, images),
        "definitions": DEFINITIONS,
        "strategies": {},
    }
    if options.skip_cold_start:
        report["cold_start"] = report["layer"] = None
    else:
        print("Measuring import times of the handlers (fresh interpreters)...", file=stderr, flush=True)
        report["cold_start"] = import_times(options.template_path, options.import_runs)
        if options.skip_layer_size:
            report["layer"] = None
        else:
            print("Measuring the layer (pip install for Lambda's platform)...", file=stderr, flush=True)
            report["layer"] = layer_size(options.template_path.parent.resolve())
    document = load_template(options.template_path)
    template_dir = options.template_path.parent.resolve()
    tool_name, tool_parameters = _tool(options.parameters)
    max_concurrency = options.cap_concurrency
    if "concurrency-cap" in options.strategies and max_concurrency is None:
        latency = measure_call_latency(images[0][1], options.latency_ms, tool_name, tool_parameters)
        max_concurrency = cap_concurrency(options.quota, options.window_s, latency)
        report["settings"]["call_latency_s"] = latency
    report["settings"]["cap_concurrency"] = max_concurrency
    for name in options.strategies:
        plan = plan_strategy(
            name,
            document,
            template_dir,
            window_s=options.window_s,
            max_concurrency=max_concurrency or 2,
            reset_time_format=options.adapter_reset_form if name in ("adapter", "pipeline") else None,
        )
        burst_images = pipeline_images if plan.pipeline else images
        report["strategies"][name] = run_strategy(plan, options, burst_images, stderr if options.progress else None)
    report["targets"] = evaluate_targets(report["strategies"])
    report["duration_s"] = time.monotonic() - started
    write_json(report, options.out / "bench.json")
    write_plot(report, options.out / "bench.png")
    print_report(report, stdout)
    print(f"\nwrote {options.out / 'bench.json'} and {options.out / 'bench.png'}", file=stdout)
    if options.docs is not None:
        write_docs(report, options.docs, options.command, plot=options.out / "bench.png")
        print(f"wrote the run's table into {options.docs} and its plot beside it", file=stdout)
    return report


def bench_images(size: tuple[int, int] = SAMPLE_SIZE) -> list[tuple[str, bytes]]:
    """The images every strategy uploads, in turn: the sample product shots, all as PNG."""
    images = []
    for name, sample in SAMPLES.items():
        buffer = io.BytesIO()
        product_photo(size, **sample).save(buffer, format="PNG")  # type: ignore[arg-type]
        images.append((Path(name).stem + ".png", buffer.getvalue()))
    return images


def run_strategy(
    plan: StrategyPlan, options: BenchOptions, images: Sequence[tuple[str, bytes]], progress_stream: TextIO | None
) -> dict[str, Any]:
    """One burst on a fresh local stack; the strategy's numbers."""
    template = plan.write_template(options.out / "bench-templates", options.template_path)
    # The run's function logs alone: log files are numbered from 1 in every run and appended to, so an earlier
    # run's lines were mixed into this run's files.
    log_dir = options.log_dir / plan.name
    shutil.rmtree(log_dir, ignore_errors=True)
    rules: PipelineRules | None = None
    if plan.pipeline:
        rules = write_rules(options.out / "bench-templates" / f"{plan.name}-rules.json", plan.pipeline)
    local = LocalOptions(
        template_path=template,
        stack_name=f"bench-{plan.name}",
        parameters={**options.parameters, "SpikeArrestPerSecond": str(min(300, options.spike))},
        function_environment=dict(plan.function_environment),
        # In place of the template's RulesFile (and of --rules): the scenario is this pipeline.
        rules_file=rules.path if rules is not None else None,
        emulator=EmulatorSettings(
            quota=options.quota,
            window_seconds=options.window_s,
            spike_per_second=options.spike,
            reset_time_format=plan.reset_time_format,
            latency_ms=options.latency_ms,
            latency_spread_ms=options.latency_spread_ms,
        ),
        log_dir=log_dir,
        upload_concurrency=options.concurrency,
        prewarm=True,
        item_throttle=options.item_throttle,
    )
    if rules is not None:
        keys = [f"uploads/pipeline-{number:04d}.png" for number in range(options.uploads_of_pipeline(rules.steps))]
        outputs = {rules.output_key(key): key for key in keys}
        tools = rules.tools
    else:
        tool_name, tool_parameters = _tool(options.parameters)
        tool = TOOLS[tool_name]
        extension = FORMAT_MEDIA[tool.output_format(tool.parse_parameters(tool_parameters))][1]
        keys = [f"uploads/bench-{number:04d}.png" for number in range(options.uploads)]
        outputs = {result_key(key, tool.name, extension): key for key in keys}
        tools = frozenset({tool.name})
    progress = Progress(len(keys), plan.name, progress_stream)
    if progress_stream is not None:
        progress_stream.write(f"{plan.name}: starting the local stack ({plan.description})\n")
    with metering() as meter:
        env = LocalEnvironment(local).start()
        try:
            assert env.stack is not None
            assert env.runner is not None
            assert env.emulator is not None
            s3 = _bench_client(env)
            if plan.work_queue is not None:
                _notify_queue(env, s3, plan.work_queue, ".png")
                time.sleep(1.0)  # S3's test event to the queue is delivered and consumed before the burst
            meter.reset()
            env.emulator.reset()
            progress.started = time.monotonic()
            cpu_started = time.process_time()
            _upload_burst(s3, env.input_bucket, keys, images)
            done = _wait(env, meter, outputs, options.timeout_s, progress)
            progress.finish(done)
            stack_cpu_share = (time.process_time() - cpu_started) / max(1e-9, time.monotonic() - progress.started)
            recorded = meter.snapshot()
            records = [c for c in env.emulator.calls() if c.tool in tools]
            calls = [
                metrics.Call(c.at, c.status, c.duration_ms / 1000.0, c.image_url_path, c.throttled) for c in records
            ]
            steps = None
            if rules is not None:
                attributed = attribute_calls(records, f"/{env.input_bucket}/", idempotency_producers(env))
                steps = step_counts([c.status for c in records], attributed, rules.steps)
            history = env.runner.history()
            queues = {resource.attribute("QueueName") for resource in env.stack.template.queues}
            throttled = {
                f"{prefix} {kind}": count
                for model in env.stack.throttles.values()
                for (prefix, kind), count in model.throttled.items()
            }
            input_bucket, output_bucket = env.input_bucket, env.output_bucket
        finally:
            env.stop()
    return summarize(
        plan,
        options,
        keys=keys,
        outputs=outputs,
        recorded=recorded,
        calls=calls,
        invocations=[(r.function_logical_id, r.result) for r in history],
        queues=queues,
        input_bucket=input_bucket,
        output_bucket=output_bucket,
        stack_cpu_share=stack_cpu_share,
        steps=steps,
        pipeline=[step.tool for step in rules.pipeline.steps] if rules is not None else None,
        throttled=throttled,
    )


def summarize(
    plan: StrategyPlan,
    options: BenchOptions,
    *,
    keys: Sequence[str],
    outputs: dict[str, str],
    recorded: Meter,
    calls: Sequence[metrics.Call],
    invocations: Sequence[tuple[str, Any]],
    queues: set[str],
    input_bucket: str,
    output_bucket: str,
    stack_cpu_share: float | None = None,
    steps: StepCounts | None = None,
    pipeline: Sequence[str] | None = None,
    throttled: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The strategy's figures (DEFINITIONS). With `steps` (a pipeline, whose tools are `pipeline`), each upload
    makes one call per step, and a duplicate is a step of one upload that succeeded twice."""
    uploaded = recorded.written(input_bucket)
    written = recorded.written(output_bucket)
    finished = {outputs[key]: at for key, at in written.items() if key in outputs}
    start = min((uploaded[key] for key in keys if key in uploaded), default=None)
    end = max(finished.values(), default=None)
    makespan = end - start if start is not None and end is not None else None
    latencies = [finished[key] - uploaded[key] for key in finished if key in uploaded]
    ok = [call for call in calls if call.status == 200]
    call_s = metrics.median([call.duration_s for call in ok]) or 0.0
    calls_per_upload = steps.steps if steps is not None else 1
    floor = metrics.floor_seconds(len(keys) * calls_per_upload, options.quota, options.window_s, options.spike, call_s)
    by_functions = [r for r in recorded.dynamodb if r.origin == FUNCTION]
    write_units = sum(r.write_units or 0.0 for r in by_functions)
    limiter_units = sum(r.write_units or 0.0 for r in by_functions if r.partition == "ratelimit")
    read_units = sum(r.read_units or 0.0 for r in by_functions)
    sqs = [
        r
        for r in recorded.sqs
        if r.origin in (FUNCTION, LOCAL) and r.queue in queues and r.action not in SQS_CONTROL_ACTIONS
    ]
    results = [result for _, result in invocations]
    http_429 = sum(1 for call in calls if call.status == 429)
    parts = metrics.makespan_parts(calls, start, end, options.window_s) if start and end else None
    if steps is not None:
        duplicates, wasted = steps.duplicate_calls, len(calls) - steps.useful
    else:
        duplicates, wasted = metrics.duplicate_calls(calls), metrics.calls_wasted(calls)
    result = {
        "strategy": plan.name,
        "description": plan.description,
        "reset_time_format": plan.reset_time_format,
        "uploads": len(keys),
        "finished": len(finished),
        "lost": len(keys) - len(finished),
        "makespan_s": makespan,
        "floor_s": floor,
        "makespan_over_floor": metrics.ratio(makespan, floor),
        "makespan_parts": asdict(parts) if parts is not None else None,
        "call_s": call_s,
        "calls": len(calls),
        "calls_ok": len(ok),
        "http_429": http_429,
        "http_429_spike": sum(1 for call in calls if call.status == 429 and call.throttled == "spike"),
        "http_429_after_first_answer": metrics.late_429s(calls, options.window_s),
        "other_errors": sum(1 for call in calls if call.status not in (200, 429)),
        "calls_wasted": wasted,
        "duplicate_calls": duplicates,
        "ddb_requests": len(by_functions),
        "ddb_requests_by_action": _count(r.action for r in by_functions),
        "ddb_write_units": write_units,
        "ddb_write_units_by_partition": _total(
            (r.partition or "other", r.write_units or 0.0) for r in by_functions if r.write_units
        ),
        "ddb_read_units": read_units,
        "ddb_read_units_by_partition": _total(
            (r.partition or "other", r.read_units or 0.0) for r in by_functions if r.read_units
        ),
        "ddb_write_units_per_call": metrics.ratio(write_units, len(calls)) or 0.0,
        "ddb_limiter_write_units_per_call": metrics.ratio(limiter_units, len(calls)) or 0.0,
        "ddb_read_units_per_call": metrics.ratio(read_units, len(calls)) or 0.0,
        "sqs_requests": len(sqs),
        "sqs_requests_by_action": _count(
            f"{r.action} ({'function' if r.origin == FUNCTION else 'poller'})" for r in sqs
        ),
        "sqs_requests_per_upload": len(sqs) / len(keys),
        "sqs_function_requests_per_upload": sum(1 for r in sqs if r.origin == FUNCTION) / len(keys),
        "latency_p50_s": metrics.percentile(latencies, 0.5),
        "latency_p95_s": metrics.percentile(latencies, 0.95),
        "lambda_invocations": len(results),
        "lambda_errors": sum(1 for result in results if not result.ok),
        "lambda_timeouts": sum(1 for result in results if result.error_type == "Sandbox.Timedout"),
        "lambda_busy_s": sum(result.duration_ms for result in results) / 1000.0,
        "lambda_duration_p50_s": metrics.percentile([result.duration_ms / 1000.0 for result in results], 0.5),
        "load_average_1m": os.getloadavg()[0],
        "stack_cpu_share": stack_cpu_share,
        "max_concurrency": plan.max_concurrency,
        "visibility_timeout_s": plan.visibility_timeout_s,
        "arrival_s": (max(uploaded.values()) - start) if uploaded and start is not None else None,
        "ddb_limiter_peak_writes_per_s": _peak_per_second(
            r.at for r in by_functions if r.partition == "ratelimit" and r.write_units and not r.throttled
        ),
        "ddb_limiter_peak_reads_per_s": _peak_per_second(
            r.at for r in by_functions if r.partition == "ratelimit" and r.read_units and not r.throttled
        ),
        "ddb_throttled_requests": sum(1 for r in by_functions if r.throttled),
        "ddb_throttled_by_partition": throttled or {},
        "sqs_function_sends_by_queue": _count(
            r.queue for r in sqs if r.origin == FUNCTION and r.action in ("SendMessage", "SendMessageBatch")
        ),
        "per_second": [
            {"t": s.second, "ok": s.ok, "http_429": s.throttled, "other": s.other}
            for s in metrics.per_second(calls, start if start is not None else 0.0, end)
        ],
    }
    if steps is not None:
        result.update(
            {
                "pipeline_steps": list(pipeline or []),
                "calls_per_upload": calls_per_upload,
                "calls_expected": len(keys) * calls_per_upload,
                **steps.as_record(),
            }
        )
    return result


def _count(values: Any) -> dict[str, int]:
    counted: dict[str, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return dict(sorted(counted.items()))


def _peak_per_second(times: Any) -> int:
    """The most events in one wall-clock second."""
    counted: dict[int, int] = {}
    for at in times:
        counted[int(at)] = counted.get(int(at), 0) + 1
    return max(counted.values(), default=0)


def _total(pairs: Any) -> dict[str, float]:
    totals: dict[str, float] = {}
    for name, value in pairs:
        totals[name] = totals.get(name, 0.0) + value
    return dict(sorted(totals.items()))


def _bench_client(env: LocalEnvironment) -> S3Client:
    """An S3 client marked as the bench's own (its requests are not the strategy's)."""
    assert env.stack is not None
    credentials = env.stack.aws_environment()
    session = boto3.session.Session(
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        region_name=env.stack.region,
    )
    config = Config(user_agent_extra=BENCH_USER_AGENT, max_pool_connections=UPLOAD_THREADS * 2)
    return session.client("s3", endpoint_url=env.stack.endpoint_url, config=config)


def _notify_queue(env: LocalEnvironment, s3: S3Client, queue_logical_id: str, suffix: str) -> None:
    """S3 -> SQS for the concurrency-cap strategy (the local stack wires S3 notifications only to functions)."""
    assert env.stack is not None
    arn = env.stack.template.resources[queue_logical_id].attribute("Arn")
    s3.put_bucket_notification_configuration(
        Bucket=env.input_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "bench-work-queue",
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}},
                }
            ]
        },
    )


def _upload_burst(s3: S3Client, bucket: str, keys: Sequence[str], images: Sequence[tuple[str, bytes]]) -> None:
    def put(index: int) -> None:
        s3.put_object(Bucket=bucket, Key=keys[index], Body=images[index % len(images)][1], ContentType="image/png")

    with ThreadPoolExecutor(UPLOAD_THREADS) as uploading:
        list(uploading.map(put, range(len(keys))))


def _wait(env: LocalEnvironment, meter: Meter, outputs: dict[str, str], timeout_s: float, progress: Progress) -> int:
    """Until every output is written, the stack has nothing left to do, or the timeout; how many finished."""
    assert env.runner is not None
    deadline = time.monotonic() + timeout_s
    next_idle_check = time.monotonic() + _IDLE_CHECK_S
    idle_since: float | None = None
    output_bucket = env.output_bucket
    while True:
        done = len(outputs.keys() & meter.written(output_bucket).keys())
        progress.update(done)
        now = time.monotonic()
        if done >= len(outputs) or now >= deadline:
            return done
        if now >= next_idle_check:
            next_idle_check = now + _IDLE_CHECK_S
            try:
                env.runner.wait_idle(timeout=0)
            except TimeoutError:
                idle_since = None
            else:
                idle_since = idle_since or now
                if now - idle_since >= _IDLE_CONFIRM_S:
                    return done  # nothing runs and nothing waits: the rest is lost
        time.sleep(0.2)


def _tool(parameters: dict[str, str]) -> tuple[str, dict[str, Any]]:
    name = parameters.get("PicsartTool", "removebg")
    raw = json.loads(parameters.get("PicsartToolParameters", "{}"))
    if name not in TOOLS or not isinstance(raw, dict):
        raise ValueError(f"PicsartTool {name!r} / PicsartToolParameters {raw!r} cannot be benched")
    return name, raw


def measure_call_latency(image: bytes, latency_ms: float, tool_name: str, tool_parameters: dict[str, Any]) -> float:
    """Median duration of a few sequential calls to an emulator (same image, same latency setting): the
    call latency the concurrency-cap strategy sizes its MaximumConcurrency with."""
    key = "calibration-key"
    emulator = PicsartEmulator(EmulatorSettings(api_key=key, latency_ms=latency_ms))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _image_handler(image))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    emulator.start()
    thread.start()
    try:
        client = PicsartClient(emulator.base_url, lambda: key, timeout_seconds=30.0)
        tool = TOOLS[tool_name]
        parameters = tool.parse_parameters(tool_parameters)
        url = f"http://127.0.0.1:{server.server_address[1]}/image.png"
        durations = []
        for _ in range(CALIBRATION_CALLS):
            started = time.perf_counter()
            answer = client.call_tool(tool, url, parameters)
            if answer.status != 200:
                raise RuntimeError(f"calibration call answered HTTP {answer.status}: {answer.error_detail}")
            durations.append(time.perf_counter() - started)
        return metrics.median(durations) or 0.0
    finally:
        server.shutdown()
        server.server_close()
        emulator.stop()


def _image_handler(image: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    class ImageHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            self.wfile.write(image)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return ImageHandler


def _settings_record(options: BenchOptions, images: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    return {
        "uploads": options.uploads,
        "concurrency": options.concurrency,
        "quota": options.quota,
        "window_s": options.window_s,
        "spike_per_second": options.spike,
        "strategies": list(options.strategies),
        **(
            {
                "pipeline": {
                    "steps": [{"tool": step.tool, "parameters": dict(step.parameters)} for step in BENCH_PIPELINE],
                    "uploads": options.uploads_of_pipeline(len(BENCH_PIPELINE)),
                    "image_size": list(PIPELINE_IMAGE_SIZE),
                }
            }
            if "pipeline" in options.strategies
            else {}
        ),
        "timeout_s": options.timeout_s,
        "latency_ms": options.latency_ms,
        "template": str(options.template_path),
        "parameters": dict(options.parameters),
        "images": [{"name": name, "bytes": len(data)} for name, data in images],
        "prewarmed": True,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
