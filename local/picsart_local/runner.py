"""Lambda, played locally: execution environments (one worker process each) and the event sources.

- S3 notifications (from the stack's internal queues) invoke a function asynchronously: retried up to its
  EventInvokeConfig.MaximumRetryAttempts, then sent to its DeadLetterQueue as Lambda does.
- SQS event sources poll their queue in batches (BatchSize, MaximumBatchingWindowInSeconds), at most
  ScalingConfig.MaximumConcurrency batches at once, with ReportBatchItemFailures semantics.
Every setting comes from the resolved template.
"""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from picsart_local import lambda_worker
from picsart_local.cfn_template import FunctionSpec, SqsEventSource
from picsart_local.stack import LocalStack
from picsart_local.xray_sink import XRaySink

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef, MessageTypeDef

logger = logging.getLogger(__name__)

DEFAULT_UPLOAD_CONCURRENCY: Final = 16
# Lambda scales an SQS source far higher; locally, threads and processes are the limit.
DEFAULT_SQS_CONCURRENCY: Final = 16
INIT_TIMEOUT_S: Final = 10.0  # Lambda's limit for the init phase
#: How long a killed worker is waited for before it is left to end on its own.
PROCESS_END_SECONDS: Final = 30.0
_POLL_WAIT_S: Final = 1  # long poll: an idle queue costs one request a second
_IDLE_CONFIRM_S: Final = 0.05  # between the two quiet looks wait_idle asks for
_DLQ_ERROR_MESSAGE_BYTES: Final = 1024
# The worker's view of AWS must be the stack only: no profile, config file or instance metadata.
_ISOLATION_ENVIRONMENT: Final = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
}
_worker_numbers = count(1)
#: Held while a worker starts and while an ended worker's exit status is read. `Process.start` reaps every ended
#: child of the process first; a thread that waits for the same child meanwhile finds it reaped, and reads no exit
#: status until the starting thread has recorded it (test_an_exit_status_reaped_by_a_starting_worker_is_read).
_REAPING = threading.Lock()


@dataclass(frozen=True)
class InvocationResult:
    """The outcome of one invocation, with Lambda's error shape when it failed."""

    ok: bool
    payload: Any
    error_type: str | None
    error_message: str | None
    duration_ms: float
    cold_start: bool
    request_id: str
    init_duration_ms: float | None = None
    log_path: Path | None = None


@dataclass(frozen=True)
class InvocationRecord:
    """One invocation the runner made: which function, from which source, with what event."""

    function_logical_id: str
    source: str  # "s3", "sqs" or "invoke"
    event: Any
    result: InvocationResult


@dataclass
class RunnerCounters:
    """Per function logical id."""

    invocations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cold_starts: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    batch_item_failures: Counter[str] = field(default_factory=Counter)


def _result(
    request_id: str,
    duration_ms: float,
    cold_start: bool,
    init_duration_ms: float | None,
    log_path: Path | None,
    payload: Any = None,
    error: Mapping[str, Any] | None = None,
) -> InvocationResult:
    """A success (payload) or, with error, a failure whose payload is Lambda's error document."""
    if error is None:
        return InvocationResult(
            True, payload, None, None, duration_ms, cold_start, request_id, init_duration_ms, log_path
        )
    document = {**error, "requestId": request_id}
    return InvocationResult(
        ok=False,
        payload=document,
        error_type=str(document["errorType"]),
        error_message=str(document["errorMessage"]),
        duration_ms=duration_ms,
        cold_start=cold_start,
        request_id=request_id,
        init_duration_ms=init_duration_ms,
        log_path=log_path,
    )


def new_trace_header(sampled: bool) -> str:
    """An X-Ray trace header as Lambda passes it in _X_AMZN_TRACE_ID."""
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled={1 if sampled else 0}"


# --------------------------------------------------------------------------------- execution environment


