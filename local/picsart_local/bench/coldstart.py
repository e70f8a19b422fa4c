"""Cold start and size: how long each handler module takes to import in a fresh interpreter, next to a bare
Powertools handler, and how big the layer `sam build` ships is.

Import time: the median over several fresh interpreters (the modules take turns, so a change in the
machine's load touches them all alike) of the wall time of importing the handler module
(as Lambda's runtime does, from its CodeUri), with the environment Lambda would give the function (from the
local stack, so the module-level settings check finds its variables), and its ratio to the bare handler's.
``process_ms`` is the whole interpreter's run, startup and exit included. ``first_event_ms`` is the
handler's first invocation, with an event of no records (which the retry function's batch utility refuses,
once loaded), right after the import: what a handler leaves to its first event (the adapter's handlers
build their processor then: the AWS SDK, its clients, the domain; no network call). Import plus first event
is what an environment pays before its first upload's own work starts.

Where a Python 3.13 is found (the one the layer's Makefile compiles bytecode with), the interpreter is made
like Lambda's: Python 3.13, the layer as its Makefile builds it (for this machine's platform), boto3 as the
runtime ships it, the site-packages of no venv, and no bytecode written (Lambda's /opt is read-only). The
bare handler imports Powertools from the same layer. Without one, this venv's interpreter is used, and the
report says so.

Layer size: the layer built by its own Makefile exactly as ``sam build`` builds it (arm64 wheels for
Python 3.13, minus what the runtime ships, plus the package, under ``python/``); unzipped and zipped sizes.
Without an index that has those wheels the size is reported as not measured, with the reason.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from picsart_local.bench.metrics import median
from picsart_local.stack import LocalStack

#: What the interpreter needs from this process's environment; AWS comes from the function's only.
_KEPT: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
_ISOLATION: Final = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
}
_PROBE: Final = """
import sys, time
started = time.perf_counter()
import importlib.util
code_uri, name = sys.argv[1], sys.argv[2]
sys.path.insert(0, code_uri)
spec = importlib.util.spec_from_file_location(name, code_uri + "/" + name + ".py")
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
imported = time.perf_counter()


class Context:
    function_name = log_stream_name = aws_request_id = "cold-start-probe"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cold-start-probe"
    memory_limit_in_mb = 1024
    log_group_name = "/aws/lambda/cold-start-probe"

    def get_remaining_time_in_millis(self):
        return 60000


try:
    module.lambda_handler({"Records": []}, Context())
except Exception:
    pass  # Powertools' batch utility refuses an empty batch, once it and the handler's processor are loaded
print("%s %f %f" % (sys.argv[3], (imported - started) * 1000, (time.perf_counter() - imported) * 1000))
"""
#: Marks the probe's result among what the handler logs.
_RESULT_MARK: Final = "cold-start-probe-result"
BARE_HANDLER: Final = '''"""A bare Powertools handler: the floor any Powertools function pays at cold start."""
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return {"ok": True}
'''
BARE_LABEL: Final = "bare Powertools handler"
#: The issue's target: each handler's import within this many times the bare Powertools handler's.
IMPORT_TARGET_VS_BARE: Final = 1.5
LAYER_PLATFORM: Final = "manylinux2014_aarch64"
LAYER_PYTHON: Final = "3.13"
#: Lambda's limits for a function and its layers.
UNZIPPED_LIMIT_BYTES: Final = 250 * 1024 * 1024


def import_times(template_path: Path, runs: int) -> dict[str, Any]:
    """Median import time of each function's handler module and of a bare Powertools handler."""
    repository_root = template_path.parent.resolve()
    stack = LocalStack(template_path=template_path, stack_name="bench-cold-start").start()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="cold-start-") as folder,
            tempfile.TemporaryDirectory(prefix="bare-powertools-") as bare,
        ):
            interpreter = _lambda_like(repository_root, Path(folder))
            subjects: list[_Subject] = []
            template = stack.template
            for logical_id in ("UploadFunction", "RetryFunction"):
                if logical_id not in template.functions:
                    continue
                function = template.function(logical_id)
                path = Path(function.code_uri) / f"{function.handler_module}.py"
                try:
                    label = str(path.relative_to(repository_root))
                except ValueError:
                    label = str(path)
                environment = _environment(interpreter, stack.function_environment(logical_id))
                subjects.append(_Subject(label, function.code_uri, function.handler_module, environment))
            (Path(bare) / "bare_handler.py").write_text(BARE_HANDLER)
            environment = _environment(interpreter, stack.function_environment(next(iter(template.functions))))
            subjects.append(_Subject(BARE_LABEL, Path(bare), "bare_handler", environment))
            results = _measure_in_turns(interpreter, subjects, runs)
    finally:
        stack.stop()
    return {
        "runs": runs,
        "python": interpreter.version,
        "lambda_like": interpreter.lambda_like,
        "interpreter": interpreter.description,
        "modules": results,
        "target": import_target(results),
    }


