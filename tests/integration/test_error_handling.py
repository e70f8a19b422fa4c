"""Each row of the outcomes table against the emulator, on the whole local stack.

Guide: "Choosing to disregard ongoing validation errors could lead to your application being suspended";
"Reporting issues": the correlation id, the error body and the details. The circuit's first probe waits
CIRCUIT_PROBE_SECONDS (shortened here from the guide's minute).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from picsart_adapter.rate_limit import key_fingerprint
from picsart_local.cli import main
from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LOCAL_API_KEY, LocalEnvironment

from .conftest import jpeg_bytes, png_bytes, start_environment

pytestmark = pytest.mark.integration

FAST_CIRCUIT = {"CIRCUIT_PROBE_SECONDS": "2", "CIRCUIT_MAX_PROBE_SECONDS": "4"}


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def tool_calls(env: LocalEnvironment, status: int | None = None) -> int:
    assert env.emulator is not None
    return sum(1 for c in env.emulator.calls() if c.tool and (status is None or c.status == status))


def circuit_state(env: LocalEnvironment) -> dict[str, object]:
    """The fleet's circuit as its DynamoDB item holds it (the item the deployment's key names)."""
    table = env.client("dynamodb")
    key = {"pk": {"S": f"circuit#{key_fingerprint(LOCAL_API_KEY)}"}, "sk": {"S": "state"}}
    item = table.get_item(TableName=env.outputs["JobsTableName"], Key=key, ConsistentRead=True).get("Item", {})
    return {name: next(iter(value.values())) for name, value in item.items()}


def upload_all(env: LocalEnvironment, count: int, prefix: str) -> list[str]:
    keys = [f"{prefix}/{index:02d}.png" for index in range(count)]
    for key in keys:
        env.upload(key, png_bytes())
    return keys


@pytest.mark.parametrize(
    ("fault", "fix", "status"),
    [
        ({"api_key": "a-key-the-deployment-does-not-have"}, {"api_key": LOCAL_API_KEY}, 401),
        ({"credits": 0}, {"credits": 1000}, 402),
    ],
    ids=["401-wrong-key", "402-no-credits"],
)
def test_a_configuration_fault_stops_the_fleet_until_a_probe_succeeds(
    tmp_path_factory: pytest.TempPathFactory, fault: dict[str, object], fix: dict[str, object], status: int
) -> None:
    with start_environment(
        tmp_path_factory, f"circuit-{status}", upload_concurrency=4, function_environment=FAST_CIRCUIT
    ) as env:
        assert env.emulator is not None
        env.emulator.reconfigure(**fault)
        keys = upload_all(env, 12, f"circuit-{status}")

        def all_waiting_with_the_circuit_open() -> bool:
            # Read from the circuit's item, not from the records' reasons: a job first parked for budget keeps
            # that reason while the circuit holds it (a wait without an attempt writes no record).
            return circuit_state(env).get("state") == "open" and all(
                getattr(env.outcome(k), "status", None) == "waiting" for k in keys
            )

        wait_until(all_waiting_with_the_circuit_open, timeout=90)
        refused_while_open = tool_calls(env, status)
        failed_probes = int(circuit_state(env).get("failed_probes", 0))
        # The calls already in flight when the first answer came (4 at most), then only probes, one at a time
        # (one more may be answered but not yet recorded): not 12, and not a stream.
        assert 1 <= refused_while_open <= 4 + failed_probes + 1, (refused_while_open, failed_probes)
        env.emulator.reconfigure(**fix)
        outcomes = env.wait_for(keys, timeout=90)
        assert {o.status for o in outcomes.values()} == {"succeeded"}, outcomes
        assert tool_calls(env, 200) == 12, "one successful call per upload"
        assert tool_calls(env, status) <= refused_while_open + 3, "the probes, not a stream of refusals"


def test_a_stream_of_validation_failures_opens_the_circuit(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A background image Picsart cannot fetch makes every call a 400: after 3 in a row, calls stop."""
    parameters = {"PicsartToolParameters": json.dumps({"bg_image_url": "http://127.0.0.1:9/missing.png"})}
    with start_environment(
        tmp_path_factory,
        "streak",
        parameters=parameters,
        upload_concurrency=1,
        function_environment={**FAST_CIRCUIT, "CIRCUIT_VALIDATION_FAILURES": "3", "CIRCUIT_PROBE_SECONDS": "60"},
    ) as env:
        keys = upload_all(env, 8, "streak")
        wait_until(lambda: all(getattr(env.outcome(k), "status", None) in {"failed", "waiting"} for k in keys))
        time.sleep(1.0)
        outcomes = {k: env.outcome(k) for k in keys}
        failed = [o for o in outcomes.values() if o is not None and o.status == "failed"]
        waiting = [o for o in outcomes.values() if o is not None and o.status == "waiting"]
        assert len(failed) == 3
        assert len(waiting) == 5
        assert all("validation failures in a row" in str(o.reason) for o in waiting)
        assert tool_calls(env) == 3, "no call after the circuit opened"
        record = failed[0].record
        assert record is not None
        (attempt,) = record["attempts"]
        assert attempt["http_status"] == 400
        assert "bg_image_url" in attempt["error_body"]
        assert attempt["picsart_correlation_id"]


