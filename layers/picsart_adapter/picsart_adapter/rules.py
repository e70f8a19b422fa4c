"""Rules and pipelines: which uploads go to which Picsart tools, chained, and where each output goes.

A rules file (docs/rules.md) is JSON: `{"rules": [...], "pipelines": {...}}`. A rule matches uploads (key prefix,
suffix or glob, sniffed content type, size range, S3 user metadata; first match wins) and names pipelines; a
pipeline is a list of steps, each a catalogued tool with its parameters, and makes one output, named by its
template. Everything is checked when the file is loaded: a rule names pipelines that exist, each step's tool is
in the catalogue and its parameters validate against that tool's model (only the models the file uses are
imported), templates use known placeholders, names are unique. Every error names the rule, the pipeline, the step
(1-based) and the field, and all of them are reported at once (`RulesError.problems`).

JSON, not YAML: the standard library reads it, so the layer gains no dependency (no size) and the functions no
import at cold start, for a file of a few dozen lines that people edit rarely and `picsart-local rules check`
validates before it is deployed.

With no rules file, `default_rules` turns today's `PicsartTool`/`PicsartToolParameters` into one rule that
matches every image, with one pipeline of one step whose output keys are today's (`result_key`).
"""

from __future__ import annotations

import fnmatch
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from picsart_adapter.input_checks import SNIFFED_MEDIA_TYPES
from picsart_adapter.tool_base import Tool, ToolParameters
from picsart_adapter.tool_catalog import CATALOG
from picsart_adapter.tools import FORMAT_MEDIA

#: What an output template may name; `{dir}` keeps its trailing slash and is empty at the top level.
PLACEHOLDERS: Final = frozenset({"dir", "stem", "ext", "pipeline", "rule", "version"})
#: The formats Picsart takes as input that a step can answer with: a step answering with anything else (data, an
#: SVG, a format the spec does not name) can only be a pipeline's last step.
_CHAINABLE_FORMATS: Final = frozenset({"JPG", "PNG", "WEBP"})
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_METADATA_PREFIX = "x-amz-meta-"
_SAMPLE_KEYS = ("photo.jpg", "folder/photo.jpg")
#: Source extensions that already name an output format: `a.jpg` made into a JPG keeps its key.
_SAME_FORMAT: Final = {"jpg": {".jpg", ".jpeg"}, "png": {".png"}, "webp": {".webp"}}


class RulesError(ValueError):
    """The rules file is not valid; `problems` holds one line per error, each naming where it is."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        counted = f"{len(problems)} error{'s' if len(problems) > 1 else ''}"
        super().__init__(f"{source} is not a valid rules file ({counted}):\n{listed}")


class _Spec(BaseModel):
    """Part of the file: unknown fields and loose types (a size of "100") are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SizeRange(_Spec):
    """Bytes, both bounds included."""

    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> SizeRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class MatchCriteria(_Spec):
    """Which uploads a rule takes: every criterion given must hold; none given matches every upload.

    `prefix` is case-sensitive, as S3 keys are; `suffix` and `glob` (fnmatch, `*` crosses `/`) are not, so
    `IMG.Jpg` matches `.jpg`. `content_type` is the sniffed type, any of those listed. `metadata` is S3 user
    metadata that must equal the value given, the key without `x-amz-meta-`, in any case."""

    prefix: str | None = Field(None, min_length=1)
    suffix: str | None = Field(None, min_length=1)
    glob: str | None = Field(None, min_length=1)
    content_type: list[str] | None = Field(None, min_length=1)
    size: SizeRange | None = None
    metadata: dict[str, str] | None = Field(None, min_length=1)

    @field_validator("content_type")
    @classmethod
    def _sniffed(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        known = set(SNIFFED_MEDIA_TYPES.values())
        unknown = [value for value in values if value.lower() not in known]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not a sniffed type; one of {', '.join(sorted(known))}")
        return [value.lower() for value in values]

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, values: dict[str, str] | None) -> dict[str, str] | None:
        if values is None:
            return None
        normalised: dict[str, str] = {}
        for key, value in values.items():
            name = _metadata_name(key)
            if not name:
                raise ValueError(f"{key!r} names no metadata key")
            if name in normalised:
                raise ValueError(f"the key {name!r} is given twice")
            normalised[name] = value
        return normalised

    def matches(self, key: str, content_type: str | None, size: int, metadata: Mapping[str, str]) -> bool:
        if self.prefix is not None and not key.startswith(self.prefix):
            return False
        if self.suffix is not None and not key.lower().endswith(self.suffix.lower()):
            return False
        if self.glob is not None and not fnmatch.fnmatchcase(key.lower(), self.glob.lower()):
            return False
        if self.content_type is not None and (content_type or "").lower() not in self.content_type:
            return False
        if self.size is not None and not _within(size, self.size):
            return False
        if self.metadata:
            given = {_metadata_name(name): value for name, value in metadata.items()}
            return all(given.get(name) == value for name, value in self.metadata.items())
        return True


