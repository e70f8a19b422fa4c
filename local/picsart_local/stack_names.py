"""Where an operator command finds the stack's resources, and the rules its functions run.

Two sources, one shape (`StackNames`):
- a deployed stack (`--stack NAME`): CloudFormation's `describe_stacks` gives the outputs of template.yaml
  (`InputBucketName`, `JobsTableName`, `DelayQueueUrl`, `DeadLetterQueueUrl`) and the parameters it was
  deployed with (`RulesFile`, `PicsartTool`, `PicsartToolParameters`, `PicsartApiKeySecretName`);
- the local stack (no `--stack`): the variables `picsart-local stack` prints (`INPUT_BUCKET`, `JOBS_TABLE`,
  `DELAY_QUEUE_URL`, `DEAD_LETTER_QUEUE_URL`, with `AWS_ENDPOINT_URL`), and the template's parameters with
  `--parameter-overrides`, as `picsart-local stack` was started with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from picsart_adapter.config import rules_path
from picsart_adapter.rules import Rules, default_rules, load_rules
from picsart_adapter.tools import TOOLS
from picsart_local.cfn_template import load_template, resolve_parameters

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudformation import CloudFormationClient

#: Each name a command needs: (its field, the stack output that gives it, the variable `picsart-local stack` prints).
NAMES: Final = (
    ("input_bucket", "InputBucketName", "INPUT_BUCKET"),
    ("jobs_table", "JobsTableName", "JOBS_TABLE"),
    ("delay_queue_url", "DelayQueueUrl", "DELAY_QUEUE_URL"),
    ("dead_letter_queue_url", "DeadLetterQueueUrl", "DEAD_LETTER_QUEUE_URL"),
)
#: The secret's name when neither the stack nor the overrides give one (the template's default).
DEFAULT_SECRET_NAME: Final = "picsart/api-key"  # noqa: S105 -- the secret's name, not a secret


@dataclass(frozen=True)
class StackNames:
    """The resources one command works on, and the template parameters its functions run with."""

    input_bucket: str
    jobs_table: str
    delay_queue_url: str
    dead_letter_queue_url: str
    #: Where the names came from, for what the command prints: `stack NAME` or `the environment`.
    source: str
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def api_key_secret(self) -> str:
        return self.parameters.get("PicsartApiKeySecretName") or DEFAULT_SECRET_NAME


def find_names(
    session: boto3.session.Session, stack: str | None, template_path: Path, overrides: Mapping[str, str]
) -> StackNames:
    """A deployed stack's names when `stack` is given, else the local stack's from the environment (with the
    template's parameters and the overrides `picsart-local stack` was started with)."""
    if stack:
        return from_stack(session.client("cloudformation"), stack)
    return from_environment(os.environ, template_parameters(template_path, overrides))


def from_stack(cloudformation: CloudFormationClient, stack_name: str) -> StackNames:
    """The names in a deployed stack's outputs, and the parameters it was deployed with."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name).get("Stacks", [])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationError":
            raise
        stacks = []  # CloudFormation's answer for a stack it does not have
    if not stacks:
        raise ValueError(f"no CloudFormation stack named {stack_name!r}")
    stack = stacks[0]
    outputs = {str(o.get("OutputKey")): str(o.get("OutputValue")) for o in stack.get("Outputs", [])}
    missing = [output for _, output, _ in NAMES if not outputs.get(output)]
    if missing:
        raise ValueError(f"stack {stack_name!r} has no output {', '.join(missing)}: is it this project's stack?")
    parameters = {str(p.get("ParameterKey")): str(p.get("ParameterValue", "")) for p in stack.get("Parameters", [])}
    names: dict[str, Any] = {attribute: outputs[output] for attribute, output, _ in NAMES}
    return StackNames(**names, source=f"stack {stack_name}", parameters=parameters)


def from_environment(environ: Mapping[str, str], parameters: Mapping[str, str] | None = None) -> StackNames:
    """The names `picsart-local stack` prints as variables; a clear error names the ones not set."""
    missing = [variable for _, _, variable in NAMES if not environ.get(variable)]
    if missing:
        raise ValueError(
            f"set {', '.join(missing)} (`picsart-local stack` prints them), or give --stack NAME for a deployed stack"
        )
    names: dict[str, Any] = {attribute: environ[variable] for attribute, _, variable in NAMES}
    return StackNames(**names, source="the environment", parameters=dict(parameters or {}))


def template_parameters(template_path: Path, overrides: Mapping[str, str]) -> dict[str, str]:
    """The template's parameters with the overrides, as the local stack resolves them."""
    resolved = resolve_parameters(load_template(template_path), overrides)
    return {name: ",".join(value) if isinstance(value, list) else value for name, value in resolved.items()}


def functions_rules(parameters: Mapping[str, str], rules_file: Path | None = None) -> tuple[Rules, str]:
    """The rules the functions run and where they come from: `rules_file` when given (the CLI's `--rules`, as the
    local stack was started with), else the `RulesFile` parameter (relative to the layer's root, as the
    functions read it), else `PicsartTool` and its parameters as the one rule (config.py)."""
    if rules_file is not None:
        return load_rules(rules_file), str(rules_file)
    chosen = parameters.get("RulesFile", "").strip()
    if chosen:
        path = rules_path(chosen)
        return load_rules(path), str(path)
    tool_name = parameters.get("PicsartTool") or "removebg"
    if tool_name not in TOOLS:
        raise ValueError(f"PicsartTool {tool_name!r} is not a tool the adapter knows")
    tool = TOOLS[tool_name]
    try:
        chosen_parameters = tool.parse_parameters(json.loads(parameters.get("PicsartToolParameters") or "{}"))
    except (ValueError, TypeError) as error:  # pydantic's ValidationError and JSON's errors are ValueErrors
        raise ValueError(f"PicsartToolParameters is not valid for the {tool_name} tool: {error}") from None
    return default_rules(tool, chosen_parameters), f"PicsartTool {tool_name}"
