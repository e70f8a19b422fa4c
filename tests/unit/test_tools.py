"""Tool parameter models, checked against Picsart's OpenAPI spec itself and the troubleshooting guide.

Guide rules: "Double-check that all mandatory parameters have been provided"; 422 "for when the input
parameters don't pass validations" (e.g. "in the range of 0-100 but 102 or negative numbers are provided",
"supplying a numeric value when an endpoint expects a string"); "Avoid providing image, image_url, and image_id
simultaneously. Only one of these should be included as input."
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from picsart_adapter.tools import (
    TOOLS,
    RemoveBackgroundParameters,
    ToolParameters,
    UpscaleParameters,
    UpscaleUltraParameters,
)
from tests.picsart_spec import INPUT_FIELDS, load_spec, resolve

#: Spec properties the models leave out on purpose (RemoveBackgroundParameters' docstring): the adapter
#: sends no file bytes and no deprecated ids.
OMITTED_ON_PURPOSE: dict[str, set[str]] = {
    "removebg": {"bg_image", "bg_image_id"},
    "upscale": set(),
    # Deprecated: `image_type` replaces `product_type`; the Prefer header replaces `mode`.
    "ultra-upscale": {"product_type", "mode"},
}
#: Bounds the models add where the spec states none (values Picsart cannot mean: a 0-pixel background,
#: an empty color). Listed here so that any other drift from the spec fails.
MODEL_ONLY_BOUNDS: dict[str, dict[str, dict[str, int]]] = {
    "removebg": {
        "bg_width": {"minimum": 1},
        "bg_height": {"minimum": 1},
        "bg_color": {"minLength": 1},
        "stroke_color": {"minLength": 1},
    },
    "upscale": {},
    "ultra-upscale": {},
}
BOUND_KEYWORDS = ("minimum", "maximum", "minLength", "maxLength")

MODELS: dict[str, type[ToolParameters]] = {
    "removebg": RemoveBackgroundParameters,
    "upscale": UpscaleParameters,
    "ultra-upscale": UpscaleUltraParameters,
}
SUPPORTED = sorted(TOOLS)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


def _request_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    body = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    return resolve(spec, body)


def _model_properties(model: type[ToolParameters]) -> dict[str, dict[str, Any]]:
    """The model's JSON schema per field, with the `| None` branch taken away."""
    properties: dict[str, dict[str, Any]] = {}
    for name, prop in model.model_json_schema()["properties"].items():
        branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
        assert len(branches) == 1, f"{name}: unexpected schema {prop}"
        properties[name] = branches[0]
    return properties


def _pairs(tool: str) -> list[tuple[str, str]]:
    return [(tool, name) for name in MODELS[tool].model_fields]


FIELD_CASES = [case for tool in SUPPORTED for case in _pairs(tool)]


# --- The models against the spec -------------------------------------------------------------------------


@pytest.mark.parametrize("tool", SUPPORTED)
def test_tool_path_is_a_spec_path(spec: dict[str, Any], tool: str) -> None:
    """Guide, 404: "Incorrect endpoint paths". Each tool's path is a POST operation of the spec."""
    assert "post" in spec["paths"][TOOLS[tool].path]
    assert TOOLS[tool].parameters_model is MODELS[tool]


@pytest.mark.parametrize(("tool", "name"), FIELD_CASES)
def test_model_field_exists_in_spec_with_the_same_type(spec: dict[str, Any], tool: str, name: str) -> None:
    """Guide, 422: parameter names and types must be those of the reference documentation."""
    spec_props = _request_schema(spec, TOOLS[tool].path)["properties"]
    assert name in spec_props, f"{tool}.{name} is not a parameter of POST {TOOLS[tool].path}"
    assert _model_properties(MODELS[tool])[name]["type"] == spec_props[name]["type"]