class ExecutionEnvironment:
    """One Lambda execution environment: a worker process, started on first use, one invocation at a time.

    A handler error is an error result and the environment stays warm; a timeout or a crash ends the
    process, and the next invocation starts a fresh one (cold). Each worker process logs to its own file.
    """

    def __init__(
        self,
        function: FunctionSpec,
        environment: Mapping[str, str],
        log_dir: Path,
        *,
        init_timeout_s: float = INIT_TIMEOUT_S,
    ) -> None:
        self.function = function
        self._environment = dict(environment)
        self._log_dir = log_dir
        self._init_timeout_s = init_timeout_s
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._connection: Connection | None = None
        self._init_duration_ms: float | None = None
        self.log_paths: list[Path] = []

    @property
    def log_path(self) -> Path | None:
        """The log file of the current (or last) worker process."""
        return self.log_paths[-1] if self.log_paths else None

    @property
    def warm(self) -> bool:
        process = self._process
        return process is not None and process.is_alive()

    def prewarm(self) -> InvocationResult | None:
        """Start the worker and run its init now (like provisioned concurrency); the init error, if any."""
        with self._lock:
            return self._start("prewarm", "provisioned-concurrency") if self._process is None else None

    def invoke(
        self,
        event: Any,
        timeout_s: float | None = None,
        *,
        request_id: str | None = None,
        trace_header: str | None = None,
    ) -> InvocationResult:
        """Invoke the handler with event; waits for the result, at most timeout_s (default: the function's)."""
        request_id = request_id or str(uuid.uuid4())
        timeout_s = float(self.function.timeout_s if timeout_s is None else timeout_s)
        event_json = json.dumps(event)  # Lambda hands the handler a JSON-decoded copy
        with self._lock:
            cold = self._process is None
            if cold:
                failed = self._start(request_id, "on-demand")
                if failed is not None:
                    return failed
            assert self._connection is not None
            log_path = self.log_path
            init_ms = self._init_duration_ms if cold else None
            request = {
                "event_json": event_json,
                "request_id": request_id,
                "deadline_ms": int((time.time() + timeout_s) * 1000),
                "trace_header": trace_header,
            }
            started = time.perf_counter()

            def failure(error_type: str, message: str) -> InvocationResult:
                elapsed = (time.perf_counter() - started) * 1000
                error = {"errorMessage": message, "errorType": error_type}
                return _result(request_id, elapsed, cold, init_ms, log_path, error=error)

            try:
                self._connection.send(("invoke", request))
                if not self._connection.poll(timeout_s):
                    self._end_process()
                    message = f"Task timed out after {timeout_s:.2f} seconds"
                    self._log_platform_lines(request_id, message, timeout_s)
                    return failure("Sandbox.Timedout", message)
                _, answer = self._connection.recv()
            except (EOFError, OSError):
                exit_reason = self._end_process()
                return failure("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited {exit_reason}")
        payload = json.loads(answer["payload_json"]) if answer["ok"] else None
        return _result(request_id, answer["duration_ms"], cold, init_ms, log_path, payload, answer.get("error"))

    def kill(self) -> None:
        """Kill the worker now, as a crash would; an invocation in progress ends with Runtime.ExitError."""
        process = self._process
        if process is not None and process.is_alive():
            process.kill()

    def shutdown(self) -> None:
        """End the worker, as Lambda ends an environment: no goodbye (output is line-buffered, nothing is lost).

        An invocation in progress is cut short, as by kill().
        """
        if self._lock.acquire(timeout=0.1):
            try:
                self._end_process()
            finally:
                self._lock.release()
        else:  # the invoking thread reaps the process once its invocation has failed
            self.kill()

    def __enter__(self) -> ExecutionEnvironment:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.shutdown()

    # -- internals (called with the lock held)

    def _start(self, request_id: str, initialization_type: str) -> InvocationResult | None:
        """Start a worker and wait for its init; the init error as a result when it fails. The worker is told
        how it was initialised as Lambda tells it (on-demand, or provisioned-concurrency: ahead of traffic)."""
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        log_path = self._log_dir / f"{self.function.logical_id}-{next(_worker_numbers):04d}.log"
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")  # a file left by an earlier run of the same name starts over
        self.log_paths.append(log_path)
        stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        config = lambda_worker.WorkerConfig(
            code_uri=str(self.function.code_uri),
            handler=self.function.handler,
            environment={
                **self._environment,
                "AWS_LAMBDA_LOG_STREAM_NAME": stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
            },
            log_path=str(log_path),
            function_name=self.function.name,
            function_version="$LATEST",
            invoked_function_arn=self.function.arn,
            memory_limit_in_mb=self.function.memory_mb,
            log_group_name=f"/aws/lambda/{self.function.name}",
            log_stream_name=stream,
        )
        process = context.Process(
            target=lambda_worker.main,
            args=(child, config),
            name=f"lambda-{self.function.logical_id}",
            daemon=True,
        )
        with _REAPING:
            process.start()
        child.close()  # only the worker holds its end, so its death reads as EOF here
        self._process, self._connection = process, parent
        started = time.perf_counter()
        try:
            if not parent.poll(self._init_timeout_s):
                self._end_process()
                message = f"INIT_REPORT Init Duration: {self._init_timeout_s * 1000:.2f} ms Phase: init Status: timeout"
                return self._init_failure(request_id, "Sandbox.Timedout", message, started, log_path)
            _, ready = parent.recv()
        except (EOFError, OSError):
            exit_reason = self._end_process()
            message = f"RequestId: {request_id} Error: Runtime exited {exit_reason}"
            return self._init_failure(request_id, "Runtime.ExitError", message, started, log_path)
        self._init_duration_ms = ready["init_duration_ms"]
        if ready["init_error"] is not None:
            self._end_process()
            error = ready["init_error"]
            return self._init_failure(request_id, error["errorType"], error["errorMessage"], started, log_path)
        return None

    def _init_failure(
        self, request_id: str, error_type: str, message: str, started: float, log_path: Path
    ) -> InvocationResult:
        elapsed = (time.perf_counter() - started) * 1000
        error = {"errorMessage": message, "errorType": error_type}
        return _result(request_id, elapsed, True, elapsed, log_path, error=error)

    def _end_process(self) -> str:
        """Kill and reap the worker; returns how it exited, in Lambda's words."""
        process, connection = self._process, self._connection
        self._process = self._connection = None
        reason = "without an exit status"
        if process is not None:
            if process.is_alive():
                process.kill()
            # SIGKILL cannot be caught, but on a loaded machine the process may take seconds to end; one that has
            # not ended is left unclosed, since closing a running process raises and would fail the delivery
            # (test_a_worker_slow_to_end_is_left_unclosed_rather_than_failing_the_invocation).
            process.join(PROCESS_END_SECONDS)
            with _REAPING:
                code = process.exitcode
            if code is not None and code < 0:
                name = signal.Signals(-code).name.removeprefix("SIG").lower()
                reason = f"with error: signal: {'killed' if name == 'kill' else name}"
            elif code is not None:
                reason = f"with error: exit status {code}"
            if code is not None:
                process.close()
        if connection is not None:
            connection.close()
        return reason

    def _log_platform_lines(self, request_id: str, message: str, duration_s: float) -> None:
        # What Lambda itself writes to the log stream when it stops a function that timed out.
        if self.log_path is None:
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"{stamp} {request_id} {message}\n")
            log.write(f"END RequestId: {request_id}\n")
            log.write(f"REPORT RequestId: {request_id}\tDuration: {duration_s * 1000:.2f} ms\tStatus: timeout\n")


