"""Tool configuration from the template's parameters, and its validation at cold start."""

from __future__ import annotations

import pytest

from .conftest import jpeg_bytes, open_image, start_environment

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
