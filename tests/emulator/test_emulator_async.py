"""Ultra Upscale: synchronous, or asynchronous with `Prefer: respond-async` (202 + transaction_id) and a
polled result (spec paths /upscale/ultra and /upscale/ultra/{transaction_id}; docs/picsart-api.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import urllib3

from .support import FIVE_HEADERS, Api


def submit(api: Api, **fields: object) -> dict[str, object]:
    headers = {**api.headers(), "Prefer": "respond-async"}
    response = api.post("upscale/ultra", {"image_url": api.image_url(), **fields}, headers=headers)
    assert response.status == 202, response.data
    for header in FIVE_HEADERS:
        assert header in response.headers
    body = response.json()
    assert body["status"] in {"queued", "processing"}
    assert isinstance(body["transaction_id"], str)
    return dict(body)


def poll(api: Api, transaction_id: str) -> urllib3.BaseHTTPResponse:
    return api.http.request("GET", f"{api.emulator.base_url}/upscale/ultra/{transaction_id}", headers=api.headers())


def test_ultra_upscale_answers_synchronously_without_prefer(api: Api) -> None:
    response = api.post("upscale/ultra", {"image_url": api.image_url(), "upscale_factor": "3"})
    assert response.status == 200, response.data
    assert api.fetch_result(response).size == (480, 360)


def test_asynchronous_job_is_polled_until_its_result_is_ready(make_api: Callable[..., Api]) -> None:
    api = make_api(async_processing_seconds=0.3, credits=10)
    transaction_id = str(submit(api, upscale_factor="2")["transaction_id"])
    early = poll(api, transaction_id)
    assert early.status == 202
    assert early.json() == {"status": "processing", "transaction_id": transaction_id}
    time.sleep(0.4)
    done = poll(api, transaction_id)
    assert done.status == 200
    assert done.json()["status"] == "success"
    assert api.fetch_result(done).size == (320, 240)
    assert api.emulator.credits == 9, "the job costs one credit; polls cost none"


def test_polls_count_against_the_quota(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=3, window_seconds=60, async_processing_seconds=60)
    transaction_id = str(submit(api)["transaction_id"])
    assert [poll(api, transaction_id).status for _ in range(3)] == [202, 202, 429]


@pytest.mark.parametrize("transaction_id", ["0" * 32, "not-a-transaction"])
def test_an_unknown_transaction_is_a_404(api: Api, transaction_id: str) -> None:
    assert poll(api, transaction_id).status == 404


@pytest.mark.parametrize(("field", "value"), [("upscale_factor", "17"), ("image_type", "cartoon")])
def test_ultra_upscale_parameters_are_checked(api: Api, field: str, value: str) -> None:
    response = api.post("upscale/ultra", {"image_url": api.image_url(), field: value})
    assert response.status == 422
    assert field in response.json()["detail"]