class _EnvironmentPool:
    """The execution environments of one function: a warm one is reused, a new one made when all are busy."""

    def __init__(self, factory: Callable[[], ExecutionEnvironment]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._idle: list[ExecutionEnvironment] = []

    def acquire(self) -> ExecutionEnvironment:
        with self._lock:
            # Most recently used first, as Lambda tends to: it is the likeliest to be warm.
            return self._idle.pop() if self._idle else self._factory()

    def release(self, environment: ExecutionEnvironment) -> None:
        with self._lock:
            self._idle.append(environment)

    def prewarm(self, count: int) -> None:
        """Have `count` environments initialised and idle, their inits run in parallel, one per core at a time:
        inits are CPU-bound, so more at once finish no sooner and each may overrun the init time limit."""
        with self._lock:
            missing = max(0, count - len(self._idle))
        created = [self._factory() for _ in range(missing)]
        with ThreadPoolExecutor(max_workers=max(1, min(missing, os.cpu_count() or 1))) as starting:
            list(starting.map(lambda environment: environment.prewarm(), created))
        with self._lock:
            self._idle.extend(created)


# --------------------------------------------------------------------------------------------- runner


class LocalRunner:
    """Plays Lambda and its event sources for the functions of a started LocalStack."""

    def __init__(
        self,
        stack: LocalStack,
        log_dir: Path,
        upload_concurrency: int | None = None,
        *,
        event_sources: bool = True,
        async_retry_delay_s: float = 0.0,
        prewarm: bool = False,
        function_timeout_s: float | None = None,
    ) -> None:
        self.stack = stack
        self.log_dir = Path(log_dir)
        self.upload_concurrency = upload_concurrency or DEFAULT_UPLOAD_CONCURRENCY
        self.event_sources = event_sources
        # Lambda waits about a minute, then two, between async retries; locally, no wait by default.
        self.async_retry_delay_s = async_retry_delay_s
        # Every function's Timeout, overridden locally (None: the template's). The soak shortens it so that
        # an invocation killed mid-job gives its work back sooner (the idempotency lease ends at the deadline).
        self.function_timeout_s = function_timeout_s
        # Each Lambda environment has its own CPU; here all share two cores, and a storm of cold starts
        # would slow the calls of the warm ones. Prewarming runs every init before the first event.
        self.prewarm = prewarm
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._executors: list[ThreadPoolExecutor] = []
        self._pools: dict[str, _EnvironmentPool] = {}
        self._environments: list[ExecutionEnvironment] = []  # every one made, for their logs
        self._watched_queues: list[str] = []
        self._in_flight = 0
        self._received = 0
        self._counters = RunnerCounters()
        self._history: list[InvocationRecord] = []
        self._xray: XRaySink | None = None
        self._sqs_client: SQSClient | None = None
        self._started = False

    # -- lifecycle

    def start(self) -> LocalRunner:
        if self._started:
            raise RuntimeError("the runner is already started")
        self._started = True
        self._stopping.clear()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_xray()
        if self.event_sources:
            if self.prewarm:
                self._prewarm_environments()
            template = self.stack.template
            for function_id, queue_url in self.stack.notification_queues.items():
                self._start_notification_source(template.function(function_id), queue_url)
            for function in template.functions.values():
                for source in function.sqs_events:
                    if source.enabled:
                        self._start_sqs_source(function, source)
        return self

    def _prewarm_environments(self) -> None:
        template = self.stack.template
        for function in template.functions.values():
            if function.logical_id in self.stack.notification_queues:
                self._pool(function).prewarm(self.upload_concurrency)
            for source in function.sqs_events:
                if source.enabled:
                    self._pool(function).prewarm(source.maximum_concurrency or DEFAULT_UPLOAD_CONCURRENCY)

    def stop(self) -> None:
        """Stop polling and end every environment; an invocation in progress is cut short."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=_POLL_WAIT_S + 5)
        self._threads.clear()
        # Busy environments are cut short: their events stay in their queues.
        self._shutdown_environments()
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)
        self._shutdown_environments()  # any made by a delivery that was under way
        self._executors.clear()
        self._pools.clear()
        self._watched_queues.clear()
        if self._xray is not None:
            self._xray.stop()  # its documents stay readable
        self._started = False

    def _shutdown_environments(self) -> None:
        with self._lock:
            environments = list(self._environments)
        for environment in environments:
            environment.shutdown()

    def __enter__(self) -> LocalRunner:
        return self if self._started else self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- invoking

    def invoke(self, function_logical_id: str, event: Any, timeout_s: float | None = None) -> InvocationResult:
        """A synchronous invocation in a fresh environment, like `sam local invoke`."""
        function = self.stack.template.function(function_logical_id)
        self._ensure_xray()
        environment = self._new_environment(function)
        try:
            return self._invoke(environment, "invoke", event, timeout_s=timeout_s)
        finally:
            environment.shutdown()

    def run_schedule(self, function_logical_id: str, timeout_s: float | None = None) -> InvocationResult:
        """What the function's schedule delivers when it is due, now: EventBridge's scheduled event, in a fresh
        environment (nothing runs schedules by the clock locally)."""
        function = self.stack.template.function(function_logical_id)
        if not function.schedules:
            raise KeyError(f"{function_logical_id} has no schedule in {self.stack.template.path}")
        rule = f"{function.name}-{function.schedules[0].name}"
        event = scheduled_event(rule, self.stack.template.region, self.stack.template.account_id)
        return self.invoke(function_logical_id, event, timeout_s=timeout_s)

    def _new_environment(self, function: FunctionSpec) -> ExecutionEnvironment:
        environment = {**self.stack.function_environment(function.logical_id), **_ISOLATION_ENVIRONMENT}
        if self._xray is not None and self._xray.running:
            environment["AWS_XRAY_DAEMON_ADDRESS"] = self._xray.address
        created = ExecutionEnvironment(function, environment, self.log_dir)
        with self._lock:
            self._environments.append(created)
        return created

    def _pool(self, function: FunctionSpec) -> _EnvironmentPool:
        with self._lock:
            if function.logical_id not in self._pools:
                self._pools[function.logical_id] = _EnvironmentPool(lambda: self._new_environment(function))
            return self._pools[function.logical_id]

    def _invoke(
        self,
        environment: ExecutionEnvironment,
        source: str,
        event: Any,
        *,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> InvocationResult:
        function = environment.function
        trace_header = new_trace_header(function.tracing == "Active")
        if timeout_s is None:
            timeout_s = self.function_timeout_s
        result = environment.invoke(event, timeout_s, request_id=request_id, trace_header=trace_header)
        with self._lock:
            name = function.logical_id
            self._counters.invocations[name] += 1
            self._counters.errors[name] += 0 if result.ok else 1
            self._counters.cold_starts[name] += 1 if result.cold_start else 0
            self._counters.timeouts[name] += 1 if result.error_type == "Sandbox.Timedout" else 0
            self._history.append(InvocationRecord(name, source, event, result))
        if not result.ok:
            logger.info("%s %s failed: %s: %s", name, result.request_id, result.error_type, result.error_message)
        return result

    def _invoke_pooled(self, function: FunctionSpec, source: str, event: Any, request_id: str) -> InvocationResult:
        pool = self._pool(function)
        environment = pool.acquire()
        try:
            return self._invoke(environment, source, event, request_id=request_id)
        finally:
            pool.release(environment)

    # -- S3 notifications: asynchronous invocation

    def _start_notification_source(self, function: FunctionSpec, queue_url: str) -> None:
        slots = threading.BoundedSemaphore(self.upload_concurrency)
        executor = ThreadPoolExecutor(self.upload_concurrency, thread_name_prefix=f"s3-{function.logical_id}")
        self._executors.append(executor)
        self._watched_queues.append(queue_url)

        def deliver(message: MessageTypeDef) -> None:
            try:
                self._deliver_async(function, queue_url, message)
            except Exception:  # a poller must outlive any one message; it comes back after the visibility timeout
                logger.exception("%s: could not deliver an S3 notification", function.logical_id)
            finally:
                self._done()
                slots.release()

        self._start_notification_poller(f"s3-poller-{function.logical_id}", queue_url, slots, executor, deliver)

    def _deliver_async(self, function: FunctionSpec, queue_url: str, message: MessageTypeDef) -> None:
        sqs = self._sqs
        event = json.loads(message["Body"])
        request_id = str(uuid.uuid4())  # Lambda keeps one request id across the retries of an event
        attempts = 1 + function.maximum_retry_attempts
        result: InvocationResult | None = None
        for attempt in range(attempts):
            if attempt and self._stopping.wait(self.async_retry_delay_s):
                return
            if self._stopping.is_set():
                return  # left in the queue, as an unfinished event
            result = self._invoke_pooled(function, "s3", event, request_id)
            if result.ok:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                return
        assert result is not None
        if self._stopping.is_set():
            return
        if function.dead_letter_queue_logical_id is not None:
            self._send_to_dead_letter_queue(function, message["Body"], result)
        else:
            logger.warning("%s: event dropped after %d attempts (no DeadLetterQueue)", function.logical_id, attempts)
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _send_to_dead_letter_queue(self, function: FunctionSpec, body: str, result: InvocationResult) -> None:
        assert function.dead_letter_queue_logical_id is not None
        error_message = (result.error_message or "").encode()[:_DLQ_ERROR_MESSAGE_BYTES].decode(errors="ignore")
        self._sqs.send_message(
            QueueUrl=self.stack.queue_url(function.dead_letter_queue_logical_id),
            MessageBody=body,
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": result.request_id},
                # The status of the Invoke call itself: 200, since the function ran and failed.
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": error_message or "(no message)"},
            },
        )
        with self._lock:
            self._counters.dead_lettered[function.logical_id] += 1

    # -- SQS event sources

    def _start_sqs_source(self, function: FunctionSpec, source: SqsEventSource) -> None:
        queue = self.stack.template.resources[source.queue_logical_id]
        concurrency = source.maximum_concurrency or DEFAULT_SQS_CONCURRENCY
        slots = threading.BoundedSemaphore(concurrency)
        executor = ThreadPoolExecutor(concurrency, thread_name_prefix=f"sqs-{function.logical_id}")
        self._executors.append(executor)
        self._watched_queues.append(queue.ref)

        def deliver(messages: list[MessageTypeDef]) -> None:
            try:
                self._deliver_batch(function, source, queue.ref, queue.attribute("Arn"), messages)
            except Exception:
                logger.exception("%s: could not deliver an SQS batch", function.logical_id)
            finally:
                self._done()
                slots.release()

        def poll() -> None:
            sqs = self._sqs
            while not self._stopping.is_set():
                if not slots.acquire(timeout=0.2):
                    continue
                try:
                    batch = self._collect_batch(sqs, queue.ref, source)
                except Exception:
                    logger.exception("%s: receiving from %s failed", function.logical_id, source.queue_logical_id)
                    batch = []
                    self._stopping.wait(1)
                if not batch:
                    slots.release()
                    continue
                with self._lock:
                    self._in_flight += 1
                executor.submit(deliver, batch)

        self._start_thread(f"sqs-poller-{function.logical_id}-{source.name}", poll)

    def _collect_batch(self, sqs: SQSClient, queue_url: str, source: SqsEventSource) -> list[MessageTypeDef]:
        """Up to BatchSize messages, waiting at most MaximumBatchingWindowInSeconds after the first one."""
        messages: list[MessageTypeDef] = []
        window_ends: float | None = None
        while len(messages) < source.batch_size and not self._stopping.is_set():
            if window_ends is not None and time.monotonic() >= window_ends:
                break
            answer = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(10, source.batch_size - len(messages)),
                WaitTimeSeconds=_POLL_WAIT_S if window_ends is None else 0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = answer.get("Messages", [])
            if received:
                with self._lock:
                    self._received += len(received)
                messages.extend(received)
                if window_ends is None:
                    window_ends = time.monotonic() + source.maximum_batching_window_s
            elif window_ends is None:
                break
            else:
                self._stopping.wait(min(0.05, max(0.0, window_ends - time.monotonic())))
        return messages

    def _deliver_batch(
        self,
        function: FunctionSpec,
        source: SqsEventSource,
        queue_url: str,
        queue_arn: str,
        messages: list[MessageTypeDef],
    ) -> None:
        event = {"Records": [sqs_record(message, queue_arn, self.stack.region) for message in messages]}
        result = self._invoke_pooled(function, "sqs", event, str(uuid.uuid4()))
        if not result.ok:
            return  # the whole batch comes back after the visibility timeout
        handles = {message["MessageId"]: message["ReceiptHandle"] for message in messages}
        failed: set[str] = set()
        if source.report_batch_item_failures:
            reported = batch_item_failures(result.payload, set(handles))
            if reported is None:
                logger.warning(
                    "%s: invalid batchItemFailures %r; the whole batch failed", function.logical_id, result.payload
                )
                return
            failed = reported
            with self._lock:
                self._counters.batch_item_failures[function.logical_id] += len(failed)
        done = [(message_id, handle) for message_id, handle in handles.items() if message_id not in failed]
        sqs = self._sqs
        for start in range(0, len(done), 10):
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(index), "ReceiptHandle": handle}
                for index, (_, handle) in enumerate(done[start : start + 10])
            ]
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)

    # -- polling machinery

    def _start_notification_poller(
        self,
        name: str,
        queue_url: str,
        slots: threading.BoundedSemaphore,
        executor: ThreadPoolExecutor,
        deliver: Callable[[MessageTypeDef], None],
    ) -> None:
        """Receive notifications while an environment is free, each delivered on its own."""

        def poll() -> None:
            sqs = self._sqs
            while not self._stopping.is_set():
                if not slots.acquire(timeout=0.2):
                    continue
                # Take as many messages as there are free environments, up to SQS's 10.
                taken = 1
                while taken < 10 and slots.acquire(blocking=False):
                    taken += 1
                try:
                    answer = sqs.receive_message(
                        QueueUrl=queue_url,
                        MaxNumberOfMessages=taken,
                        WaitTimeSeconds=_POLL_WAIT_S,
                        AttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    )
                    messages = answer.get("Messages", [])
                except Exception:
                    logger.exception("%s: receiving from %s failed", name, queue_url)
                    messages = []
                    self._stopping.wait(1)
                for _ in range(taken - len(messages)):
                    slots.release()
                with self._lock:
                    self._in_flight += len(messages)
                    self._received += len(messages)
                for message in messages:
                    executor.submit(deliver, message)

        self._start_thread(name, poll)

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def _sqs(self) -> SQSClient:
        # One client for every thread: boto3 clients are thread-safe, and making one costs time.
        with self._lock:
            if self._sqs_client is None:
                self._sqs_client = self.stack.client("sqs")
            return self._sqs_client

    def _ensure_xray(self) -> None:
        with self._lock:
            if self._xray is None or not self._xray.running:
                self._xray = XRaySink(self.log_dir / "xray.jsonl").start()

    # -- what tests and the command line read

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Return once no polled queue holds a message (visible, in flight or delayed) and nothing runs, seen
        in two looks in a row with nothing taken in between.

        One look is not enough: moto counts a queue's messages one attribute after another, so a message
        that turns from delayed to visible (or from in flight to visible again) between two of the counts is
        in none of them. A moment later it is counted where it now is, unless it was taken, which moves the
        counters. The confirming look is taken whatever the timeout, so `timeout=0` still answers."""
        deadline = time.monotonic() + timeout
        quiet: tuple[int, int] | None = None  # the counters at the last quiet look
        while True:
            with self._lock:
                before = (self._in_flight, self._received)
            pending = self._pending_messages()
            with self._lock:
                after = (self._in_flight, self._received)
            # Unchanged counters around the look at the queues: nothing was taken in between.
            if not pending and before == after and after[0] == 0:
                if quiet == after:
                    return
                quiet = after
                time.sleep(_IDLE_CONFIRM_S)
                continue
            quiet = None
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not idle after {timeout} s: {after[0]} in flight, messages pending {pending}")
            time.sleep(0.05)

    def _pending_messages(self) -> dict[str, int]:
        """How many messages (visible, in flight or delayed) each polled queue that holds any has, by URL."""
        pending: dict[str, int] = {}
        for url in list(self._watched_queues):
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            total = sum(int(value) for value in attributes.values())
            if total:
                pending[url] = total
        return pending

    def counters(self) -> RunnerCounters:
        """A snapshot of the counters."""
        with self._lock:
            return RunnerCounters(
                invocations=Counter(self._counters.invocations),
                errors=Counter(self._counters.errors),
                cold_starts=Counter(self._counters.cold_starts),
                timeouts=Counter(self._counters.timeouts),
                dead_lettered=Counter(self._counters.dead_lettered),
                batch_item_failures=Counter(self._counters.batch_item_failures),
            )

    def history(self, function_logical_id: str | None = None) -> list[InvocationRecord]:
        """Every invocation so far (of one function, if named), oldest first."""
        with self._lock:
            return [r for r in self._history if function_logical_id in (None, r.function_logical_id)]

    def log_files(self, function_logical_id: str | None = None) -> list[Path]:
        """The log file of every worker process started so far."""
        with self._lock:
            environments = list(self._environments)
        return sorted(
            path
            for env in environments
            if function_logical_id in (None, env.function.logical_id)
            for path in env.log_paths
            if path.exists()
        )

    def log_records(self, function_logical_id: str | None = None) -> list[dict[str, Any]]:
        """Every JSON line (Powertools logs, EMF metrics) the workers wrote; other lines are skipped."""
        records: list[dict[str, Any]] = []
        for path in self.log_files(function_logical_id):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        records.append(record)
        return records

    def trace_documents(self) -> list[dict[str, Any]]:
        """The X-Ray segment documents the workers sent."""
        return self._xray.documents() if self._xray is not None else []


def scheduled_event(rule_name: str, region: str, account_id: str) -> dict[str, Any]:
    """EventBridge's "Scheduled Event", as a schedule delivers it (events/schedule.json)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account_id}:rule/{rule_name}"],
        "detail": {},
    }


def sqs_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event from a ReceiveMessage message."""
    attributes: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        attribute: dict[str, Any] = {}
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        attribute.update({"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]})
        attributes[name] = attribute
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


def batch_item_failures(payload: Any, message_ids: set[str]) -> set[str] | None:
    """The ids a ReportBatchItemFailures response names; None when the response is invalid (all failed).

    As Lambda reads it: null, {} or an empty list mean success; an entry without a known itemIdentifier
    makes the whole batch a failure.
    """
    if payload is None or payload == {}:
        return set()
    if not isinstance(payload, dict):
        return set()  # a response of another shape is not a partial-failure report
    failures = payload.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        failed.add(identifier)
    return failed
