"""A schema-driven fuzzer: schemathesis generates requests from Picsart's spec for every operation the emulator
implements, and every answer must be one the spec documents.

What it does:

- It starts an emulator (127.0.0.1, a free port, generous quota, spike arrest and credits so that no limit
  answers) and a small file server of input images, and stops both at the end.
- For each operation the emulator implements (each tool's POST, the poll of each asynchronous tool, and the
  free GETs: /balance and /effects; derived from the emulator's registry and each checked to be in the spec),
  schemathesis draws schema-valid requests (positive data) from the spec, derandomised so that a run repeats,
  at most `MAX_EXAMPLES` per operation.
- Inputs are made to resolve before the request is sent, keeping which fields were generated: a generated
  ``image_url`` or ``bg_image_url`` becomes the URL of one of the served images, an ``image``/``bg_image`` file
  part becomes that image's bytes, an ``image_id``/``bg_image_id`` the id of a result the emulator answered
  earlier, and a poll's ``transaction_id`` that of a job submitted earlier (finished or still running).
  Everything else is sent as drawn, including properties the spec does not name (its body schemas allow
  them; the emulator ignores them) and nulls (sent as "null", which the emulator reads as absent).
- Every answer must pass schemathesis' checks: no 5xx (``not_a_server_error``), a status code the operation
  documents (``status_code_conformance``), a content type it documents (``content_type_conformance``), a body
  matching the documented schema (``response_schema_conformance``) and documented headers of the documented
  types (``response_headers_conformance``).
- A schema-valid request may be refused (4xx) only for a reason in `ALLOWED_REFUSALS`, each a rule that the
  guide or the spec's own descriptions state, and only with a 422 whose detail names the field. Any other
  refusal fails the test, and each operation must have answered at least one request with a 2xx, so that a
  fuzzer that only ever got refusals cannot pass.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import urllib3
from hypothesis import HealthCheck, Phase, given, settings
from PIL import Image, ImageColor
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from picsart_local.emulator import EmulatorSettings, PicsartEmulator
from picsart_local.emulator.tools import FREE_CALLS, TOOLS
from tests.picsart_spec import SPEC_PATH

from .support import API_KEY, ImageServer

MAX_EXAMPLES = 120
SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: (method, path in the spec) of every operation the emulator implements.
OPERATIONS: list[tuple[str, str]] = [
    *(("POST", tool.path) for tool in TOOLS.values()),
    *(("GET", f"{tool.path}/{{transaction_id}}") for tool in TOOLS.values() if tool.asynchronous),
    *(("GET", call.path) for call in FREE_CALLS.values()),
]
#: The served inputs: small, so that an upscale by 16 stays cheap; with and without alpha, in three formats.
IMAGES = ("photo.png", "photo.jpg", "photo.webp", "cutout.png")
INPUT_GROUPS = (("image", "image_url", "image_id"), ("bg_image", "bg_image_url", "bg_image_id"))


def _given(body: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """The fields of ``names`` that the request carries (None is sent as "null", which is absent)."""
    return [name for name in names if body.get(name) not in (None, "", "null")]


def _two_inputs(body: dict[str, Any]) -> list[str]:
    given = _given(body, INPUT_GROUPS[0])
    return given if len(given) > 1 else []


def _no_input(body: dict[str, Any]) -> list[str]:
    return [] if _given(body, INPUT_GROUPS[0]) else ["image_url"]


def _two_backgrounds(body: dict[str, Any]) -> list[str]:
    given = _given(body, INPUT_GROUPS[1])
    return given if len(given) > 1 else []


def _colour_and_background(body: dict[str, Any]) -> list[str]:
    return ["bg_color"] if _given(body, ("bg_color",)) and _given(body, INPUT_GROUPS[1]) else []


def _custom_shadow_without_offsets(body: dict[str, Any]) -> list[str]:
    if body.get("shadow") != "custom":
        return []
    return [name for name in ("shadow_offset_x", "shadow_offset_y") if body.get(name) is None]


def _is_colour(text: str) -> bool:
    hex_digits = text.removeprefix("#")
    if len(hex_digits) in (3, 4, 6, 8) and all(c in "0123456789abcdefABCDEF" for c in hex_digits):
        return True
    try:
        ImageColor.getrgb(text)
    except ValueError:
        return False
    return True


def _not_a_colour(body: dict[str, Any]) -> list[str]:
    return [name for name in _given(body, ("bg_color", "stroke_color")) if not _is_colour(str(body[name]))]


@dataclass(frozen=True)
class Refusal:
    """A refusal of a schema-valid request that the contract demands: the rule and where it is stated."""

    reason: str
    source: str
    #: The fields the 422's detail may name when the rule applies to a body; empty when it does not apply.
    applies: Callable[[dict[str, Any]], list[str]]


ALLOWED_REFUSALS: tuple[Refusal, ...] = (
    Refusal(
        "more than one of image, image_url, image_id",
        'guide: "Avoid providing image, image_url, and image_id simultaneously. Only one of these should be '
        'included as input."',
        _two_inputs,
    ),
    Refusal(
        "none of image, image_url, image_id (the spec marks none of them required: the rule is the guide's)",
        'guide: "Only one of these should be included as input"; there is no image to work on',
        _no_input,
    ),
    Refusal(
        "more than one of bg_image, bg_image_url, bg_image_id (removebg)",
        'spec, each of them: "If this parameter is present, the other image source parameters must be empty."',
        _two_backgrounds,
    ),
    Refusal(
        "bg_color together with a background image (removebg)",
        'spec, bg_color: "If this parameter is present, the other bg_ parameters must be empty"',
        _colour_and_background,
    ),
    Refusal(
        "bg_color or stroke_color that is neither a hex code nor a colour name (removebg)",
        'spec, both: "Can be a hexcolor code (e.g., #82d5fa, #fff) or a color name (e.g., blue)"; free text '
        "in the schema (a plain string)",
        _not_a_colour,
    ),
    Refusal(
        "shadow=custom without shadow_offset_x and shadow_offset_y (removebg)",
        'spec, shadow_offset_x and _y: "This is mandatory to specify when shadow=custom."',
        _custom_shadow_without_offsets,
    ),
)


@dataclass
class Target:
    """The running emulator and what generated inputs are rewritten to."""

    emulator: PicsartEmulator
    images_url: str
    image_bytes: dict[str, bytes]
    result_id: str
    transaction_ids: tuple[str, str]


def _write_images(directory: Path) -> dict[str, bytes]:
    photo = Image.new("RGB", (40, 30), (236, 238, 240))
    photo.paste((200, 30, 40), (12, 8, 28, 22))
    cutout = Image.new("RGBA", (30, 40), (0, 0, 0, 0))
    cutout.paste((30, 160, 60, 255), (5, 5, 25, 35))
    files = {"photo.png": (photo, "PNG"), "photo.jpg": (photo, "JPEG"), "photo.webp": (photo, "WEBP")}
    files["cutout.png"] = (cutout, "PNG")
    written: dict[str, bytes] = {}
    for name, (image, fmt) in files.items():
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        written[name] = buffer.getvalue()
        (directory / name).write_bytes(written[name])
    return written


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The emulator, the image server, an earlier result and two jobs (one finished, one running)."""
    directory = tmp_path_factory.mktemp("fuzz-images")
    image_bytes = _write_images(directory)
    server = ImageServer(directory)
    emulator = PicsartEmulator(
        EmulatorSettings(api_key=API_KEY, quota=100_000, spike_per_second=100_000, async_processing_seconds=0)
    )
    emulator.start(host="127.0.0.1", port=0)
    try:
        http = urllib3.PoolManager(retries=False)
        headers = {"X-Picsart-API-Key": API_KEY, "Accept": "application/json"}
        fields = {"image_url": f"{server.url}/photo.png"}

        def submit() -> str:
            response = http.request(
                "POST",
                f"{emulator.base_url}/upscale/ultra",
                fields=fields,
                headers={**headers, "Prefer": "respond-async"},
            )
            assert response.status == 202, response.data
            return str(response.json()["transaction_id"])

        finished = submit()
        emulator.reconfigure(async_processing_seconds=3600)
        running = submit()
        result = http.request("POST", f"{emulator.base_url}/removebg", fields=fields, headers=headers)
        assert result.status == 200, result.data
        yield Target(
            emulator=emulator,
            images_url=server.url,
            image_bytes=image_bytes,
            result_id=str(result.json()["data"]["id"]),
            transaction_ids=(finished, running),
        )
    finally:
        emulator.stop()
        server.stop()