@pytest.mark.parametrize(("tool", "name"), FIELD_CASES)
def test_model_enum_equals_spec_enum(spec: dict[str, Any], tool: str, name: str) -> None:
    """Guide, 422: a value outside the documented options is refused by Picsart, so it is refused here."""
    spec_prop = _request_schema(spec, TOOLS[tool].path)["properties"][name]
    model_prop = _model_properties(MODELS[tool])[name]
    assert model_prop.get("enum") == spec_prop.get("enum")


@pytest.mark.parametrize(("tool", "name"), FIELD_CASES)
def test_model_bounds_equal_spec_bounds(spec: dict[str, Any], tool: str, name: str) -> None:
    """Guide, 422: "the parameter value should be in the range of 0-100 but 102 or negative numbers are
    provided". minimum/maximum (and string lengths) are the spec's, plus only the listed model-only bounds."""
    spec_prop = _request_schema(spec, TOOLS[tool].path)["properties"][name]
    model_prop = _model_properties(MODELS[tool])[name]
    expected = {k: spec_prop[k] for k in BOUND_KEYWORDS if k in spec_prop}
    expected.update(MODEL_ONLY_BOUNDS[tool].get(name, {}))
    actual = {k: model_prop[k] for k in BOUND_KEYWORDS if k in model_prop}
    assert actual == expected


@pytest.mark.parametrize("tool", SUPPORTED)
def test_model_only_bounds_are_only_where_the_spec_is_silent(spec: dict[str, Any], tool: str) -> None:
    """The allowance above may only tighten what the spec leaves open, never restate or change a spec bound."""
    spec_props = _request_schema(spec, TOOLS[tool].path)["properties"]
    for name, bounds in MODEL_ONLY_BOUNDS[tool].items():
        assert not set(bounds) & set(spec_props[name]), f"{name}: the spec states this bound itself"


@pytest.mark.parametrize("tool", SUPPORTED)
def test_required_fields_equal_spec_required(spec: dict[str, Any], tool: str) -> None:
    """Guide: "Double-check that all mandatory parameters have been provided" (upscale_factor for upscale)."""
    schema = _request_schema(spec, TOOLS[tool].path)
    assert set(MODELS[tool].model_json_schema().get("required", [])) == set(schema["required"])


def test_upscale_factor_is_the_one_required_parameter(spec: dict[str, Any]) -> None:
    """Guide: mandatory parameters. `POST /upscale` requires `upscale_factor`, one of 2, 4, 6, 8
    (docs/picsart-api.md)."""
    assert _request_schema(spec, "/upscale")["required"] == ["upscale_factor"]
    assert UpscaleParameters.model_json_schema()["required"] == ["upscale_factor"]


@pytest.mark.parametrize("tool", SUPPORTED)
def test_every_spec_parameter_is_modelled_except_inputs_and_listed_omissions(spec: dict[str, Any], tool: str) -> None:
    """No tool parameter of the spec is silently missing from the model."""
    spec_names = set(_request_schema(spec, TOOLS[tool].path)["properties"])
    expected = spec_names - set(INPUT_FIELDS) - OMITTED_ON_PURPOSE[tool]
    assert set(MODELS[tool].model_fields) == expected


@pytest.mark.parametrize("tool", SUPPORTED)
def test_default_output_format_is_the_spec_default(spec: dict[str, Any], tool: str) -> None:
    """The stored result's extension follows what Picsart returns when `format` is left blank."""
    spec_format = _request_schema(spec, TOOLS[tool].path)["properties"]["format"]
    assert TOOLS[tool].default_format == spec_format["default"]


# --- One input only ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", SUPPORTED)
@pytest.mark.parametrize("input_field", INPUT_FIELDS)
def test_models_refuse_input_fields(spec: dict[str, Any], tool: str, input_field: str) -> None:
    """Guide: "Avoid providing image, image_url, and image_id simultaneously. Only one of these should be
    included as input." The adapter adds image_url itself, so the parameters may carry none."""
    assert input_field in _request_schema(spec, TOOLS[tool].path)["properties"]
    assert input_field not in MODELS[tool].model_fields
    raw: dict[str, Any] = {"upscale_factor": 2} if tool == "upscale" else {}
    raw[input_field] = "https://example.com/a.jpg"
    with pytest.raises(ValidationError) as caught:
        MODELS[tool].model_validate(raw)
    assert [e["loc"] for e in caught.value.errors()] == [(input_field,)]
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


