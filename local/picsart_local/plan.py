"""`picsart-local plan`: what the adapter would do with one upload under a rules file, without doing it.

A dry run for people writing rules: the rule an upload matches, each pipeline's steps (the tool, its endpoint
and the form fields sent with the presigned `image_url`), where each output goes, and how many Picsart calls the
upload costs. `build_plan` is pure: it reads no object, calls neither AWS nor Picsart, and takes the upload's
content type, size and metadata as given, since no object is read to sniff them.

Calls are counted as the functions pay them: one per step. An asynchronous step also polls for its result, as
many times as Picsart takes; the plan says "+ polls" rather than guess a number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

from picsart_adapter.input_checks import SNIFFED_MEDIA_TYPES, check_object
from picsart_adapter.rules import Pipeline, Rule, Rules, match_upload, output_extension, output_key, pipeline_hash

#: What a plan assumes when no --size is given: a typical photo, far from every size bound but the odd rule's.
DEFAULT_SIZE: Final = 1024 * 1024
#: The version a plan shows in `{version}` when none is given: visibly a stand-in, not a real version id.
DEFAULT_VERSION_REF: Final = "version:VERSION"
#: The extension shown when the last image step's spec names no format: Picsart's answer decides it.
FROM_THE_ANSWER: Final = "<from the answer>"
#: Where the repository's example rules are: the layer's folder, or the top-level folder they are moving from.
EXAMPLE_RULES: Final = Path("layers/picsart_adapter/rules/example.json")
NO_RULE_MATCHES: Final = "no rule matches"

#: Extensions named differently from their sniffed format; every other one is the format's name in lower case.
_EXTENSION_FORMATS: Final = {".jpg": "JPEG", ".mpo": "JPEG", ".tif": "TIFF"}
#: The first bytes of a JPEG, standing in for an object of a sniffed type: no object is read, so `check_object`
#: judges the size and the content type as given, not bytes.
_ANY_IMAGE_HEAD: Final = b"\xff\xd8\xff"


@dataclass(frozen=True)
class PlannedStep:
    """One paid call: the tool, its endpoint and the form fields sent beside `image_url` (as strings, as sent)."""

    tool: str
    endpoint: str
    parameters: dict[str, str]
    image_url: str
    result: Literal["image", "data"]
    output_format: str | None
    asynchronous: bool


@dataclass(frozen=True)
class PlannedPipeline:
    name: str
    hash: str
    steps: tuple[PlannedStep, ...]
    output_key: str
    output: str
    calls: int
    polls: bool

    @property
    def calls_text(self) -> str:
        return calls_text(self.calls, self.polls)


@dataclass(frozen=True)
class Plan:
    """What the adapter would do with one upload: `rule` is None when it would skip it, for `skipped`."""

    key: str
    size: int
    content_type: str | None
    #: Whether the content type is the key's extension's guess rather than one given.
    content_type_guessed: bool
    metadata: dict[str, str]
    version_ref: str
    rule: str | None
    on_failure: str | None
    pipelines: tuple[PlannedPipeline, ...]
    skipped: str | None
    calls: int
    polls: bool

    @property
    def calls_text(self) -> str:
        return calls_text(self.calls, self.polls)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["calls_text"] = self.calls_text
        for pipeline, planned in zip(document["pipelines"], self.pipelines, strict=True):
            pipeline["calls_text"] = planned.calls_text
        return document


def calls_text(calls: int, polls: bool) -> str:
    """The Picsart calls as people read them: "1 call", "2 calls", "1 call + polls"."""
    counted = f"{calls} call{'' if calls == 1 else 's'}"
    return f"{counted} + polls" if polls else counted


def guess_content_type(key: str) -> str | None:
    """The media type the key's extension announces among the sniffed ones, or None (not a sniffed image)."""
    suffix = PurePosixPath(key).suffix.lower()
    return SNIFFED_MEDIA_TYPES.get(_EXTENSION_FORMATS.get(suffix, suffix.removeprefix(".").upper()))


def parse_metadata(items: Sequence[str]) -> dict[str, str]:
    """`k=v` pairs as S3 user metadata; the value may hold `=`, the key may not be empty."""
    metadata: dict[str, str] = {}
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise ValueError(f"--metadata takes KEY=VALUE, got {item!r}")
        metadata[name] = value
    return metadata


def default_rules_path(root: Path) -> Path:
    """The repository's example rules."""
    return root / EXAMPLE_RULES


