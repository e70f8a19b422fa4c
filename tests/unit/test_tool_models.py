"""The tool catalogue and every tool's generated parameter model, checked against Picsart's OpenAPI spec itself.

The models are generated (`make tool-models`, local/picsart_local/toolgen.py); these tests read the spec on their
own, so a generator that misread it fails here, and the committed files that no longer match the spec fail the
drift test. The only allowed differences are the hand-written ones of `picsart_adapter/tool_rules.py`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from picsart_adapter import tool_rules
from picsart_adapter.tool_base import ToolParameters
from picsart_adapter.tool_catalog import CATALOG
from picsart_adapter.tools import FORMAT_MEDIA, TOOLS, tool
from picsart_local import toolgen
from tests.picsart_spec import INPUT_FIELDS, SPEC_PATH, load_spec, resolve

BOUND_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
)
NAMES = sorted(CATALOG)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


def _operation(spec: dict[str, Any], name: str) -> dict[str, Any]:
    operation: dict[str, Any] = spec["paths"][CATALOG[name].path][CATALOG[name].method.lower()]
    return operation


def _body(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" not in content:
        return {"properties": {}, "required": []}
    body = resolve(spec, content["multipart/form-data"]["schema"])
    return {"properties": body.get("properties", {}), "required": body.get("required", [])}


def _spec_params(spec: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """The tool's body properties that a model should carry: no input, no file upload, nothing deprecated."""
    properties = _body(spec, _operation(spec, name))["properties"]
    return {
        field: resolve(spec, prop)
        for field, prop in properties.items()
        if field not in INPUT_FIELDS and prop.get("format") != "binary" and not prop.get("deprecated")
    }


def _model(name: str) -> type[ToolParameters]:
    return CATALOG[name].parameters_model


def _model_properties(model: type[ToolParameters]) -> dict[str, dict[str, Any]]:
    """The model's JSON schema per field, with the `| None` branch taken away."""
    properties: dict[str, dict[str, Any]] = {}
    for field, prop in model.model_json_schema()["properties"].items():
        branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
        assert len(branches) == 1, f"{field}: unexpected schema {prop}"
        properties[field] = branches[0]
    return properties


def _field_cases() -> list[tuple[str, str]]:
    return [(name, field) for name in NAMES for field in _model(name).model_fields]


FIELD_CASES = _field_cases()


# --- The generated files are what the spec makes -------------------------------------------------------------


def test_generated_files_are_what_the_generator_makes_from_the_spec() -> None:
    """Drift: the committed catalogue and models equal the generator's output for the spec, file for file."""
    problems = toolgen.drift(toolgen.generate())
    assert not problems, "the tool models drifted from the spec; run `make tool-models`:\n" + "\n".join(problems)


def test_a_spec_change_shows_as_drift(tmp_path: Path) -> None:
    """The drift test fails when the spec changes: a new upscale factor makes upscale.py differ."""
    changed = SPEC_PATH.read_text(encoding="utf-8").replace(
        "          enum:\n            - 2\n            - 4\n            - 6\n            - 8\n",
        "          enum:\n            - 2\n            - 4\n            - 6\n            - 8\n            - 10\n",
        1,
    )
    assert changed != SPEC_PATH.read_text(encoding="utf-8")
    (tmp_path / "spec.yml").write_text(changed, encoding="utf-8")
    problems = toolgen.drift(toolgen.generate(tmp_path / "spec.yml"))
    assert problems == ["differs: layers/picsart_adapter/picsart_adapter/tool_models/upscale.py"]


@pytest.mark.parametrize("name", NAMES)
def test_each_generated_module_says_it_is_generated(name: str) -> None:
    module = toolgen.MODELS_DIR / f"{CATALOG[name].model_module.rsplit('.', 1)[1]}.py"
    assert module.read_text(encoding="utf-8").startswith(toolgen.HEADER)
    assert toolgen.CATALOG_PATH.read_text(encoding="utf-8").startswith(toolgen.HEADER)


# --- The catalogue against the spec ----------------------------------------------------------------------------