# --- Values Picsart would answer 422 to --------------------------------------------------------------------


def _error_locs(error: ValidationError) -> list[tuple[int | str, ...]]:
    return [e["loc"] for e in error.errors()]


def test_bg_blur_102_is_refused_naming_the_field() -> None:
    """Guide, 422: "should be in the range of 0-100 but 102 ... provided"."""
    with pytest.raises(ValidationError) as caught:
        RemoveBackgroundParameters.model_validate({"bg_blur": 102})
    assert _error_locs(caught.value) == [("bg_blur",)]
    assert "bg_blur" in str(caught.value)


@pytest.mark.parametrize("name", ["bg_blur", "stroke_size", "stroke_opacity", "shadow_opacity", "shadow_blur"])
def test_percent_fields_refuse_negative_and_accept_the_range_ends(name: str) -> None:
    """Guide, 422: "... or negative numbers are provided". 0 and 100 are the range's own ends."""
    with pytest.raises(ValidationError) as caught:
        RemoveBackgroundParameters.model_validate({name: -1})
    assert _error_locs(caught.value) == [(name,)]
    assert getattr(RemoveBackgroundParameters.model_validate({name: 0}), name) == 0
    assert getattr(RemoveBackgroundParameters.model_validate({name: 100}), name) == 100


@pytest.mark.parametrize("value", [-101, 101])
def test_shadow_offsets_outside_plus_minus_100_are_refused(value: int) -> None:
    """Guide, 422: values outside the documented range (-100..100 for the offsets)."""
    with pytest.raises(ValidationError) as caught:
        RemoveBackgroundParameters.model_validate({"shadow_offset_x": value})
    assert _error_locs(caught.value) == [("shadow_offset_x",)]


