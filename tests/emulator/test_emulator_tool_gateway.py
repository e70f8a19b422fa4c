"""Every tool goes through the same gateway: quota, credits, the five headers, faults, 405 and the call log."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .support import FIVE_HEADERS, Api

#: (path under /tools/1.0, extra fields of a valid call, the tool name the call log records)
TOOL_CALLS: list[tuple[str, dict[str, str], str]] = [
    ("removebg", {}, "removebg"),
    ("upscale", {"upscale_factor": "2"}, "upscale"),
    ("upscale/ultra", {}, "ultra-upscale"),
    ("enhance/face", {}, "enhance-face"),
    ("edit", {"mode": "resize", "width": "32"}, "edit"),
    ("tags", {}, "tags"),
    ("adjust", {"contrast": "20"}, "adjust"),
    ("effects", {"effect_name": "icy1"}, "effects"),
]
_IDS = [name for _, _, name in TOOL_CALLS]


@pytest.mark.parametrize(("path", "fields", "tool"), TOOL_CALLS, ids=_IDS)
def test_a_tool_call_costs_a_credit_and_a_quota_unit_and_is_recorded(
    make_api: Callable[..., Api], path: str, fields: dict[str, str], tool: str
) -> None:
    api = make_api(quota=2, window_seconds=60, credits=5)

    ok = api.post(path, {"image_url": api.image_url("object.png", "?X-Amz-Expires=600&sig=SECRET"), **fields})
    invalid = api.post(path, {"image_url": "ftp://example.invalid/x.png", **fields})
    over = api.post(path, {"image_url": api.image_url(), **fields})

    assert [ok.status, invalid.status, over.status] == [200, 422, 429]
    for response in (ok, invalid, over):
        for header in FIVE_HEADERS:
            assert header in response.headers, header
    assert ok.headers["X-Picsart-Credit-Available"] == "4"
    assert api.emulator.credits == 4, "only the successful call costs a credit"
    records = api.emulator.calls()
    assert [r.tool for r in records] == [tool] * 3
    assert [r.status for r in records] == [200, 422, 429]
    assert records[0].path == f"/tools/1.0/{path}"
    assert records[0].image_url_path == "/object.png"
    assert records[0].image_url_expires == 600
    assert records[0].correlation_id == ok.headers["X-Picsart-Correlation-Id"]
    assert records[2].throttled == "quota"


@pytest.mark.parametrize(("path", "fields", "tool"), TOOL_CALLS, ids=_IDS)
def test_a_tool_call_answers_402_without_credits(
    make_api: Callable[..., Api], path: str, fields: dict[str, str], tool: str
) -> None:
    api = make_api(credits=0)

    response = api.post(path, {"image_url": api.image_url(), **fields})

    assert response.status == 402
    assert response.json()["code"] == 402
    assert api.emulator.calls()[-1].tool == tool


@pytest.mark.parametrize(("path", "fields", "tool"), TOOL_CALLS, ids=_IDS)
def test_injected_faults_hit_every_tool(
    make_api: Callable[..., Api], path: str, fields: dict[str, str], tool: str
) -> None:
    api = make_api(fault_503_rate=1.0, credits=3)

    response = api.post(path, {"image_url": api.image_url(), **fields})

    assert response.status == 503
    for header in FIVE_HEADERS:
        assert header in response.headers
    assert api.emulator.credits == 3
    assert api.emulator.calls()[-1].tool == tool


@pytest.mark.parametrize(("path", "_fields", "tool"), TOOL_CALLS, ids=_IDS)
def test_a_tool_path_answers_405_to_put(api: Api, path: str, _fields: dict[str, str], tool: str) -> None:
    response = api.http.request("PUT", f"{api.emulator.base_url}/{path}", headers=api.headers())

    assert response.status == 405
    assert response.headers["Allow"] == ("POST, GET" if path == "effects" else "POST")
    assert api.emulator.calls()[-1].tool == tool


@pytest.mark.parametrize(("path", "fields", "tool"), TOOL_CALLS, ids=_IDS)
def test_a_tool_refuses_two_inputs(api: Api, path: str, fields: dict[str, str], tool: str) -> None:
    response = api.post(path, {"image_url": api.image_url(), "image_id": "abc", **fields})

    assert response.status == 422
    assert "only one of" in response.json()["detail"]