class _StepSpec(_Spec):
    tool: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class _PipelineSpec(_Spec):
    steps: list[dict[str, Any]] = Field(min_length=1)
    output: str | None = Field(None, min_length=1)


class _InlinePipelineSpec(_PipelineSpec):
    name: str = Field(pattern=_NAME)


class _RuleSpec(_Spec):
    name: str = Field(pattern=_NAME)
    match: MatchCriteria = Field(default_factory=MatchCriteria)
    pipelines: list[str | dict[str, Any]] = Field(min_length=1)
    on_failure: Literal["fail", "copy-original"] = "fail"
    credit_floor: int | None = Field(None, ge=0)


@dataclass(frozen=True)
class Step:
    """One call: a catalogued tool and its parameters, validated against the tool's model."""

    tool: str
    parameters: ToolParameters

    @property
    def catalogued(self) -> Tool:
        return CATALOG[self.tool]


@dataclass(frozen=True)
class Pipeline:
    """Steps in order, step n+1 taking step n's result; one output, at `output` (None: the default template)."""

    name: str
    steps: tuple[Step, ...]
    output: str | None = None

    @cached_property
    def definition_hash(self) -> str:
        """See `pipeline_hash`."""
        steps = [
            {"tool": step.tool, "parameters": step.parameters.model_dump(mode="json", exclude_none=True)}
            for step in self.steps
        ]
        canonical = json.dumps(steps, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        import hashlib  # at the first event, not in the cold start

        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rule:
    name: str
    pipelines: tuple[Pipeline, ...]
    match: MatchCriteria = field(default_factory=MatchCriteria)
    on_failure: Literal["fail", "copy-original"] = "fail"
    #: The rule's work waits while the fleet's balance is at or below this (`credit_floor`); None: no floor.
    credit_floor: int | None = None


@dataclass(frozen=True)
class Rules:
    """A loaded rules file: the rules in order (first match wins) and every pipeline by name."""

    rules: tuple[Rule, ...]

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        return {pipeline.name: pipeline for rule in self.rules for pipeline in rule.pipelines}

    @property
    def credit_floors(self) -> frozenset[int]:
        """Every rule's credit floor: the balances at which the fleet's decisions change."""
        return frozenset(rule.credit_floor for rule in self.rules if rule.credit_floor is not None)


@dataclass(frozen=True)
class Match:
    """The rule an upload matched, and the pipelines it runs (one output each)."""

    rule: Rule

    @property
    def pipelines(self) -> tuple[Pipeline, ...]:
        return self.rule.pipelines


def match_upload(
    rules: Rules, key: str, content_type: str | None, size: int, metadata: Mapping[str, str] | None = None
) -> Match | None:
    """The first rule that matches the upload, or None (the upload is then skipped, with that reason)."""
    for rule in rules.rules:
        if rule.match.matches(key, content_type, size, metadata or {}):
            return Match(rule=rule)
    return None


def default_rules(tool: Tool, parameters: ToolParameters) -> Rules:
    """Today's single tool as rules: every image, one pipeline named after the tool, today's output keys."""
    pipeline = Pipeline(name=tool.name, steps=(Step(tool=tool.name, parameters=parameters),))
    return Rules(rules=(Rule(name=tool.name, pipelines=(pipeline,)),))


def pipeline_hash(pipeline: Pipeline) -> str:
    """A short hash of what the pipeline asks Picsart for: its steps' tools and parameters, as canonical JSON
    (sorted keys, unset parameters left out). Its name and output template are not part of it: renaming a
    pipeline or moving its output is no new paid work. Worked out once per pipeline (`Pipeline.definition_hash`):
    every step's idempotency key, record and parked message asks for it."""
    return pipeline.definition_hash


def output_extension(pipeline: Pipeline) -> str | None:
    """The extension of the pipeline's output: its last image step's format (`json` when every step answers
    with data), or None when that step's spec names no format and its answer's content type will tell."""
    for step in reversed(pipeline.steps):
        if step.catalogued.result == "image":
            try:
                return FORMAT_MEDIA[step.catalogued.output_format(step.parameters)][1]
            except LookupError:
                return None
    return "json"


def output_key(pipeline: Pipeline, rule: Rule, source_key: str, version_ref: str, extension: str) -> str:
    """The output's key: the pipeline's template rendered, or by default `<pipeline>/<source key>` with the
    output's extension added when the key has another (`result_key`, today's keys)."""
    if pipeline.output is None:
        return result_key(source_key, pipeline.name, extension)
    name = PurePosixPath(source_key).name
    values = {
        "dir": source_key[: len(source_key) - len(name)],
        "stem": PurePosixPath(name).stem,
        "ext": extension,
        "pipeline": pipeline.name,
        "rule": rule.name,
        "version": _version_id(version_ref),
    }
    return pipeline.output.format_map(values)


def result_key(source_key: str, pipeline_name: str, extension: str) -> str:
    """The default output key: the pipeline, then the source key, with the output format's extension added when
    the source has another (`a.jpg` -> `removebg/a.jpg.png`), so `a.jpg` and `a.png` never overwrite each
    other."""
    if PurePosixPath(source_key).suffix.lower() in _SAME_FORMAT.get(extension, set()):
        return f"{pipeline_name}/{source_key}"
    return f"{pipeline_name}/{source_key}.{extension}"


def load_rules(path: Path) -> Rules:
    """Read and check a rules file; raise RulesError naming every problem."""
    return parse_rules(path.read_text(encoding="utf-8"), source=str(path))


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    """Check the text of a rules file; `source` names it in the error."""
    try:
        raw = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as error:
        raise RulesError(source, [f"not valid JSON: {error}"]) from None
    except ValueError as error:
        raise RulesError(source, [str(error)]) from None
    return _Loader(source).load(raw)


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def load(self, raw: Any) -> Rules:
        if not isinstance(raw, dict):
            raise RulesError(self.source, ['the file must be a JSON object: {"rules": [...], "pipelines": {...}}'])
        unknown = sorted(set(raw) - {"rules", "pipelines"})
        if unknown:
            self.problems.append(f"unknown top-level fields {unknown}: a rules file has rules and pipelines")
        raw_rules, raw_pipelines = raw.get("rules"), raw.get("pipelines", {})
        if not isinstance(raw_rules, list) or not raw_rules:
            raise RulesError(self.source, [*self.problems, "rules: a non-empty list of rules is required"])
        if not isinstance(raw_pipelines, dict):
            raise RulesError(self.source, [*self.problems, "pipelines: an object of pipelines by name is required"])
        users: dict[str, list[str]] = {}
        for raw_rule in raw_rules:
            if isinstance(raw_rule, dict) and isinstance(raw_rule.get("pipelines"), list):
                for item in raw_rule["pipelines"]:
                    if isinstance(item, str):
                        users.setdefault(item, []).append(str(raw_rule.get("name")))
        specs = self._rule_specs(raw_rules)
        shared = {
            name: self._pipeline(name, body, users.get(name, []), inline=False) for name, body in raw_pipelines.items()
        }
        rules = [rule for spec in specs if (rule := self._rule(spec, shared)) is not None]
        if self.problems:
            raise RulesError(self.source, self.problems)
        return Rules(rules=tuple(rules))

    def _rule_specs(self, raw_rules: list[Any]) -> list[_RuleSpec]:
        specs: list[_RuleSpec] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_rules, start=1):
            name = raw.get("name") if isinstance(raw, dict) else None
            where = f'rule "{name}"' if isinstance(name, str) and name else f"rule {index}"
            if isinstance(name, str) and name in seen:
                self.problems.append(f"{where}: name: another rule has this name; rule names are unique")
                continue
            if isinstance(name, str):
                seen.add(name)
            try:
                spec = _RuleSpec.model_validate(raw)
            except ValidationError as error:
                self.problems.extend(f"{where}: {problem}" for problem in _problems(error))
                continue
            specs.append(spec)
        return specs

    def _rule(self, spec: _RuleSpec, shared: dict[str, Pipeline | None]) -> Rule | None:
        where = f'rule "{spec.name}"'
        pipelines: list[Pipeline] = []
        failed = False
        for position, item in enumerate(spec.pipelines, start=1):
            if isinstance(item, str):
                if item not in shared:
                    hint = _close_match(item, list(shared))
                    self.problems.append(f'{where}: pipelines: no pipeline is named "{item}"{hint}')
                    failed = True
                    continue
                found = shared[item]
            else:
                found = self._inline(spec.name, position, item, shared)
            if found is None:
                failed = True
            elif any(pipeline.name == found.name for pipeline in pipelines):
                self.problems.append(f'{where}: pipelines: "{found.name}" is named twice')
                failed = True
            else:
                pipelines.append(found)
        if failed:
            return None
        rule = Rule(
            name=spec.name,
            match=spec.match,
            pipelines=tuple(pipelines),
            on_failure=spec.on_failure,
            credit_floor=spec.credit_floor,
        )
        self._check_distinct_outputs(rule)
        return rule

    def _inline(
        self, rule: str, position: int, raw: dict[str, Any], shared: dict[str, Pipeline | None]
    ) -> Pipeline | None:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            self.problems.append(f'rule "{rule}", pipeline {position}: name: an inline pipeline needs a name')
            return None
        if name in shared:
            self.problems.append(f'rule "{rule}", pipeline "{name}": name: another pipeline has this name')
            return None
        pipeline = self._pipeline(name, raw, [rule], inline=True)
        shared[name] = pipeline
        return pipeline

    def _pipeline(self, name: str, raw: Any, rules: list[str], *, inline: bool) -> Pipeline | None:
        where = _where(rules, name)
        try:
            spec = (_InlinePipelineSpec if inline else _PipelineSpec).model_validate(raw)
        except ValidationError as error:
            self.problems.extend(f"{where}: {problem}" for problem in _problems(error))
            return None
        if not inline and not _matches_name(name):
            self.problems.append(f"{where}: name: use letters, digits, '.', '_' and '-' (at most 64)")
            return None
        steps: list[Step] = []
        for index, raw_step in enumerate(spec.steps, start=1):
            step = self._step(f"{where}, step {index}", raw_step, last=index == len(spec.steps))
            if step is not None:
                steps.append(step)
        valid_output = spec.output is None or self._check_template(where, spec.output)
        if len(steps) != len(spec.steps) or not valid_output:
            return None
        return Pipeline(name=name, steps=tuple(steps), output=spec.output)

    def _step(self, where: str, raw: Any, *, last: bool) -> Step | None:
        try:
            spec = _StepSpec.model_validate(raw)
        except ValidationError as error:
            self.problems.extend(f"{where}: {problem}" for problem in _problems(error))
            return None
        found = CATALOG.get(spec.tool)
        if found is None:
            hint = _close_match(spec.tool, list(CATALOG))
            self.problems.append(f"{where}: tool: {spec.tool!r} is not in Picsart's tool catalogue{hint}")
            return None
        where = f"{where} ({found.name})"
        try:
            parameters = found.parse_parameters(spec.parameters)
        except ValidationError as error:
            self.problems.extend(f"{where}: {problem}" for problem in _problems(error))
            return None
        if not last:
            reason = _not_chainable(found, parameters)
            if reason:
                self.problems.append(f"{where}: tool: {found.name} answers with {reason}: only the last step may")
                return None
        return Step(tool=found.name, parameters=parameters)

    def _check_template(self, where: str, template: str) -> bool:
        try:
            fields = list(string.Formatter().parse(template))
        except ValueError as error:
            self.problems.append(f"{where}: output: {error} (write a literal brace as {{{{ or }}}})")
            return False
        for _, placeholder, spec, conversion in fields:
            if placeholder is None:
                continue
            if placeholder not in PLACEHOLDERS:
                known = ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))
                unknown = f"{{{placeholder}}}"
                self.problems.append(f"{where}: output: unknown placeholder {unknown}; the placeholders are {known}")
                return False
            if spec or conversion:
                self.problems.append(f"{where}: output: {{{placeholder}}} takes no format or conversion")
                return False
        for folder in ("", "folder/"):
            rendered = template.format_map(dict.fromkeys(PLACEHOLDERS, "x") | {"dir": folder})
            if rendered.startswith("/") or "//" in rendered:
                self.problems.append(
                    f"{where}: output: a key starts with no '/' and holds no '//' ({{dir}} ends with '/')"
                )
                return False
        return True

    def _check_distinct_outputs(self, rule: Rule) -> None:
        for source_key in _SAMPLE_KEYS:
            owners: dict[str, str] = {}
            for pipeline in rule.pipelines:
                key = output_key(pipeline, rule, source_key, "version:v1", output_extension(pipeline) or "bin")
                if key in owners:
                    self.problems.append(
                        f'rule "{rule.name}": pipelines: "{owners[key]}" and "{pipeline.name}" write the same '
                        f"output key ({key} for {source_key})"
                    )
                    return
                owners[key] = pipeline.name


