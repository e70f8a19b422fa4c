"""The adapter's configuration: one model, parsed from the environment once, at cold start.

A wrong value stops the function before it handles any event, with a message that names the variable,
so a bad deployment fails loudly instead of sending Picsart requests that are bound to be refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from picsart_adapter.tools import TOOLS, Tool, ToolName, ToolParameters

if TYPE_CHECKING:
    from picsart_adapter.rules import Rules

DEFAULT_PICSART_BASE_URL = "https://api.picsart.io/tools/1.0"
#: Where a relative PICSART_RULES_FILE is found: the layer's root, which holds the package and the `rules/`
#: directory the layer is built with (`layers/picsart_adapter/` in the repository, `/opt/python/` in Lambda).
LAYER_ROOT = Path(__file__).resolve().parents[1]


class ConfigurationError(ValueError):
    """The environment does not describe a working adapter; the message names each variable at fault."""


class AdapterSettings(BaseModel):
    """Everything the functions read from their environment (set by template.yaml)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    output_bucket: str = Field(alias="OUTPUT_BUCKET", min_length=3, max_length=63)
    jobs_table: str = Field(alias="JOBS_TABLE", min_length=3, max_length=255)
    delay_queue_url: str = Field(alias="DELAY_QUEUE_URL", pattern=r"^https?://\S+$")
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", pattern=r"^https?://\S+$")
    api_key_secret: str = Field(alias="PICSART_API_KEY_SECRET", min_length=1)
    # Powertools Metrics fails mid-job without a namespace: require it at cold start instead.
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
    picsart_base_url: str = Field(
        DEFAULT_PICSART_BASE_URL,
        alias="PICSART_BASE_URL",
        # No trailing slash and no empty path segment: `/tools/1.0//removebg` is a 404 (troubleshooting guide).
        pattern=r"^https?://[^/\s]+(/[^/\s]+)*$",
    )
    tool_name: ToolName = Field("removebg", alias="PICSART_TOOL")
    tool_parameters_json: str = Field("{}", alias="PICSART_TOOL_PARAMETERS")
    #: The rules file (docs/rules.md); empty: PICSART_TOOL and its parameters, as one rule for every image.
    rules_file: str = Field("", alias="PICSART_RULES_FILE")
    presigned_url_ttl_seconds: int = Field(300, alias="PRESIGNED_URL_TTL_SECONDS", ge=60, le=3600)
    request_timeout_seconds: float = Field(30.0, alias="PICSART_TIMEOUT_SECONDS", gt=0, le=840)
    max_attempts: int = Field(6, alias="MAX_ATTEMPTS", ge=1, le=50)
    # The guide: with no usable reset time, wait at least a minute, then back off exponentially.
    rate_limit_floor_seconds: float = Field(60.0, alias="RATE_LIMIT_FLOOR_SECONDS", ge=0, le=3600)
    retry_base_seconds: float = Field(2.0, alias="RETRY_BASE_SECONDS", ge=0, le=3600)
    # Picsart's spike arrest is 300/s; a fleet sharing the key with other clients can keep lower.
    spike_per_second: int = Field(300, alias="RATE_LIMIT_SPIKE_PER_SECOND", ge=1, le=300)
    # The fleet's circuit: the first wait before a probe (the guide's minute), its cap, and how many 400/422
    # answers in a row open it.
    circuit_probe_seconds: float = Field(60.0, alias="CIRCUIT_PROBE_SECONDS", ge=0, le=3600)
    circuit_max_probe_seconds: float = Field(900.0, alias="CIRCUIT_MAX_PROBE_SECONDS", ge=0, le=86_400)
    circuit_validation_failures: int = Field(10, alias="CIRCUIT_VALIDATION_FAILURES", ge=1, le=1000)
    #: The EventBridge bus every job's completion event goes to (docs/events.md): a bus name, as PutEvents and
    #: the role's events:PutEvents resource take it.
    event_bus_name: str = Field("default", alias="EVENT_BUS_NAME", pattern=r"^[A-Za-z0-9._/-]{1,256}$")
    # How long work held at its rule's credit floor waits before it looks again (docs/credits.md); at most one
    # SQS delay, so a top-up releases it within this and a hop.
    credit_floor_hold_seconds: float = Field(300.0, alias="CREDIT_FLOOR_HOLD_SECONDS", ge=1, le=900)

    @property
    def tool(self) -> Tool:
        return TOOLS[self.tool_name]

    @cached_property
    def tool_parameters(self) -> ToolParameters:
        return _parse_tool_parameters(self.tool, self.tool_parameters_json)

    @cached_property
    def rules(self) -> Rules:
        """The rules every upload is matched against: the rules file's, or PICSART_TOOL's as one rule."""
        # Imported here: a deployment without a rules file reads its rule at the first event, not in the cold start.
        from picsart_adapter.rules import RulesError, default_rules, load_rules

        if not self.rules_file.strip():
            return default_rules(self.tool, self.tool_parameters)
        path = rules_path(self.rules_file)
        try:
            return load_rules(path)
        except OSError as error:
            raise ConfigurationError(f"PICSART_RULES_FILE: {path} cannot be read ({error.strerror})") from None
        except RulesError as error:
            raise ConfigurationError(f"PICSART_RULES_FILE: {error}") from None


def rules_path(value: str) -> Path:
    """PICSART_RULES_FILE as a path: absolute as given, relative to the layer's root otherwise."""
    path = Path(value.strip())
    return path if path.is_absolute() else LAYER_ROOT / path


def _parse_tool_parameters(tool: Tool, raw_json: str) -> ToolParameters:
    try:
        raw: Any = json.loads(raw_json)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"PICSART_TOOL_PARAMETERS is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError('PICSART_TOOL_PARAMETERS must be a JSON object, e.g. {"upscale_factor": 4}')
    try:
        return tool.parse_parameters(raw)
    except ValidationError as error:
        problems = "; ".join(_describe(e) for e in error.errors())
        raise ConfigurationError(f"PICSART_TOOL_PARAMETERS is not valid for the {tool.name} tool: {problems}") from None


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(object)"
    given = f" (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else ""
    return f"{where}: {error['msg']}{given}"


def load_settings(environ: Mapping[str, str] | None = None) -> AdapterSettings:
    """Parse and check the whole configuration, tool parameters included; raise ConfigurationError."""
    source = dict(os.environ if environ is None else environ)
    try:
        settings = AdapterSettings.model_validate(source)
    except ValidationError as error:
        problems = "; ".join(_describe(e) for e in error.errors())
        raise ConfigurationError(f"invalid adapter configuration: {problems}") from None
    settings.tool_parameters  # noqa: B018 - parse now so a bad value fails at cold start, not per event
    if settings.rules_file.strip():
        settings.rules  # noqa: B018 - and the rules file with it
    return settings


@cache
def get_settings() -> AdapterSettings:
    """The settings of this execution environment, parsed once."""
    return load_settings()