def build_plan(
    rules: Rules,
    key: str,
    *,
    size: int = DEFAULT_SIZE,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
    version_ref: str = DEFAULT_VERSION_REF,
) -> Plan:
    """The plan for one upload. With no content type given, the key's extension tells it (see
    `guess_content_type`). An upload the input checks refuse (a size or a content type Picsart does not
    take) is skipped with their reason before any rule is asked, as the functions do."""
    chosen_type = content_type.lower() if content_type else guess_content_type(key)
    given = dict(metadata or {})
    sniffed = chosen_type in SNIFFED_MEDIA_TYPES.values()
    rejection = check_object(size, _ANY_IMAGE_HEAD if sniffed else b"")
    found = None if rejection else match_upload(rules, key, chosen_type, size, given)
    if found is None:
        return Plan(
            key=key,
            size=size,
            content_type=chosen_type,
            content_type_guessed=not content_type,
            metadata=given,
            version_ref=version_ref,
            rule=None,
            on_failure=None,
            pipelines=(),
            skipped=rejection.reason if rejection else NO_RULE_MATCHES,
            calls=0,
            polls=False,
        )
    pipelines = tuple(_plan_pipeline(pipeline, found.rule, key, version_ref) for pipeline in found.pipelines)
    return Plan(
        key=key,
        size=size,
        content_type=chosen_type,
        content_type_guessed=not content_type,
        metadata=given,
        version_ref=version_ref,
        rule=found.rule.name,
        on_failure=found.rule.on_failure,
        pipelines=pipelines,
        skipped=None,
        calls=sum(pipeline.calls for pipeline in pipelines),
        polls=any(pipeline.polls for pipeline in pipelines),
    )


def _plan_pipeline(pipeline: Pipeline, rule: Rule, key: str, version_ref: str) -> PlannedPipeline:
    steps: list[PlannedStep] = []
    for index, step in enumerate(pipeline.steps):
        tool = step.catalogued
        try:
            chosen_format: str | None = tool.output_format(step.parameters) if tool.result == "image" else None
        except LookupError:
            chosen_format = None
        steps.append(
            PlannedStep(
                tool=step.tool,
                endpoint=f"{tool.method} {tool.path}",
                parameters=step.parameters.form_fields(),
                image_url="the upload, presigned" if index == 0 else f"step {index}'s result",
                result=tool.result,
                output_format=chosen_format,
                asynchronous=tool.asynchronous,
            )
        )
    extension = output_extension(pipeline)
    target = output_key(pipeline, rule, key, version_ref, extension or FROM_THE_ANSWER)
    return PlannedPipeline(
        name=pipeline.name,
        hash=pipeline_hash(pipeline),
        steps=tuple(steps),
        output_key=target,
        output=_output_text(steps),
        calls=len(steps),
        polls=any(step.asynchronous for step in steps),
    )


def _output_text(steps: Sequence[PlannedStep]) -> str:
    """What lands at the output key, and where a data step's answer goes (docs/rules.md, "A pipeline")."""
    last = steps[-1]
    if last.result == "image":
        return f"the {last.tool} image ({last.output_format or 'its format from the answer'})"
    images = [step for step in steps if step.result == "image"]
    if not images:
        return f"the {last.tool} answer as JSON"
    image = images[-1]
    shown = image.output_format or "its format from the answer"
    return f"the {image.tool} image ({shown}), with the {last.tool} answer beside it as a JSON sidecar"


def render_plan(plan: Plan, source: str | None = None) -> str:
    """The plan as people read it: the upload, the rule, each pipeline's steps and output, the calls."""
    metadata = ", ".join(f"{name}={value}" for name, value in plan.metadata.items()) or "none"
    guessed = " (from the extension)" if plan.content_type_guessed and plan.content_type else ""
    lines = [
        f"upload: {plan.key}",
        f"  size {plan.size} bytes, content type {plan.content_type or 'unknown'}{guessed}, metadata {metadata}, "
        f"version {plan.version_ref}",
    ]
    if source:
        lines.append(f"rules: {source}")
    if plan.skipped is not None:
        lines += [f"skipped: {plan.skipped}", f"Picsart calls: {plan.calls_text}"]
        return "\n".join(lines) + "\n"
    lines.append(f"rule: {plan.rule} (on failure: {plan.on_failure})")
    for pipeline in plan.pipelines:
        lines.append(f"pipeline {pipeline.name} (hash {pipeline.hash}): {pipeline.calls_text}")
        for number, step in enumerate(pipeline.steps, start=1):
            fields = json.dumps(step.parameters, sort_keys=True)
            waits = ", asynchronous: its result is polled" if step.asynchronous else ""
            lines.append(f"  {number}. {step.tool}: {step.endpoint} {fields}, image_url = {step.image_url}{waits}")
        lines.append(f"  output: {pipeline.output_key}")
        lines.append(f"    {pipeline.output}")
    lines.append(f"Picsart calls per upload: {plan.calls_text} (a dry run: nothing was called)")
    return "\n".join(lines) + "\n"
