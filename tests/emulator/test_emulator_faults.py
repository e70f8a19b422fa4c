"""Injected faults: 500, 503, bare 429, dropped connections, slow answers, seeded draws."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import urllib3

from .support import FIVE_HEADERS, RATE_HEADERS, Api


@pytest.mark.parametrize(
    ("setting", "status", "message"),
    [("fault_500_rate", 500, "Internal Server Error"), ("fault_503_rate", 503, "Service Unavailable")],
)
def test_server_error_faults_keep_the_headers(
    make_api: Callable[..., Api], setting: str, status: int, message: str
) -> None:
    api = make_api(**{setting: 1.0}, credits=3)

    response = api.removebg()

    assert response.status == status
    body = response.json()
    assert (body["code"], body["message"]) == (status, message)
    for header in FIVE_HEADERS:
        assert header in response.headers
    assert response.headers["X-Picsart-Credit-Available"] == "3"  # nothing charged
    assert api.emulator.calls()[-1].status == status


def test_bare_429_has_no_rate_limit_headers(make_api: Callable[..., Api]) -> None:
    api = make_api(bare_429_rate=1.0)

    response = api.removebg()

    assert response.status == 429
    assert "X-Picsart-Correlation-Id" in response.headers
    for header in RATE_HEADERS:
        assert header not in response.headers, header
    assert "fault" in response.json()
    assert api.emulator.calls()[-1].ratelimit_available is None


def test_dropped_connection_gives_the_client_a_protocol_error(make_api: Callable[..., Api]) -> None:
    api = make_api(drop_connection_rate=1.0)

    with pytest.raises(urllib3.exceptions.ProtocolError):
        api.removebg()

    record = api.emulator.calls()[-1]
    assert (record.status, record.tool, record.image_url_path) == (0, "removebg", "/object.png")
    # The server survives and answers once the fault is switched off.
    api.emulator.reconfigure(drop_connection_rate=0.0)
    assert api.balance().status == 200


def test_slow_answer_delays_then_answers(make_api: Callable[..., Api]) -> None:
    api = make_api(slow_answer_rate=1.0, slow_answer_seconds=0.4)

    started = time.perf_counter()
    response = api.balance()

    assert response.status == 200
    assert time.perf_counter() - started >= 0.4
    assert api.emulator.calls()[-1].duration_ms >= 400


def test_client_timeout_on_a_slow_answer(make_api: Callable[..., Api]) -> None:
    api = make_api(slow_answer_rate=1.0, slow_answer_seconds=5.0)

    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        api.http.request(
            "GET", api.emulator.base_url + "/balance", headers=api.headers(), timeout=urllib3.Timeout(read=0.3)
        )
    # stop() (fixture teardown) wakes the sleeping request instead of waiting 5 s.


def test_seeded_faults_repeat_after_reset(make_api: Callable[..., Api]) -> None:
    api = make_api(fault_500_rate=0.5, seed=1234)

    first = [api.balance().status for _ in range(16)]
    api.emulator.reset()
    second = [api.balance().status for _ in range(16)]

    assert first == second
    assert set(first) == {200, 500}


def test_zero_rates_never_fault(api: Api) -> None:
    assert {api.balance().status for _ in range(20)} == {200}


def test_a_result_fault_fails_the_download_and_the_result_stays(make_api: Callable[..., Api]) -> None:
    api = make_api(result_fault_rate=1.0)
    answer = api.removebg()
    assert answer.status == 200
    url = answer.json()["data"]["url"]

    assert api.http.request("GET", url).status == 503
    api.emulator.reconfigure(result_fault_rate=0.0)
    assert api.fetch_result(answer).size[0] > 0


def test_a_result_fault_spares_the_result_read_as_the_next_calls_input(make_api: Callable[..., Api]) -> None:
    """Picsart reads its own result given as `image_url`; only a client's download can fail."""
    api = make_api(result_fault_rate=1.0)
    first = api.removebg()
    second = api.post("upscale", {"image_url": first.json()["data"]["url"], "upscale_factor": "2"})
    assert second.status == 200, second.data