def _pick(value: object, choices: tuple[str, ...]) -> str:
    """One of ``choices``, chosen by the generated value, so that different draws use different inputs."""
    return choices[hashlib.sha256(repr(value).encode()).digest()[0] % len(choices)]


def _resolve_inputs(case: schemathesis.Case, target: Target) -> None:
    """Point generated inputs at things that exist (module docstring), leaving which fields were given as drawn."""
    body = case.body
    if isinstance(body, dict):
        for prefix in ("image", "bg_image"):
            if body.get(prefix) is not None:
                body[prefix] = target.image_bytes[_pick(body[prefix], IMAGES)]
            if body.get(f"{prefix}_url") is not None:
                body[f"{prefix}_url"] = f"{target.images_url}/{_pick(body[f'{prefix}_url'], IMAGES)}"
            if body.get(f"{prefix}_id") is not None:
                body[f"{prefix}_id"] = target.result_id
    if case.path_parameters and "transaction_id" in case.path_parameters:
        generated = case.path_parameters["transaction_id"]
        case.path_parameters["transaction_id"] = _pick(generated, target.transaction_ids)


def _file_part(name: str, part: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """A file field as a file part, with a filename.

    schemathesis sends a property as a file only when ``format: binary`` sits at the top of its schema; a
    nullable one (removebg's ``bg_image``) it sends as a part without a filename, which multipart parsers
    read as a text field.
    """
    filename, value = part[0], part[1]
    if name in ("image", "bg_image") and filename is None and isinstance(value, bytes):
        return name, (f"{name}.img", value, *part[2:])
    return name, part


def _refusals(body: dict[str, Any]) -> tuple[list[Refusal], set[str]]:
    """The allowed refusals that apply to a body, and every field their 422 may name."""
    applying = [(refusal, refusal.applies(body)) for refusal in ALLOWED_REFUSALS]
    return [refusal for refusal, fields in applying if fields], {field for _, fields in applying for field in fields}


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_to_a_schema_valid_request_is_documented(target: Target, method: str, path: str) -> None:
    operation = SCHEMA[path][method]
    headers = {"X-Picsart-API-Key": API_KEY, "Accept": "application/json"}
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        _resolve_inputs(case, target)
        kwargs = case.as_transport_kwargs(base_url=target.emulator.base_url, headers=headers)
        if kwargs.get("files"):
            kwargs["files"] = [_file_part(name, part) for name, part in kwargs["files"]]
        response = requests.request(**kwargs, timeout=30)
        case.validate_response(response, checks=CHECKS)
        body = case.body if isinstance(case.body, dict) else {}
        if response.status_code < 400:
            outcomes["2xx"] += 1
            return
        refusals, fields = _refusals(body)
        detail = str(response.json().get("detail", ""))
        assert refusals, f"refused a schema-valid request: {response.status_code} {detail}"
        assert response.status_code == 422, (response.status_code, detail)
        assert detail.split(":", 1)[0] in fields, (detail, fields)
        # Counted under the rule the emulator reported, the first it checks.
        reported = next(r for r in refusals if detail.split(":", 1)[0] in r.applies(body))
        outcomes[f"refused: {reported.reason}"] += 1

    run()

    print(f"{method} {path}: {sum(outcomes.values())} cases, {dict(outcomes)}")
    assert outcomes["2xx"] >= 1, f"no request to {method} {path} succeeded: {dict(outcomes)}"


def test_the_fuzzed_operations_are_in_the_spec() -> None:
    spec_operations = {(method.upper(), path) for path, item in SCHEMA.raw_schema["paths"].items() for method in item}

    assert set(OPERATIONS) <= spec_operations
    assert len(OPERATIONS) == len(set(OPERATIONS))
