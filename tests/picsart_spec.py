"""Picsart's OpenAPI spec as the tests read it, independently of the generator (`picsart_local.toolgen`).

The project's exact copy lives in docs/picsart/ (docs/picsart-api.md says where it comes from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "picsart" / "image-tools-openapi.yml"
#: The three ways to give Picsart an image; the adapter always sends exactly one, `image_url`.
INPUT_FIELDS = ("image", "image_url", "image_id")


def load_spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A schema with `$ref` followed and `allOf` merged (properties and required)."""
    if "$ref" in node:
        ref: str = node["$ref"]
        assert ref.startswith("#/"), f"only local refs are expected, got {ref}"
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part]
        return resolve(spec, target)
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            resolved = resolve(spec, part)
            merged["properties"].update(resolved.get("properties", {}))
            merged["required"].extend(resolved.get("required", []))
        return merged
    return node
