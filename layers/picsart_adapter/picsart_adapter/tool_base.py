"""What the generated tool catalogue and models are made of: the parameter model's base and the `Tool` entry.

`tool_catalog.py` and `tool_models/` are generated from Picsart's OpenAPI spec (`make tool-models`,
docs/picsart-api.md, "The tool catalogue"); this module is hand-written and imports no model. A tool's model is
imported the first time the tool is used (`Tool.parameters_model`), so a deployment loads the models it uses and
no other.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class ToolParameters(BaseModel):
    """Base of the tool parameter models: unknown fields and loose types are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def form_fields(self) -> dict[str, str]:
        """The parameters as multipart form fields: only those set, booleans as `true`/`false`, lists as
        comma-separated values (the spec's descriptions accept "a comma separated string")."""
        fields: dict[str, str] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            fields[name] = _form_value(value)
        return fields


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_form_value(item) for item in value)
    return str(value)


def unique_items(values: list[T]) -> list[T]:
    """The spec's `uniqueItems: true`: a value given twice is refused, naming the field."""
    repeated = [value for index, value in enumerate(values) if value in values[:index]]
    if repeated:
        raise ValueError(f"items must be unique; repeated: {repeated}")
    return values


@dataclass(frozen=True)
class Tool:
    """One Picsart tool: where it lives, how it answers, and which module holds its parameter model.

    An asynchronous tool is asked to answer at once (`Prefer: respond-async`, 202 with a transaction id);
    its result is polled at `path/<transaction_id>` through the delay queue, never by a sleeping Lambda.
    `result` is "image" when the tool answers with `data.url`, "data" when it answers with data (tags, a
    description, colors, a list of previews). `formats` are its `format` parameter's values, empty when it has
    none; `default_format` is what Picsart returns when `format` is left blank."""

    name: str
    path: str
    model_module: str
    model_name: str
    default_format: str | None
    formats: tuple[str, ...] = ()
    asynchronous: bool = False
    poll_path: str | None = None
    result: Literal["image", "data"] = "image"
    method: str = "POST"
    summary: str = ""
    deprecated: bool = False

    @property
    def parameters_model(self) -> type[ToolParameters]:
        """The tool's model, imported on first use."""
        return _load_model(self.model_module, self.model_name)

    def parse_parameters(self, raw: dict[str, Any]) -> ToolParameters:
        return self.parameters_model.model_validate(raw)

    def output_format(self, parameters: ToolParameters) -> str:
        """The format of the tool's result: the one chosen, else the spec's default. A tool whose spec names no
        format (an SVG vectorizer, a mask, data) has none to tell: its answer's content type does."""
        chosen = getattr(parameters, "format", None)
        if isinstance(chosen, str):
            return chosen
        if self.default_format is None:
            raise LookupError(f"the {self.name} tool has no output format in Picsart's spec")
        return self.default_format


@cache
def _load_model(module_name: str, model_name: str) -> type[ToolParameters]:
    model = getattr(importlib.import_module(module_name), model_name)
    if not (isinstance(model, type) and issubclass(model, ToolParameters)):
        raise TypeError(f"{module_name}.{model_name} is not a tool parameter model")
    return model