def test_server_errors_back_off_then_go_to_the_dead_letter_queue_with_the_reason(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with start_environment(
        tmp_path_factory, "503", emulator=EmulatorSettings(fault_503_rate=1.0), parameters={"MaxAttempts": "3"}
    ) as env:
        env.upload("errors/always-503.png", png_bytes())
        outcome = env.wait_for(["errors/always-503.png"], timeout=60)["errors/always-503.png"]
        assert outcome.status in {"failed", "dead-lettered"}, outcome
        assert "gave up after 3 attempts" in str(outcome.reason)
        dead_reason = env.dead_lettered_keys()["errors/always-503.png"]
        assert dead_reason.startswith("step 1 (removebg): gave up after 3 attempts")
        assert tool_calls(env, 503) == 3
        times = [c.at for c in env.emulator.calls() if c.tool] if env.emulator else []
        assert times == sorted(times)


def test_an_input_picsart_refuses_fails_once_with_the_body_and_the_correlation_id(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """413: the upscale input has more pixels than Picsart takes. No retry: the answer would not change."""
    parameters = {"PicsartTool": "upscale", "PicsartToolParameters": '{"upscale_factor": 2}'}
    emulator = EmulatorSettings(max_upscale_input_pixels=100 * 100)
    with start_environment(tmp_path_factory, "413", emulator=emulator, parameters=parameters) as env:
        env.upload("big/photo.jpg", jpeg_bytes())
        outcome = env.wait_for(["big/photo.jpg"], timeout=60)["big/photo.jpg"]
        assert outcome.status == "failed", outcome
        assert tool_calls(env) == 1
        assert outcome.record is not None
        (attempt,) = outcome.record["attempts"]
        assert attempt["http_status"] == 413
        assert json.loads(attempt["error_body"])["code"] == 413
        assert attempt["picsart_correlation_id"] == outcome.picsart_correlation_id


def test_content_picsart_cannot_read_fails_once_with_415(env: LocalEnvironment) -> None:
    """PNG magic bytes pass the adapter's own check; the rest is not an image, and Picsart says so."""
    env.upload("refused/corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00not really an image" * 50)
    outcome = env.wait_for(["refused/corrupt.png"], timeout=60)["refused/corrupt.png"]
    assert outcome.status == "failed", outcome
    assert outcome.record is not None
    (attempt,) = outcome.record["attempts"]
    assert attempt["http_status"] == 415
    assert "not a supported image" in attempt["error_body"]


def test_a_parameter_picsart_refuses_fails_with_422_and_is_not_retried(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A colour the spec's type allows (a string) but Picsart does not know: 422 naming the field."""
    parameters = {"PicsartToolParameters": '{"bg_color": "not-a-colour"}'}
    with start_environment(tmp_path_factory, "422", parameters=parameters) as env:
        env.upload("refused/photo.png", png_bytes())
        outcome = env.wait_for(["refused/photo.png"], timeout=60)["refused/photo.png"]
        assert outcome.status == "failed", outcome
        assert tool_calls(env) == 1
        assert outcome.record is not None
        (attempt,) = outcome.record["attempts"]
        assert attempt["http_status"] == 422
        assert "bg_color" in json.loads(attempt["error_body"])["detail"]


def test_the_same_event_twice_costs_one_call(tmp_path_factory: pytest.TempPathFactory, repository_root: Path) -> None:
    """S3 delivers at least once: Powertools Idempotency keeps the second delivery from calling again."""
    with start_environment(tmp_path_factory, "dupes", event_sources=False) as env:
        assert env.runner is not None
        env.upload("dupes/photo.png", png_bytes())
        event = json.loads((repository_root / "events" / "s3-put.json").read_text())
        record = event["Records"][0]["s3"]
        record["bucket"]["name"] = env.input_bucket
        record["object"] = {"key": "dupes/photo.png", "size": len(png_bytes())}
        first = env.runner.invoke("UploadFunction", event)
        second = env.runner.invoke("UploadFunction", event)
        assert first.ok, first
        assert second.ok, second
        assert first.payload["results"][0]["duplicate"] is False
        assert second.payload["results"][0]["duplicate"] is True
        assert second.payload["results"][0]["status"] == "succeeded"
        assert tool_calls(env) == 1


def test_an_asynchronous_tool_is_polled_through_the_delay_queue(tmp_path_factory: pytest.TempPathFactory) -> None:
    """202 + transaction_id: the adapter keeps the id and polls later; no Lambda sleeps through the wait."""
    parameters = {"PicsartTool": "ultra-upscale", "PicsartToolParameters": '{"upscale_factor": 2}'}
    # Long enough that the first poll (due a second after the 202, from a retry environment's cold start on a
    # loaded machine) still finds the job processing.
    emulator = EmulatorSettings(async_processing_seconds=10.0)
    with start_environment(tmp_path_factory, "ultra", emulator=emulator, parameters=parameters) as env:
        env.upload("ultra/small.jpg", jpeg_bytes())
        outcome = env.wait_for(["ultra/small.jpg"], timeout=60)["ultra/small.jpg"]
        assert outcome.status == "succeeded", outcome
        assert outcome.output_key == "ultra-upscale/ultra/small.jpg"
        assert env.emulator is not None
        statuses = [c.status for c in env.emulator.calls() if c.tool]
        assert (statuses[0], statuses[-1]) == (202, 200), statuses
        assert 202 in statuses[1:-1], "polled while the job was still processing"
        assert outcome.record is not None
        assert outcome.record["transaction_id"]
        polls = [a.get("poll") for a in outcome.record["attempts"]]
        assert polls == [None, *range(1, len(polls))], "one submission, then numbered polls"
        assert env.runner is not None
        durations = [r.result.duration_ms for r in env.runner.history()]
        assert max(durations) < 5000, "no invocation waited for the job"


def test_report_prints_every_attempt_for_a_support_request(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_environment(tmp_path_factory, "report", emulator=EmulatorSettings(fault_503_rate=1.0)) as env:
        assert env.emulator is not None
        assert env.stack is not None
        env.upload("report/photo one.png", png_bytes())
        wait_until(lambda: tool_calls(env, 503) >= 1)
        env.emulator.reconfigure(fault_503_rate=0.0)
        outcome = env.wait_for(["report/photo one.png"], timeout=60)["report/photo one.png"]
        assert outcome.status == "succeeded", outcome
        for name, value in env.stack.aws_environment().items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        table = env.outputs["JobsTableName"]
        code = main(["report", "report/photo one.png", "--bucket", env.input_bucket, "--table", table])
        printed = capsys.readouterr().out
        calls = [c for c in env.emulator.calls() if c.tool]
        bucket = env.input_bucket
    assert code == 0
    assert f"s3://{bucket}/report/photo one.png" in printed
    for call in calls:
        assert f"X-Picsart-Correlation-Id: {call.correlation_id}" in printed
    assert "HTTP 503, transient" in printed
    assert "HTTP 200, success" in printed
    assert "Service Unavailable" in printed, "the error body"
    assert "X-Picsart-RateLimit-Limit:" in printed
    assert LOCAL_API_KEY not in printed


def test_a_result_whose_download_failed_is_fetched_again_without_a_second_call(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Picsart answered 200 and its result server failed the download: the step is paid once, its result is
    fetched again by the next attempt, and the output is stored."""
    key = "fetch/photo.png"
    with start_environment(tmp_path_factory, "fetch", emulator=EmulatorSettings(result_fault_rate=1.0)) as env:
        assert env.emulator is not None
        env.upload(key, png_bytes())

        def failed_downloads() -> int:
            assert env.emulator is not None
            return sum(1 for c in env.emulator.calls() if c.path.startswith("/results/") and c.status == 503)

        wait_until(lambda: failed_downloads() >= 1)
        env.emulator.reconfigure(result_fault_rate=0.0)
        outcome = env.wait_for([key], timeout=60)[key]
        paid = tool_calls(env, 200)
        downloads = [c.status for c in env.emulator.calls() if c.path.startswith("/results/")]
    assert outcome.status == "succeeded", outcome
    assert paid == 1, "the answered step is not called again"
    assert downloads[-1] == 200
    assert 503 in downloads
    assert outcome.record is not None
    attempts = outcome.record["attempts"]
    assert attempts[0]["http_status"] == 200
    assert "result download answered HTTP 503" in attempts[0]["error"]
    assert attempts[-1]["result_fetch"] is True