def test_every_operation_that_takes_an_image_is_catalogued_but_the_upload_utility(spec: dict[str, Any]) -> None:
    """Every operation of the Image API whose body takes `image`/`image_url`/`image_id` is a tool, except
    `POST /upload` (tagged Utilities: it stores an image for later calls by id, and ids are deprecated)."""
    taking_an_image = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if set(INPUT_FIELDS) & set(_body(spec, operation)["properties"])
    }
    catalogued = {(entry.path, entry.method) for entry in CATALOG.values()}
    assert taking_an_image - catalogued == {("/upload", "POST")}
    assert catalogued <= taking_an_image


def test_the_adapters_three_tools_keep_their_names_and_paths() -> None:
    assert {name: entry.path for name, entry in TOOLS.items()} == {
        "removebg": "/removebg",
        "upscale": "/upscale",
        "ultra-upscale": "/upscale/ultra",
    }
    assert all(TOOLS[name] is CATALOG[name] for name in TOOLS)


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_names_are_stable_kebab_case_and_lookups_find_them(name: str) -> None:
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)
    assert CATALOG[name].name == name
    assert tool(name) is CATALOG[name]


def test_an_unknown_tool_is_refused_naming_the_catalogue() -> None:
    with pytest.raises(KeyError, match="removebg"):
        tool("remove-bg")


def test_asynchronous_tools_are_those_the_spec_marks_asynchronous(spec: dict[str, Any]) -> None:
    """Asynchronous: a `Prefer` header parameter, a 202 answer, or a `GET <path>/{transaction_id}` result path
    (docs/picsart-api.md: Ultra Upscale is the one Image API tool that takes an image and answers later)."""
    expected: dict[str, str | None] = {}
    for name, entry in CATALOG.items():
        operation = _operation(spec, name)
        poll = f"{entry.path}/{{transaction_id}}"
        prefer = any(p.get("in") == "header" and p.get("name") == "Prefer" for p in operation.get("parameters", []))
        polled = poll in spec["paths"] and "get" in spec["paths"][poll]
        if prefer or "202" in operation["responses"] or polled:
            expected[name] = poll if polled else None
    assert {name: e.poll_path for name, e in CATALOG.items() if e.asynchronous} == expected
    assert expected == {"ultra-upscale": "/upscale/ultra/{transaction_id}"}
    assert all(entry.poll_path is None for entry in CATALOG.values() if not entry.asynchronous)


def test_image_tools_are_those_answering_with_data_url(spec: dict[str, Any]) -> None:
    """An image tool's 200 answer is `{"data": {"url": ...}}`; a data tool's `data` is anything else."""
    for name, entry in CATALOG.items():
        answer = resolve(spec, _operation(spec, name)["responses"]["200"])
        data = resolve(spec, answer["content"]["application/json"]["schema"])["properties"]["data"]
        is_image = data.get("type") == "object" and "url" in data.get("properties", {})
        assert entry.result == ("image" if is_image else "data"), name
    data_tools = {name for name, entry in CATALOG.items() if entry.result == "data"}
    assert data_tools == {"tags", "describe", "cars-classify", "extract-colors", "effects-previews", "masks-previews"}


@pytest.mark.parametrize("name", NAMES)
def test_output_formats_and_default_are_the_specs(spec: dict[str, Any], name: str) -> None:
    """The formats a tool can be asked for and what it returns when `format` is left blank, from its `format`
    parameter; a tool without one has neither, and `output_format` says so rather than guess."""
    entry = CATALOG[name]
    spec_format = _body(spec, _operation(spec, name))["properties"].get("format")
    if spec_format is None:
        assert (entry.formats, entry.default_format) == ((), None)
        with pytest.raises(LookupError, match=name):
            entry.output_format(_model(name).model_validate(_minimal(name)))
    else:
        assert entry.formats == tuple(spec_format["enum"])
        assert entry.default_format == spec_format["default"]
        assert set(entry.formats) <= set(FORMAT_MEDIA)


@pytest.mark.parametrize("name", NAMES)
def test_method_summary_and_deprecation_are_the_specs(spec: dict[str, Any], name: str) -> None:
    operation = _operation(spec, name)
    assert CATALOG[name].method == "POST"
    assert CATALOG[name].summary == operation["summary"]
    assert CATALOG[name].deprecated == bool(operation.get("deprecated", False))


