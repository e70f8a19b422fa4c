"""`sam build` and `sam local invoke` of this project against the local stack, as `picsart-local sam-invoke` and
tests/sam/ run them.

- `sam build` for one architecture (the template's `Architecture`, and LAYER_ARCH for the layer's Makefile, which
  SAM tells nothing but ARTIFACTS_DIR), into a build folder of its own so an arm64 build is never reused.
- `sam local invoke` through the host-network hook (hostnet.py) with `--skip-pull-image` (the base image is local)
  and `--container-host 127.0.0.1`; the functions' environment comes from the local stack's resolved template
  as an `--env-vars` file (SAM would otherwise pass the template's logical ids), and the stack's
  `AWS_ENDPOINT_URL` and dummy credentials from the process environment.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from picsart_local.sam_local.hostnet import RUN_ENVIRONMENT
from picsart_local.stack import LocalStack

#: A cold `sam build` downloads the layer's wheels; an invocation builds SAM's image and starts a container.
BUILD_TIMEOUT_S: Final = 900.0
INVOKE_TIMEOUT_S: Final = 300.0


class SamError(RuntimeError):
    """A SAM command failed; the message holds its command line and output."""


def sam_command(*arguments: str | Path) -> list[str]:
    """`sam ARGUMENTS` through the host-network hook, with this interpreter."""
    return [sys.executable, "-m", "picsart_local.sam_local.hostnet", *map(str, arguments)]


def _sam_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", **(extra or {})}


def build(template: Path, build_dir: Path, architecture: str, *, cached: bool = False) -> Path:
    """`sam build` into build_dir (its cache beside it); the built template's path."""
    command = sam_command(
        "build",
        "--template",
        template,
        "--build-dir",
        build_dir,
        "--cache-dir",
        build_dir.with_name(build_dir.name + "-cache"),
        "--cached" if cached else "--no-cached",
        "--parameter-overrides",
        f"Architecture={architecture}",
    )
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        cwd=template.parent,
        env=_sam_environment({"LAYER_ARCH": architecture}),
        check=False,
    )
    if result.returncode != 0:
        raise SamError(f"{shlex.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return build_dir / "template.yaml"


def env_vars_document(stack: LocalStack, functions: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
    """SAM's `--env-vars` for each function: the variables the template declares, as the local stack sets them."""
    template = stack.template
    document: dict[str, dict[str, str]] = {}
    for logical_id in functions or list(template.functions):
        declared = template.function(logical_id).environment
        environment = stack.function_environment(logical_id)
        document[logical_id] = {name: environment[name] for name in declared}
    return document


@dataclass(frozen=True)
class SamInvocation:
    """What `sam local invoke` printed: the function's answer (stdout) and SAM's and the function's logs."""

    command: list[str]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def payload(self) -> Any:
        """The JSON document SAM printed last on stdout: the handler's answer or Lambda's error document."""
        for line in reversed(self.stdout.strip().splitlines()):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
        raise SamError(f"no JSON answer in the output of {shlex.join(self.command)}:\n{self.stdout}{self.stderr}")

    @property
    def ok(self) -> bool:
        payload = self.payload
        return self.exit_code == 0 and not (isinstance(payload, dict) and "errorType" in payload)


def invoke(
    built_template: Path,
    function: str,
    event: Path,
    env_vars: Path,
    stack: LocalStack,
    architecture: str,
    *,
    run_id: str | None = None,
    stderr: IO[str] | None = None,
    timeout_s: float = INVOKE_TIMEOUT_S,
) -> SamInvocation:
    """`sam local invoke FUNCTION` with an event file, against the running local stack.

    stderr: where SAM's and the function's log lines go as they come (default: captured into the result).
    """
    command = sam_command(
        "local",
        "invoke",
        function,
        "--template",
        built_template,
        "--event",
        event,
        "--env-vars",
        env_vars,
        "--parameter-overrides",
        f"Architecture={architecture}",
        "--skip-pull-image",
        "--container-host",
        "127.0.0.1",
        "--region",
        stack.region,
    )
    extra = dict(stack.aws_environment())
    if run_id:
        extra[RUN_ENVIRONMENT] = run_id
    result = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True,
        timeout=timeout_s,
        cwd=built_template.parent,
        env=_sam_environment(extra),
        check=False,
    )
    return SamInvocation(command, result.returncode, result.stdout, result.stderr or "")