def import_target(results: dict[str, Any]) -> dict[str, Any]:
    """The target on the slowest handler's import against the bare handler's ("pass" None when a module
    could not be measured)."""
    handlers = [measured for label, measured in results.items() if label != BARE_LABEL]
    ratios = [measured.get("import_vs_bare") for measured in handlers]
    worst = max((ratio for ratio in ratios if ratio is not None), default=None)
    measured_all = bool(handlers) and None not in ratios
    return {
        "target": f"<= {IMPORT_TARGET_VS_BARE:g}x bare",
        "value": worst,
        "pass": (worst <= IMPORT_TARGET_VS_BARE) if measured_all and worst is not None else None,
    }


@dataclass(frozen=True)
class _Interpreter:
    command: tuple[str, ...]
    version: str
    lambda_like: bool
    description: str
    #: Added to the environment: the layer and the runtime's boto3 on the path, no bytecode written.
    environment: dict[str, str] = field(default_factory=dict)


def _lambda_like(repository_root: Path, folder: Path) -> _Interpreter:
    """An interpreter like Lambda's for the import, or this venv's with the reason it is not."""
    this_venv = _Interpreter(
        (sys.executable,), sys.version.split()[0], False, "this venv's interpreter, bytecode cached"
    )
    layer_dir = repository_root / "layers" / "picsart_adapter"
    make = ["make", "--no-print-directory", "-C", str(layer_dir)]
    try:
        found = subprocess.run([*make, "print-pyc-python"], capture_output=True, text=True, timeout=60, check=False)
        python313 = found.stdout.strip()
        if not python313:
            return replace(this_venv, description=this_venv.description + " (no Python 3.13 found)")
        platform_tag = f"manylinux2014_{platform.machine()}"
        steps = [
            [
                *make,
                "build-AdapterLayer",
                f"PYTHON={sys.executable}",
                f"PLATFORM={platform_tag}",
                f"ARTIFACTS_DIR={folder}",
            ],
            [
                python313,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                str(folder / "runtime"),
                "boto3",
            ],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                reason = lines[-1] if lines else f"exit status {done.returncode}"
                return replace(this_venv, description=this_venv.description + f" (no Lambda-like layer: {reason})")
        version = subprocess.run(
            [python313, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return replace(this_venv, description=this_venv.description + f" (no Lambda-like layer: {error})")
    return _Interpreter(
        (python313, "-s"),
        version,
        True,
        f"Lambda-like: the layer as its Makefile builds it ({platform_tag}), boto3 as the runtime ships it, "
        "no bytecode written (/opt is read-only)",
        {"PYTHONPATH": f"{folder / 'python'}{os.pathsep}{folder / 'runtime'}", "PYTHONDONTWRITEBYTECODE": "1"},
    )


@dataclass(frozen=True)
class _Subject:
    label: str
    code_uri: Path
    module: str
    #: The interpreter's whole environment (see `_environment`).
    environment: dict[str, str]


def _measure_in_turns(interpreter: _Interpreter, subjects: list[_Subject], runs: int) -> dict[str, Any]:
    """Each run imports every subject once, in turn, so a change in the machine's load touches all alike."""
    samples: dict[str, list[tuple[float, float, float]]] = {subject.label: [] for subject in subjects}
    errors: dict[str, str] = {}
    for _ in range(max(1, runs)):
        for subject in subjects:
            if subject.label in errors:
                continue
            sample = _import_once(interpreter, subject)
            if isinstance(sample, str):
                errors[subject.label] = sample
            else:
                samples[subject.label].append(sample)
    results: dict[str, Any] = {}
    for subject in subjects:
        if subject.label in errors:
            results[subject.label] = {"error": errors[subject.label]}
            continue
        imports = [sample[0] for sample in samples[subject.label]]
        results[subject.label] = {
            "import_ms": median(imports),
            "first_event_ms": median([sample[1] for sample in samples[subject.label]]),
            "process_ms": median([sample[2] for sample in samples[subject.label]]),
            "samples_ms": imports,
        }
    bare = results.get(BARE_LABEL, {})
    for measured in results.values():
        if "import_ms" in measured and "import_ms" in bare:
            measured["import_vs_bare"] = measured["import_ms"] / bare["import_ms"]
    return results


def _environment(interpreter: _Interpreter, function_environment: dict[str, str]) -> dict[str, str]:
    """What a measured interpreter runs with: a few of this process's variables, the function's, the isolation
    from this machine's AWS setup, and the interpreter's own."""
    environment = {name: os.environ[name] for name in _KEPT if name in os.environ}
    if interpreter.lambda_like:
        environment.pop("VIRTUAL_ENV", None)
    environment.update(function_environment)
    environment.update(_ISOLATION)
    environment.update(interpreter.environment)
    return environment


def _import_once(interpreter: _Interpreter, subject: _Subject) -> tuple[float, float, float] | str:
    """(import ms, first event ms, whole process ms) of one fresh interpreter, or why it failed."""
    started = time.perf_counter()
    done = subprocess.run(
        [*interpreter.command, "-c", _PROBE, str(subject.code_uri), subject.module, _RESULT_MARK],
        env=subject.environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    process_ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
    results = [line.split() for line in done.stdout.splitlines() if line.startswith(_RESULT_MARK + " ")]
    if not results:
        return f"no result printed: {done.stdout.strip()[-300:]!r}"
    _, import_ms, first_event_ms = results[-1]
    return float(import_ms), float(first_event_ms), process_ms


def layer_size(repository_root: Path, timeout_s: float = 600.0) -> dict[str, Any]:
    """Size of the layer as `sam build` would ship it, or why it could not be measured."""
    layer_dir = repository_root / "layers" / "picsart_adapter"
    requirements = layer_dir / "requirements.txt"
    # The layer's own Makefile, as `sam build` runs it (BuildMethod: makefile): what it ships is measured.
    command = ["make", "--no-print-directory", "-C", str(layer_dir), "build-AdapterLayer", f"PYTHON={sys.executable}"]
    described = {"platform": LAYER_PLATFORM, "python": LAYER_PYTHON, "requirements": str(requirements)}
    with tempfile.TemporaryDirectory(prefix="layer-") as folder:
        target = Path(folder) / "python"
        try:
            done = subprocess.run(
                [*command, f"ARTIFACTS_DIR={folder}"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return {**described, "measured": False, "reason": f"the layer build did not finish: {error}"}
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            errors = [line for line in lines if "ERROR" in line] or lines
            reason = errors[-1].strip() if errors else f"exit status {done.returncode}"
            return {**described, "measured": False, "reason": f"the layer could not be built: {reason}"}
        unzipped, files = _tree_size(target)
        archive = Path(folder) / "layer.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(target.rglob("*")):
                if path.is_file():
                    bundle.write(path, path.relative_to(folder))
        largest = sorted(
            ((entry.name, _tree_size(entry)[0]) for entry in target.iterdir()),
            key=lambda item: item[1],
            reverse=True,
        )[:6]
        return {
            **described,
            "measured": True,
            "unzipped_bytes": unzipped,
            "zipped_bytes": archive.stat().st_size,
            "files": files,
            "largest": [{"name": name, "bytes": size} for name, size in largest],
            "unzipped_share_of_lambda_limit": unzipped / UNZIPPED_LIMIT_BYTES,
        }


def _tree_size(path: Path) -> tuple[int, int]:
    if path.is_file():
        return path.stat().st_size, 1
    sizes = [child.stat().st_size for child in path.rglob("*") if child.is_file()]
    return sum(sizes), len(sizes)
