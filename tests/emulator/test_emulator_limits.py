"""Quota window, spike arrest, credits and the five X-Picsart headers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3

from .support import FIVE_HEADERS, RATE_HEADERS, Api


def _available(response: urllib3.BaseHTTPResponse) -> int:
    return int(response.headers["X-Picsart-RateLimit-Available"])


def test_quota_fourth_call_is_429_then_the_next_window_admits_again(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=3, window_seconds=1.0, reset_time_format="epoch_ms")

    answers = [api.balance() for _ in range(4)]

    assert [r.status for r in answers] == [200, 200, 200, 429]
    assert [_available(r) for r in answers] == [2, 1, 0, 0]
    throttled = answers[3]
    assert throttled.json() == {
        "code": 429,
        "message": "Too Many Requests",
        "detail": "Rate limit quota violation. Quota limit exceeded.",
    }
    for header in FIVE_HEADERS:
        assert header in throttled.headers
    assert throttled.headers["X-Picsart-RateLimit-Limit"] == "3"
    assert api.emulator.calls()[-1].throttled == "quota"
    assert api.emulator.calls()[-1].ratelimit_available == 0

    # Wait until the advertised reset time, as a well-behaved client would.
    reset_ms = int(throttled.headers["X-Picsart-RateLimit-Reset-Time"])
    wait = reset_ms / 1000 - time.time()
    assert 0 < wait <= 1.0
    time.sleep(wait + 0.05)

    again = api.balance()
    assert again.status == 200
    # The rejected call consumed nothing: the new window is full minus this call.
    assert _available(again) == 2


def test_quota_counts_tool_calls_and_errors_after_admission(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=2, window_seconds=30)

    invalid = api.removebg(bg_blur="102")  # counted: validation comes after the quota
    unauthorised = api.balance(headers=api.headers(key="wrong"))  # not counted: rejected before
    ok = api.removebg()
    over = api.removebg()

    assert [invalid.status, unauthorised.status, ok.status, over.status] == [422, 401, 200, 429]
    assert _available(ok) == 0


def test_spike_arrest_429_has_the_gateway_body(make_api: Callable[..., Api]) -> None:
    api = make_api(spike_per_second=2, quota=1000)

    # Five quick calls span at most two wall-clock seconds, which admit at most 2 each.
    answers = [api.balance() for _ in range(5)]

    spiked = [r for r in answers if r.status == 429]
    assert spiked
    body = spiked[0].json()
    assert body["fault"]["detail"]["errorcode"] == "policies.ratelimit.SpikeArrestViolation"
    assert body["fault"]["faultstring"].startswith("Spike arrest violation. Allowed rate : ")
    for header in FIVE_HEADERS:
        assert header in spiked[0].headers
    assert any(call.throttled == "spike" for call in api.emulator.calls())
    # Spike-arrested calls do not consume quota.
    admitted = [r for r in answers if r.status == 200]
    assert _available(admitted[-1]) == 1000 - len(admitted)


def test_402_when_credits_run_out(make_api: Callable[..., Api]) -> None:
    api = make_api(credits=1)

    first = api.removebg()
    second = api.removebg()

    assert first.status == 200
    assert first.headers["X-Picsart-Credit-Available"] == "0"
    assert second.status == 402
    body = second.json()
    assert (body["code"], body["message"]) == (402, "Payment Required")
    assert body["detail"]
    for header in FIVE_HEADERS:
        assert header in second.headers
    balance = api.balance()  # /balance itself costs nothing and still answers
    assert (balance.status, balance.json()) == (200, {"credits": 0})


def test_402_applies_after_reconfigure_of_credits(api: Api) -> None:
    api.emulator.reconfigure(credits=0)

    assert api.removebg().status == 402

    api.emulator.reset()  # restores credits from the settings in force (0)
    assert api.balance().json() == {"credits": 0}


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda api: api.removebg(), id="200"),
        pytest.param(lambda api: api.balance(headers=api.headers(key="bad")), id="401"),
        pytest.param(lambda api: api.balance(headers=api.headers(accept=None)), id="406"),
        pytest.param(
            lambda api: api.http.request("GET", api.emulator.base_url + "/missing", headers=api.headers()), id="404"
        ),
        pytest.param(lambda api: api.removebg(format="BMP"), id="422"),
        pytest.param(lambda api: api.post("removebg", {"image_url": api.image_url("notes.txt")}), id="415"),
    ],
)
def test_five_headers_on_every_answer(api: Api, call: Callable[[Api], urllib3.BaseHTTPResponse]) -> None:
    first, second = call(api), call(api)

    for response in (first, second):
        for header in FIVE_HEADERS:
            assert header in response.headers, header
        assert uuid.UUID(response.headers["X-Picsart-Correlation-Id"]).version == 4
        assert int(response.headers["X-Picsart-RateLimit-Limit"]) == 500
        assert int(response.headers["X-Picsart-Credit-Available"]) >= 0
    # A fresh correlation id per request, and the log has the same ids.
    ids = [first.headers["X-Picsart-Correlation-Id"], second.headers["X-Picsart-Correlation-Id"]]
    assert ids[0] != ids[1]
    assert ids == [c.correlation_id for c in api.emulator.calls()[-2:]]


def test_before_any_window_headers_show_a_full_quota(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=7, window_seconds=20, reset_time_format="epoch_s")

    before = time.time()
    response = api.balance(headers=api.headers(key="wrong"))  # not counted

    assert response.status == 401
    assert _available(response) == 7
    reset = int(response.headers["X-Picsart-RateLimit-Reset-Time"])
    assert before + 20 <= reset <= time.time() + 21


@pytest.mark.parametrize(
    ("fmt", "scale"),
    [("epoch_ms", 1000.0), ("epoch_s", 1.0)],
)
def test_reset_time_as_epoch(make_api: Callable[..., Api], fmt: str, scale: float) -> None:
    api = make_api(window_seconds=30, reset_time_format=fmt)

    before = time.time()
    first = api.balance()
    second = api.balance()

    values = [int(r.headers["X-Picsart-RateLimit-Reset-Time"]) for r in (first, second)]
    # The window started at the first call, so its reset is about now + 30 s, the same for both.
    assert values[0] == values[1]
    assert (before + 30) * scale - scale <= values[0] <= (time.time() + 30) * scale + scale
    if fmt == "epoch_ms":
        assert values[0] > 10**12  # milliseconds, not seconds
    else:
        assert 10**9 < values[0] < 10**11


def test_reset_time_as_seconds_from_now(make_api: Callable[..., Api]) -> None:
    api = make_api(window_seconds=30, reset_time_format="seconds")

    value = int(api.balance().headers["X-Picsart-RateLimit-Reset-Time"])

    assert 29 <= value <= 30


def test_reset_time_in_seconds_is_at_least_one(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=1, window_seconds=0.3, reset_time_format="seconds")

    api.balance()
    throttled = api.balance()

    assert throttled.status == 429
    assert throttled.headers["X-Picsart-RateLimit-Reset-Time"] == "1"


@pytest.mark.parametrize("fmt", ["epoch_ms", "epoch_s", "seconds"])
def test_the_call_log_holds_the_reset_each_answer_named(make_api: Callable[..., Api], fmt: str) -> None:
    """A client's test holds it to the guide's "after a 429, no request until the reset time" from the log alone:
    each record has its arrival and the reset its header named, in each form."""
    api = make_api(quota=1, window_seconds=30, reset_time_format=fmt)
    answers = [api.balance(), api.balance()]
    records = api.emulator.calls()
    assert [r.status for r in records] == [200, 429]
    for answer, record in zip(answers, records, strict=True):
        header = answer.headers["X-Picsart-RateLimit-Reset-Time"]
        assert record.reset_at is not None
        if fmt == "epoch_ms":
            assert record.reset_at == int(header) / 1000
        elif fmt == "epoch_s":
            assert record.reset_at == int(header)
        else:
            assert record.reset_at == pytest.approx(record.at + int(header), abs=0.5)
        assert record.at + 29 <= record.reset_at <= record.at + 32
    api.http.request("GET", api.emulator.base_url + "/nowhere", headers=api.headers())
    assert api.emulator.calls()[-1].reset_at is not None, "every /tools/1.0 answer names one"


def test_concurrent_calls_are_processed_in_parallel(make_api: Callable[..., Api]) -> None:
    api = make_api(latency_ms=400, quota=100)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: api.removebg(), range(6)))
    elapsed = time.perf_counter() - started

    assert [r.status for r in answers] == [200] * 6
    assert elapsed < 6 * 0.4 / 2  # serial processing would take 2.4 s
    # Each admission took its own slot from the shared window.
    assert sorted(_available(r) for r in answers) == list(range(94, 100))


def test_rate_headers_absent_outside_the_api(api: Api) -> None:
    response = api.http.request("GET", api.emulator.root_url + "/elsewhere")

    assert response.status == 404
    for header in RATE_HEADERS:
        assert header not in response.headers