# --- Each model against the spec ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_spec_parameter_is_modelled_except_inputs_files_and_deprecated_ones(
    spec: dict[str, Any], name: str
) -> None:
    assert set(_model(name).model_fields) == set(_spec_params(spec, name))


@pytest.mark.parametrize(("name", "field"), FIELD_CASES)
def test_model_field_type_is_the_specs(spec: dict[str, Any], name: str, field: str) -> None:
    spec_prop = _spec_params(spec, name)[field]
    model_prop = _model_properties(_model(name))[field]
    assert model_prop["type"] == spec_prop["type"]
    if spec_prop["type"] == "array":
        assert model_prop["items"]["type"] == spec_prop["items"]["type"]


@pytest.mark.parametrize(("name", "field"), FIELD_CASES)
def test_model_enum_is_the_specs(spec: dict[str, Any], name: str, field: str) -> None:
    spec_prop = _spec_params(spec, name)[field]
    model_prop = _model_properties(_model(name))[field]
    assert model_prop.get("enum") == spec_prop.get("enum")
    assert model_prop.get("items", {}).get("enum") == spec_prop.get("items", {}).get("enum")


@pytest.mark.parametrize(("name", "field"), FIELD_CASES)
def test_model_bounds_are_the_specs_plus_only_the_listed_rules(spec: dict[str, Any], name: str, field: str) -> None:
    spec_prop = _spec_params(spec, name)[field]
    model_prop = _model_properties(_model(name))[field]
    expected = {k: spec_prop[k] for k in BOUND_KEYWORDS if k in spec_prop}
    expected.update(tool_rules.BOUNDS.get(name, {}).get(field, {}))
    assert {k: model_prop[k] for k in BOUND_KEYWORDS if k in model_prop} == expected
    assert model_prop.get("uniqueItems", False) == spec_prop.get("uniqueItems", False)
    if spec_prop.get("format") == "uri":
        assert model_prop["pattern"] == "^https?://"


@pytest.mark.parametrize("name", NAMES)
def test_required_fields_are_the_specs_plus_only_the_listed_rules(spec: dict[str, Any], name: str) -> None:
    spec_required = set(_body(spec, _operation(spec, name))["required"]) & set(_spec_params(spec, name))
    expected = spec_required | set(tool_rules.REQUIRED.get(name, ()))
    assert set(_model(name).model_json_schema().get("required", [])) == expected


def test_the_rules_only_add_what_the_spec_leaves_open(spec: dict[str, Any]) -> None:
    """A hand-written rule may tighten what the spec leaves open, never restate or change the spec."""
    for name, fields in tool_rules.REQUIRED.items():
        assert not set(fields) & set(_body(spec, _operation(spec, name))["required"]), name
    for name, bounds in tool_rules.BOUNDS.items():
        for field, keywords in bounds.items():
            assert not set(keywords) & set(_spec_params(spec, name)[field]), f"{name}.{field}"
    for name, checks in tool_rules.CHECKS.items():
        assert name in CATALOG
        assert all(callable(getattr(tool_rules, check)) for check in checks)


