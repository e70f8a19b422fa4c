"""Cold start and size: how long each handler module takes to import in a fresh interpreter, next to a bare
Powertools handler, and how big the layer `sam build` ships is.

Import time: the median over several fresh interpreters of the wall time of importing the handler module
(as Lambda's runtime does, from its CodeUri), with the environment Lambda would give the function (from the
local stack, so the module-level ``get_processor()`` finds its settings; it builds boto3 clients and
makes no network call). ``process_ms`` is the whole interpreter's run, startup and exit included.

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
print((time.perf_counter() - started) * 1000)
"""
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
            results: dict[str, Any] = {}
            template = stack.template
            for logical_id in ("UploadFunction", "RetryFunction"):
                if logical_id not in template.functions:
                    continue
                function = template.function(logical_id)
                environment = stack.function_environment(logical_id)
                path = Path(function.code_uri) / f"{function.handler_module}.py"
                try:
                    label = str(path.relative_to(repository_root))
                except ValueError:
                    label = str(path)
                results[label] = _measure(interpreter, function.code_uri, function.handler_module, environment, runs)
            (Path(bare) / "bare_handler.py").write_text(BARE_HANDLER)
            environment = stack.function_environment(next(iter(template.functions)))
            results["bare Powertools handler"] = _measure(interpreter, Path(bare), "bare_handler", environment, runs)
    finally:
        stack.stop()
    return {
        "runs": runs,
        "python": interpreter.version,
        "lambda_like": interpreter.lambda_like,
        "interpreter": interpreter.description,
        "modules": results,
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


def _measure(
    interpreter: _Interpreter, code_uri: Path, module: str, function_environment: dict[str, str], runs: int
) -> dict[str, Any]:
    environment = {name: os.environ[name] for name in _KEPT if name in os.environ}
    if interpreter.lambda_like:
        environment.pop("VIRTUAL_ENV", None)
    environment.update(function_environment)
    environment.update(_ISOLATION)
    environment.update(interpreter.environment)
    imports: list[float] = []
    processes: list[float] = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        done = subprocess.run(
            [*interpreter.command, "-c", _PROBE, str(code_uri), module],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        processes.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
        imports.append(float(done.stdout.strip().splitlines()[-1]))
    return {"import_ms": median(imports), "process_ms": median(processes), "samples_ms": imports}


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
