"""Tool configuration from the template's parameters, cold-start validation, and the delay-queue path."""

from __future__ import annotations

import pytest

from picsart_local.emulator import EmulatorSettings

from .conftest import jpeg_bytes, open_image, png_bytes, start_environment

pytestmark = pytest.mark.integration


def test_upscale_tool_from_template_parameters(tmp_path_factory: pytest.TempPathFactory) -> None:
    parameters = {"PicsartTool": "upscale", "PicsartToolParameters": '{"upscale_factor": 2, "format": "PNG"}'}
    with start_environment(tmp_path_factory, "upscale", parameters=parameters) as env:
        env.upload("uploads/small.jpg", jpeg_bytes())
        outcome = env.wait_for(["uploads/small.jpg"], timeout=60)["uploads/small.jpg"]
        assert outcome.status == "succeeded", outcome
        assert outcome.output_key == "upscale/uploads/small.jpg.png"
        assert open_image(env.download_output(outcome.output_key)).size == (640, 480)


def test_invalid_tool_parameters_fail_at_cold_start_naming_the_variable(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A 422 that would be certain is refused before any call (guide: parameters must pass validation)."""
    parameters = {"PicsartTool": "upscale", "PicsartToolParameters": '{"upscale_factor": 3}'}
    with start_environment(tmp_path_factory, "badconfig", parameters=parameters, event_sources=False) as env:
        assert env.runner is not None
        result = env.runner.invoke("UploadFunction", {"Records": []})
        assert not result.ok
        assert result.error_type == "ConfigurationError"
        assert result.error_message is not None
        assert "PICSART_TOOL_PARAMETERS" in result.error_message
        assert "upscale_factor" in result.error_message
        assert env.emulator is not None
        assert env.emulator.calls() == []


def test_throttled_uploads_wait_in_the_delay_queue_and_all_finish(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A 429 parks the job in the delay queue until the reset time; the retry function finishes it."""
    quota = EmulatorSettings(quota=2, window_seconds=3.0, spike_per_second=50)
    with start_environment(tmp_path_factory, "throttled", emulator=quota, upload_concurrency=4) as env:
        keys = [f"uploads/burst-{n}.png" for n in range(6)]
        for key in keys:
            env.upload(key, png_bytes())
        outcomes = env.wait_for(keys, timeout=90)
        assert {o.status for o in outcomes.values()} == {"succeeded"}, outcomes
        assert env.emulator is not None
        statuses = [c.status for c in env.emulator.calls() if c.tool == "removebg"]
        assert statuses.count(200) == len(keys), "each upload succeeded exactly once"
        throttled = [o for o in outcomes.values() if o.record and len(o.record["attempts"]) > 1]
        assert throttled, "with a quota of 2 per window some uploads were throttled first"
        for outcome in throttled:
            first = outcome.record["attempts"][0] if outcome.record else {}
            assert first["http_status"] == 429
            assert first["picsart_correlation_id"], "the correlation id of the 429 is kept for reports"