@pytest.mark.parametrize(
    ("model", "raw", "field"),
    [
        (RemoveBackgroundParameters, {"bg_blur": "50"}, "bg_blur"),
        (RemoveBackgroundParameters, {"bg_blur": 50.0}, "bg_blur"),
        (RemoveBackgroundParameters, {"bg_blur": True}, "bg_blur"),
        (RemoveBackgroundParameters, {"auto_center": "true"}, "auto_center"),
        (RemoveBackgroundParameters, {"bg_color": 255}, "bg_color"),
        (UpscaleParameters, {"upscale_factor": "4"}, "upscale_factor"),
    ],
)
def test_loose_types_are_refused_strictly(model: type[ToolParameters], raw: dict[str, Any], field: str) -> None:
    """Guide, 422: "misusing parameter types", "supplying a numeric value when an endpoint expects a string".
    No coercion: "50" is not an integer, 255 is not a color."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(raw)
    assert field in {loc[0] for loc in _error_locs(caught.value)}


def test_unknown_field_is_refused() -> None:
    """Guide, 422: a parameter the reference documentation does not define (here a typo) is not sent."""
    with pytest.raises(ValidationError) as caught:
        RemoveBackgroundParameters.model_validate({"bg_blurr": 10})
    assert _error_locs(caught.value) == [("bg_blurr",)]


@pytest.mark.parametrize("factor", [0, 1, 3, 5, 16])
def test_upscale_factor_outside_the_enum_is_refused(factor: int) -> None:
    """Guide, 422: `upscale_factor` is one of 2, 4, 6, 8 (docs/picsart-api.md)."""
    with pytest.raises(ValidationError):
        UpscaleParameters.model_validate({"upscale_factor": factor})


def test_upscale_without_factor_is_refused() -> None:
    """Guide: "Double-check that all mandatory parameters have been provided"."""
    with pytest.raises(ValidationError) as caught:
        UpscaleParameters.model_validate({"format": "PNG"})
    assert _error_locs(caught.value) == [("upscale_factor",)]


@pytest.mark.parametrize("url", ["ftp://example.com/bg.jpg", "example.com/bg.jpg", "", "https://" + "a" * 2080])
def test_bg_image_url_must_be_an_http_url_of_at_most_2083_chars(url: str) -> None:
    """Guide, 422; spec: bg_image_url is a URI of 1..2083 characters."""
    with pytest.raises(ValidationError):
        RemoveBackgroundParameters.model_validate({"bg_image_url": url})


# --- Form fields -------------------------------------------------------------------------------------------


def test_form_fields_render_booleans_as_true_false_and_omit_unset_fields() -> None:
    """Spec body type multipart/form-data: booleans as `true`/`false`, not Python's `True`; fields left
    unset are not sent (Picsart's defaults apply)."""
    on = RemoveBackgroundParameters.model_validate({"auto_center": True, "bg_blur": 0, "format": "WEBP"})
    off = RemoveBackgroundParameters.model_validate({"auto_center": False})
    assert on.form_fields() == {"auto_center": "true", "bg_blur": "0", "format": "WEBP"}
    assert off.form_fields() == {"auto_center": "false"}
    assert RemoveBackgroundParameters().form_fields() == {}


def test_form_fields_of_upscale_carry_the_factor_as_text() -> None:
    assert UpscaleParameters.model_validate({"upscale_factor": 8}).form_fields() == {"upscale_factor": "8"}


# --- Rules between fields ----------------------------------------------------------------------------------


def test_bg_color_and_bg_image_url_exclude_each_other() -> None:
    """Spec (bg_color): "If this parameter is present, the other bg_ parameters must be empty" (else 422)."""
    with pytest.raises(ValidationError, match="bg_color and bg_image_url"):
        RemoveBackgroundParameters.model_validate({"bg_color": "#fff", "bg_image_url": "https://example.com/b.jpg"})
    assert RemoveBackgroundParameters.model_validate({"bg_color": "#fff"}).bg_color == "#fff"
    url = "https://example.com/b.jpg"
    assert RemoveBackgroundParameters.model_validate({"bg_image_url": url}).bg_image_url == url


@pytest.mark.parametrize(
    "offsets",
    [{}, {"shadow_offset_x": 5}, {"shadow_offset_y": -5}],
)
def test_custom_shadow_needs_both_offsets(offsets: dict[str, int]) -> None:
    """Spec (shadow_offset_x/_y): "This is mandatory to specify when shadow=custom"."""
    with pytest.raises(ValidationError, match="shadow=custom"):
        RemoveBackgroundParameters.model_validate({"shadow": "custom", **offsets})


def test_custom_shadow_with_both_offsets_and_preset_shadow_without_are_accepted() -> None:
    custom = RemoveBackgroundParameters.model_validate({"shadow": "custom", "shadow_offset_x": 0, "shadow_offset_y": 7})
    assert custom.form_fields() == {"shadow": "custom", "shadow_offset_x": "0", "shadow_offset_y": "7"}
    assert RemoveBackgroundParameters.model_validate({"shadow": "bottom"}).shadow == "bottom"


def test_output_format_is_the_chosen_format_or_the_tool_default() -> None:
    """The stored result's type follows `format`, else the spec's default (PNG for removebg, JPG for upscale)."""
    removebg, upscale = TOOLS["removebg"], TOOLS["upscale"]
    assert removebg.output_format(RemoveBackgroundParameters()) == "PNG"
    assert removebg.output_format(RemoveBackgroundParameters.model_validate({"format": "JPG"})) == "JPG"
    assert upscale.output_format(UpscaleParameters.model_validate({"upscale_factor": 2})) == "JPG"
    assert upscale.output_format(UpscaleParameters.model_validate({"upscale_factor": 2, "format": "WEBP"})) == "WEBP"