@pytest.mark.parametrize("name", NAMES)
def test_models_are_strict_frozen_and_refuse_unknown_fields(name: str) -> None:
    model = _model(name)
    assert issubclass(model, ToolParameters)
    assert (model.model_config["extra"], model.model_config["strict"], model.model_config["frozen"]) == (
        "forbid",
        True,
        True,
    )
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**_minimal(name), "no_such_parameter": 1})
    assert [e["loc"] for e in caught.value.errors()] == [("no_such_parameter",)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("input_field", INPUT_FIELDS)
def test_models_refuse_input_fields(name: str, input_field: str) -> None:
    """Guide: one input only. The adapter adds `image_url` itself, so the parameters may carry none."""
    with pytest.raises(ValidationError) as caught:
        _model(name).model_validate({**_minimal(name), input_field: "https://example.com/a.jpg"})
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [((input_field,), "extra_forbidden")]


@pytest.mark.parametrize("name", NAMES)
def test_required_fields_alone_make_valid_parameters_and_each_is_needed(name: str) -> None:
    """Guide: "Double-check that all mandatory parameters have been provided"."""
    minimal = _minimal(name)
    assert _model(name).model_validate(minimal).form_fields().keys() == minimal.keys()
    for field in minimal:
        with pytest.raises(ValidationError) as caught:
            _model(name).model_validate({k: v for k, v in minimal.items() if k != field})
        assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [((field,), "missing")]


def _minimal(name: str) -> dict[str, Any]:
    """A value for each required field, from the model's own schema."""
    schema = _model(name).model_json_schema()
    return {field: _sample(schema["properties"][field]) for field in schema.get("required", [])}


def _sample(prop: dict[str, Any]) -> Any:
    if "enum" in prop:
        return prop["enum"][0]
    if prop["type"] == "array":
        return [_sample(prop["items"])] * max(1, prop.get("minItems", 1))
    if prop["type"] == "string":
        return "https://example.com/a.png" if "pattern" in prop else "x" * max(1, prop.get("minLength", 1))
    if prop["type"] in ("integer", "number"):
        return prop.get("minimum", 0)
    return True


# --- Values refused and sent -------------------------------------------------------------------------------------


def test_a_repeated_item_is_refused_where_the_spec_says_unique_items() -> None:
    model = tool("effects-previews").parameters_model
    with pytest.raises(ValidationError, match="unique") as caught:
        model.model_validate({"effect_names": ["apr1", "apr1"]})
    assert [e["loc"] for e in caught.value.errors()] == [("effect_names",)]


def test_at_most_ten_effects_in_previews_as_the_spec_says_in_prose() -> None:
    """Spec (effect_names): "Select up to 10 effects" (tool_rules.BOUNDS)."""
    model = tool("effects-previews").parameters_model
    names = ["apr1", "apr2", "apr3", "blur", "gblur", "lensblur", "motionblur", "smartblur", "pixelize", "brl1"]
    assert model.model_validate({"effect_names": names}).form_fields() == {"effect_names": ",".join(names)}
    with pytest.raises(ValidationError):
        model.model_validate({"effect_names": [*names, "brnz1"]})


def test_a_second_image_is_required_where_it_is_the_tools_only_source() -> None:
    """tool_rules.REQUIRED: with files and ids left out, the reference's URL is the one way to give it."""
    with pytest.raises(ValidationError) as caught:
        tool("styletransfer").parameters_model.model_validate({"level": "l2"})
    assert [e["loc"] for e in caught.value.errors()] == [("reference_image_url",)]
    with pytest.raises(ValidationError):
        tool("styletransfer").parameters_model.model_validate({"reference_image_url": "ftp://example.com/s.jpg"})


def test_floats_take_integers_but_not_text_and_are_sent_as_numbers() -> None:
    """Spec: `rotate` is a number from -180 to 180; strict, but an integer is a number."""
    model = tool("edit").parameters_model
    assert model.model_validate({"rotate": 90}).form_fields() == {"rotate": "90.0"}
    for wrong in ("90", True, 180.5):
        with pytest.raises(ValidationError):
            model.model_validate({"rotate": wrong})


# --- Loaded when used -----------------------------------------------------------------------------------------


def _modules_after(code: str) -> list[str]:
    """The tool model modules a fresh interpreter has loaded after running `code`."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(m for m in sys.modules if 'tool_models' in m)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_catalogue_the_tools_and_the_config_imports_no_model() -> None:
    """Cold start: a handler's import does not grow with the number of tools."""
    assert _modules_after("import picsart_adapter.tool_catalog, picsart_adapter.tools, picsart_adapter.config") == []


def test_using_a_tool_imports_its_model_and_no_other() -> None:
    code = "from picsart_adapter.tools import tool\ntool('zoom').parse_parameters({'scale_factor': 50})"
    assert _modules_after(code) == ["picsart_adapter.tool_models", "picsart_adapter.tool_models.zoom"]


def test_the_named_models_of_tools_load_one_at_a_time() -> None:
    """`from picsart_adapter.tools import UpscaleParameters` (the name callers have always used) loads that one."""
    code = "from picsart_adapter.tools import UpscaleParameters"
    assert _modules_after(code) == ["picsart_adapter.tool_models", "picsart_adapter.tool_models.upscale"]
