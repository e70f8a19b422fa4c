"""The admin endpoints: ``GET /_emulator/calls``, ``GET|POST /_emulator/settings``, ``POST /_emulator/reset``.

They need no key, are not counted against the quota and are not logged.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from pydantic import ValidationError
from werkzeug.wrappers import Request, Response

from .answers import plain_json

if TYPE_CHECKING:
    from .server import PicsartEmulator

ADMIN_PREFIX = "/_emulator/"
_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "/_emulator/calls": ("GET",),
    "/_emulator/settings": ("GET", "POST"),
    "/_emulator/reset": ("POST",),
}


def admin_answer(emulator: PicsartEmulator, request: Request) -> Response:
    """Answer one admin request."""
    methods = _ENDPOINTS.get(request.path)
    if methods is None:
        return plain_json(404, {"code": 404, "message": "Not Found", "detail": "unknown admin endpoint"})
    if request.method not in methods:
        response = plain_json(
            405, {"code": 405, "message": "Method Not Allowed", "detail": f"use {' or '.join(methods)}"}
        )
        response.headers["Allow"] = ", ".join(methods)
        return response
    if request.path == "/_emulator/calls":
        return plain_json(200, [dataclasses.asdict(record) for record in emulator.calls()])
    if request.path == "/_emulator/reset":
        emulator.reset()
        return plain_json(200, {"status": "reset"})
    if request.method == "GET":
        return plain_json(200, emulator.settings.model_dump())
    try:
        changes = json.loads(request.get_data(cache=False) or b"{}")
    except ValueError:
        return plain_json(400, {"code": 400, "message": "Bad Request", "detail": "the body is not valid JSON"})
    if not isinstance(changes, dict):
        return plain_json(400, {"code": 400, "message": "Bad Request", "detail": "the body must be a JSON object"})
    try:
        settings = emulator.reconfigure(**changes)
    except ValidationError as exc:
        return plain_json(
            422,
            {
                "code": 422,
                "message": "Unprocessable Entity",
                "detail": str(exc),
                "errors": json.loads(exc.json(include_url=False)),
            },
        )
    return plain_json(200, settings.model_dump())