def _not_chainable(tool: Tool, parameters: ToolParameters) -> str | None:
    """Why the next step could not take this step's answer as its input, or None when it can."""
    if tool.result == "data":
        return "data, not an image"
    try:
        chosen = tool.output_format(parameters)
    except LookupError:
        return "an image of a format the spec does not name"
    if chosen not in _CHAINABLE_FORMATS:
        return f"a {chosen} image, which Picsart does not take as input"
    return None


def _where(rules: list[str], pipeline: str) -> str:
    if not rules:
        return f'pipeline "{pipeline}"'
    named = ", ".join(f'"{rule}"' for rule in rules)
    return f'{"rules" if len(rules) > 1 else "rule"} {named}, pipeline "{pipeline}"'


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(object)"
        given = item.get("input")
        shown = f" (got {given!r})" if "input" in item and not isinstance(given, dict | list) else ""
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}{shown}")
    return problems


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f'"{key}" is given twice in one JSON object')
        result[key] = value
    return result


def _close_match(name: str, names: list[str]) -> str:
    """The hint for a misspelt name (`; did you mean 'x'?`), or nothing. difflib is imported only for a wrong file."""
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _matches_name(name: str) -> bool:
    return re.fullmatch(_NAME, name) is not None


def _metadata_name(key: str) -> str:
    name = key.lower()
    return name.removeprefix(_METADATA_PREFIX)


def _within(size: int, bounds: SizeRange) -> bool:
    return (bounds.min is None or size >= bounds.min) and (bounds.max is None or size <= bounds.max)


def _version_id(version_ref: str) -> str:
    """`version:<id>` or `etag:<etag>` (`StoredObject.version_ref`) as it goes into a key."""
    kind, separator, value = version_ref.partition(":")
    return value.strip('"') if separator and kind in {"version", "etag"} else version_ref
