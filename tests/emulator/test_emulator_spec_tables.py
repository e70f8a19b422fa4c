"""The emulator's own copy of the spec's tables matches Picsart's spec, tool by tool.

The emulator keeps its tables rather than importing the adapter's generated models (it is an independent
oracle); this checks that copy against the spec itself: the same parameters, kinds, enums (in order), ranges,
nullability and required fields, at the same paths and methods.
"""

from __future__ import annotations

from typing import Any

import pytest

from picsart_local.emulator.tools import FREE_CALLS, TOOLS
from picsart_local.emulator.validation import IMAGE_PARAMS, Param
from tests.picsart_spec import load_spec, resolve

SPEC = load_spec()
# Free-text strings the emulator reads as colours.
COLOUR_FIELDS = {"bg_color", "stroke_color"}


def _expected(name: str, schema: dict[str, Any], required: bool) -> Param:
    """The `Param` that a property of the spec's body schema calls for."""
    kind: str
    choices: tuple[str | int, ...] = tuple(schema.get("enum", ()))
    if choices:
        kind = "enum"
    elif schema.get("format") == "binary":
        kind = "file"
    elif schema.get("format") == "uri":
        kind = "url"
    elif schema["type"] == "string":
        kind = "colour" if name in COLOUR_FIELDS else "str"
    else:
        kind = {"integer": "int", "number": "float", "boolean": "bool"}[schema["type"]]
    return Param(
        kind,  # type: ignore[arg-type]
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
        choices=choices,
        nullable=bool(schema.get("nullable", False)),
        required=required,
    )


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_a_tools_table_is_the_spec_body_schema(name: str) -> None:
    tool = TOOLS[name]
    operation = SPEC["paths"][tool.path]["post"]
    schema = resolve(SPEC, operation["requestBody"]["content"]["multipart/form-data"]["schema"])
    emulated = {**IMAGE_PARAMS, **tool.params}

    assert set(emulated) == set(schema["properties"])
    for field, prop in schema["properties"].items():
        expected = _expected(field, prop, field in schema["required"])
        assert emulated[field] == expected, field


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_a_tools_default_format_is_the_spec_default(name: str) -> None:
    tool = TOOLS[name]
    operation = SPEC["paths"][tool.path]["post"]
    schema = resolve(SPEC, operation["requestBody"]["content"]["multipart/form-data"]["schema"])

    if "format" in schema["properties"]:
        assert tool.default_format == schema["properties"]["format"].get("default", "JPG")
    else:
        assert tool.result == "data"


def test_asynchronous_tools_are_polled_where_the_spec_says() -> None:
    for tool in TOOLS.values():
        assert (f"{tool.path}/{{transaction_id}}" in SPEC["paths"]) == tool.asynchronous, tool.name
        responses = SPEC["paths"][tool.path]["post"]["responses"]
        assert ("202" in responses) == tool.asynchronous, tool.name


def test_free_calls_are_gets_of_the_spec() -> None:
    for call in FREE_CALLS.values():
        assert "get" in SPEC["paths"][call.path]
        assert "requestBody" not in SPEC["paths"][call.path]["get"]


def test_data_tools_answer_a_data_object() -> None:
    for tool in TOOLS.values():
        ok = SPEC["paths"][tool.path]["post"]["responses"]["200"]["$ref"]
        assert (ok == "#/components/responses/200") == (tool.result == "image"), tool.name
