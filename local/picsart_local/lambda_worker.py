"""What runs inside one execution environment's worker process (started by runner.py with "spawn").

The worker sets the function's environment, imports the handler (the cold start), reports ready, then
handles one invocation at a time from its pipe, writing Lambda's START/END/REPORT lines and everything
the handler prints to its log file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Kept from the parent's environment: what the interpreter and tools need to work, nothing AWS.
_KEPT_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the worker needs; picklable, as spawn sends it to the child."""

    code_uri: str
    handler: str
    environment: Mapping[str, str]
    log_path: str
    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    log_group_name: str
    log_stream_name: str


class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler."""

    def __init__(self, config: WorkerConfig, request_id: str, deadline_ms: int) -> None:
        self.function_name = config.function_name
        self.function_version = config.function_version
        self.invoked_function_arn = config.invoked_function_arn
        self.memory_limit_in_mb = config.memory_limit_in_mb
        self.aws_request_id = request_id
        self.log_group_name = config.log_group_name
        self.log_stream_name = config.log_stream_name
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_payload(error: BaseException, error_type: str | None = None, message: str | None = None) -> dict[str, Any]:
    """Lambda's error shape: errorMessage, errorType, stackTrace."""
    return {
        "errorMessage": str(error) if message is None else message,
        "errorType": error_type or type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def load_handler(code_uri: str, handler: str) -> Callable[[Any, Any], Any]:
    """Import module.function from the CodeUri directory, the way Lambda's runtime does."""
    module_name, _, function_name = handler.rpartition(".")
    sys.path.insert(0, code_uri)  # the handler's siblings import as top-level modules, as in Lambda
    relative = Path(*module_name.split("."))
    path = Path(code_uri) / relative.with_suffix(".py")
    if not path.exists():
        path = Path(code_uri) / relative / "__init__.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None or not path.exists():
        raise ImportError(f"No module named '{module_name}' in {code_uri}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'")
    return function  # type: ignore[no-any-return]


def _redirect_output(log_path: str) -> None:
    # dup2 on the descriptors, so that C extensions and subprocesses write to the log as well.
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def _set_environment(environment: Mapping[str, str]) -> None:
    kept = {name: os.environ[name] for name in _KEPT_VARIABLES if name in os.environ}
    os.environ.clear()
    os.environ.update(kept)
    os.environ.update(environment)


def _max_memory_mb() -> int:
    """The worker's own peak resident memory, as Lambda's "Max Memory Used". On Linux that is VmHWM: the
    getrusage peak survives the exec that "spawn" starts the worker with, so a worker started by a large
    process would report that process's peak (test_max_memory_used_is_the_workers_own_not_its_parents)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024  # kilobytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # kilobytes on Linux


def main(connection: Connection, config: WorkerConfig) -> None:
    """Worker entry point: init, then serve invocations until told to stop or the pipe closes."""
    _redirect_output(config.log_path)
    _set_environment(config.environment)
    if os.environ.get("PICSART_LOCAL_CRASH_POINTS"):  # the soak's crash injection (local tooling only)
        from picsart_local import crash_points

        crash_points.install_from_environment()
    started = time.perf_counter()
    handler: Callable[[Any, Any], Any] | None = None
    init_error: dict[str, Any] | None = None
    try:
        handler = load_handler(config.code_uri, config.handler)
    except ImportError as error:
        module = config.handler.rpartition(".")[0]
        init_error = error_payload(error, "Runtime.ImportModuleError", f"Unable to import module '{module}': {error}")
    except AttributeError as error:
        init_error = error_payload(error, "Runtime.HandlerNotFound")
    except Exception as error:  # anything raised at import is the init error Lambda reports
        init_error = error_payload(error)
    init_duration_ms = (time.perf_counter() - started) * 1000
    if init_error is not None:
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr)
        print("".join(init_error["stackTrace"]), end="", file=sys.stderr)
    connection.send(("ready", {"init_error": init_error, "init_duration_ms": init_duration_ms}))
    if handler is None:
        return
    first = True
    while True:
        try:
            _, request = connection.recv()  # ("invoke", request); the runner ends the process to stop it
        except EOFError:
            return
        connection.send(("result", _invoke(handler, config, request, init_duration_ms if first else None)))
        first = False


def _invoke(
    handler: Callable[[Any, Any], Any], config: WorkerConfig, request: Mapping[str, Any], init_ms: float | None
) -> dict[str, Any]:
    request_id = str(request["request_id"])
    if request.get("trace_header"):
        os.environ["_X_AMZN_TRACE_ID"] = str(request["trace_header"])
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    context = LambdaContext(config, request_id, int(request["deadline_ms"]))
    print(f"START RequestId: {request_id} Version: {config.function_version}", flush=True)
    started = time.perf_counter()
    answer: dict[str, Any]
    try:
        payload = handler(json.loads(request["event_json"]), context)
        try:
            answer = {"ok": True, "payload_json": json.dumps(payload)}
        except (TypeError, ValueError) as error:
            message = f"Unable to marshal response: {error}"
            answer = {"ok": False, "error": error_payload(error, "Runtime.MarshalError", message)}
    except Exception as error:  # the handler's error is the invocation's result; the environment stays
        answer = {"ok": False, "error": error_payload(error)}
    duration_ms = (time.perf_counter() - started) * 1000
    if not answer["ok"]:
        failure = answer["error"]
        # Lambda's Python runtime logs an unhandled error like this.
        print(f"[ERROR] {failure['errorType']}: {failure['errorMessage']}", file=sys.stderr)
        print("Traceback (most recent call last):\n" + "".join(failure["stackTrace"]), end="", file=sys.stderr)
    init = f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else ""
    print(f"END RequestId: {request_id}")
    print(
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {int(duration_ms) + 1} ms"
        f"\tMemory Size: {config.memory_limit_in_mb} MB\tMax Memory Used: {_max_memory_mb()} MB{init}",
        flush=True,
    )
    sys.stderr.flush()
    answer["duration_ms"] = duration_ms
    return answer
