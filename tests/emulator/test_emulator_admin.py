"""Call log, admin endpoints, settings, results, lifecycle and the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest
import urllib3
from pydantic import ValidationError

from picsart_local.emulator import CallRecord, EmulatorSettings, PicsartEmulator

from .support import API_KEY, Api


def _admin(api: Api, method: str, path: str, body: object = None) -> urllib3.BaseHTTPResponse:
    data = None if body is None else json.dumps(body)
    return api.http.request(method, api.emulator.root_url + path, body=data)


def test_call_log_never_holds_the_query_string(api: Api) -> None:
    secret = "X-Amz-Signature=SECRET-SIGNATURE&X-Amz-Credential=SECRET-CRED"
    ok = api.post("removebg", {"image_url": api.image_url("object.png", "?" + secret)})
    missing = api.post("removebg", {"image_url": api.image_url("missing.png", "?" + secret)})
    invalid = api.post("removebg", {"image_url": api.image_url("object.png", "?" + secret), "bg_blur": "500"})

    assert [ok.status, missing.status, invalid.status] == [200, 400, 422]
    records = [c for c in api.emulator.calls() if c.tool == "removebg"]
    assert [c.image_url_path for c in records] == ["/object.png", "/missing.png", "/object.png"]
    assert "SECRET" not in repr(api.emulator.calls())
    assert "SECRET" not in _admin(api, "GET", "/_emulator/calls").data.decode()
    for response in (missing, invalid):
        assert b"SECRET" not in response.data


def test_call_log_records_every_kind_of_answer(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=1, window_seconds=30)
    api.http.request("GET", api.emulator.base_url + "//balance", headers=api.headers())
    api.balance(headers=api.headers(key=None))
    api.balance(headers=api.headers(accept=None))
    api.balance()
    api.balance()

    records = api.emulator.calls()

    assert [r.status for r in records] == [404, 401, 406, 200, 429]
    assert [r.path for r in records] == ["/tools/1.0//balance"] + ["/tools/1.0/balance"] * 4
    assert [r.throttled for r in records] == [None, None, None, None, "quota"]
    assert [r.ratelimit_available for r in records] == [1, 1, 1, 0, 0]
    assert all(isinstance(r, CallRecord) for r in records)
    assert [r.at for r in records] == sorted(r.at for r in records)
    assert all(r.duration_ms >= 0 and r.method == "GET" for r in records)
    with pytest.raises(AttributeError):
        records[0].status = 1  # type: ignore[misc]


def test_admin_calls_endpoint_lists_records_as_dicts(api: Api) -> None:
    api.balance()

    response = _admin(api, "GET", "/_emulator/calls")

    assert response.status == 200
    (record,) = response.json()
    assert record["path"] == "/tools/1.0/balance"
    assert record["status"] == 200
    assert record["tool"] == "balance"
    assert set(record) == {
        "at",
        "method",
        "path",
        "status",
        "correlation_id",
        "tool",
        "image_url_path",
        "image_url_expires",
        "ratelimit_available",
        "throttled",
        "duration_ms",
        "reset_at",
    }


def test_admin_settings_get_and_post(api: Api) -> None:
    current = _admin(api, "GET", "/_emulator/settings")
    changed = _admin(api, "POST", "/_emulator/settings", {"quota": 9, "reset_time_format": "seconds"})

    assert current.json()["quota"] == 500
    assert current.json()["api_key"] == API_KEY
    assert changed.status == 200
    assert changed.json()["quota"] == 9
    assert api.emulator.settings.reset_time_format == "seconds"
    response = api.balance()
    assert response.headers["X-Picsart-RateLimit-Limit"] == "9"
    assert int(response.headers["X-Picsart-RateLimit-Reset-Time"]) <= 60


@pytest.mark.parametrize(
    ("body", "field"),
    [({"fault_500_rate": 2}, "fault_500_rate"), ({"quota": 0}, "quota"), ({"no_such_setting": 1}, "no_such_setting")],
)
def test_admin_settings_post_rejects_invalid_values(api: Api, body: dict[str, object], field: str) -> None:
    response = _admin(api, "POST", "/_emulator/settings", body)

    assert response.status == 422
    assert field in response.json()["detail"]
    assert api.emulator.settings == EmulatorSettings(api_key=API_KEY)  # unchanged


def test_admin_reset_clears_log_window_and_credits(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=2, credits=5)
    api.removebg()
    api.removebg()
    assert api.removebg().status == 429

    response = _admin(api, "POST", "/_emulator/reset")

    assert response.status == 200
    assert api.emulator.calls() == []
    after = api.balance()
    assert after.json() == {"credits": 5}
    assert after.headers["X-Picsart-RateLimit-Available"] == "1"


def test_admin_endpoints_need_no_key_and_are_not_counted(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=2)

    for _ in range(5):
        assert _admin(api, "GET", "/_emulator/settings").status == 200
        assert _admin(api, "GET", "/_emulator/calls").status == 200

    assert api.emulator.calls() == []
    assert api.balance().headers["X-Picsart-RateLimit-Available"] == "1"


def test_admin_unknown_endpoint_and_wrong_method(api: Api) -> None:
    assert _admin(api, "GET", "/_emulator/nothing").status == 404
    assert _admin(api, "GET", "/_emulator/reset").status == 405


def test_results_need_no_key_and_unknown_ids_are_404(api: Api) -> None:
    url = api.removebg().json()["data"]["url"]

    found = api.http.request("GET", url)  # no API key, like a CDN URL
    unknown = api.http.request("GET", api.emulator.root_url + "/results/" + "0" * 32 + ".png")
    wrong_ext = api.http.request("GET", url.rsplit(".", 1)[0] + ".jpg")

    assert (found.status, found.headers["Content-Type"]) == (200, "image/png")
    assert found.data.startswith(b"\x89PNG")
    assert unknown.status == 404
    assert wrong_ext.status == 404


def test_reconfigure_validates_and_restarts_the_window(make_api: Callable[..., Api]) -> None:
    api = make_api(quota=5)
    api.balance()
    api.balance()

    with pytest.raises(ValidationError):
        api.emulator.reconfigure(slow_answer_rate=-0.1)
    assert api.balance().headers["X-Picsart-RateLimit-Available"] == "2"  # unchanged window

    api.emulator.reconfigure(quota=10, window_seconds=5)
    assert api.balance().headers["X-Picsart-RateLimit-Available"] == "9"


def test_settings_validation() -> None:
    with pytest.raises(ValidationError):
        EmulatorSettings(window_seconds=0)
    with pytest.raises(ValidationError):
        EmulatorSettings.model_validate({"reset_time_format": "minutes"})
    with pytest.raises(ValidationError):
        EmulatorSettings(bare_429_rate=1.5)
    with pytest.raises(ValidationError):
        EmulatorSettings.model_validate({"quota": 500, "unknown": 1})


def test_settings_from_env() -> None:
    environ = {
        "PICSART_EMULATOR_QUOTA": "7",
        "PICSART_EMULATOR_WINDOW_SECONDS": "2.5",
        "PICSART_EMULATOR_RESET_TIME_FORMAT": "epoch_s",
        "PICSART_EMULATOR_FAULT_503_RATE": "0.25",
        "PICSART_EMULATOR_SEED": "none",
        "PICSART_EMULATOR_API_KEY": "",  # empty keeps the default
        "PICSART_EMULATOR_URL": "http://ignored",  # not a setting: ignored
    }

    settings = EmulatorSettings.from_env(environ=environ)

    assert (settings.quota, settings.window_seconds, settings.reset_time_format) == (7, 2.5, "epoch_s")
    assert (settings.fault_503_rate, settings.seed, settings.api_key) == (0.25, None, "local-test-key")
    assert EmulatorSettings.from_env("X_", environ={"X_SEED": "42"}).seed == 42
    with pytest.raises(ValidationError):
        EmulatorSettings.from_env(environ={"PICSART_EMULATOR_QUOTA": "lots"})


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICSART_EMULATOR_CREDITS", "12")

    assert EmulatorSettings.from_env().credits == 12


def test_context_manager_starts_on_a_free_port_and_stops() -> None:
    with PicsartEmulator(EmulatorSettings(api_key=API_KEY)) as emulator:
        base_url = emulator.base_url
        assert base_url == f"{emulator.root_url}/tools/1.0"
        assert emulator.port > 0
        http = urllib3.PoolManager(retries=False)
        response = http.request(
            "GET", base_url + "/balance", headers={"X-Picsart-API-Key": API_KEY, "Accept": "application/json"}
        )
        assert response.status == 200

    with pytest.raises(RuntimeError):
        _ = emulator.base_url
    with pytest.raises(urllib3.exceptions.HTTPError):
        http.request("GET", base_url + "/balance", timeout=2)


def test_command_line_prints_the_base_url_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PICSART_EMULATOR_API_KEY": "cli-key", "PICSART_EMULATOR_CREDITS": "77"}
    process = subprocess.Popen(
        [sys.executable, "-m", "picsart_local.emulator", "--host", "127.0.0.1", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/tools/1.0")
        response = urllib3.PoolManager(retries=False).request(
            "GET", base_url + "/balance", headers={"X-Picsart-API-Key": "cli-key", "Accept": "application/json"}
        )
        assert response.json() == {"credits": 77}

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
