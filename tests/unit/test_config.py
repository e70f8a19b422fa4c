"""`load_settings`: a wrong deployment fails at cold start with a message naming the variable.

Guide rules: "Double-check that all mandatory parameters have been provided" (upscale_factor), 422 for values
that "don't pass validations", and 404 for "unintended double slashes in the URL, such as /tools/1.0//removebg".
"""

from __future__ import annotations

import pytest

from picsart_adapter.config import DEFAULT_PICSART_BASE_URL, ConfigurationError, load_settings
from picsart_adapter.tools import RemoveBackgroundParameters, UpscaleParameters

REQUIRED = (
    "OUTPUT_BUCKET",
    "JOBS_TABLE",
    "DELAY_QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "PICSART_API_KEY_SECRET",
    "POWERTOOLS_METRICS_NAMESPACE",
)


def valid_environ(**overrides: str) -> dict[str, str]:
    environ = {
        "OUTPUT_BUCKET": "picsart-output-123456789012",
        "JOBS_TABLE": "picsart-jobs",
        "DELAY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/picsart-delay",
        "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/picsart-dlq",
        "PICSART_API_KEY_SECRET": "picsart/api-key",
        "POWERTOOLS_METRICS_NAMESPACE": "PicsartAdapter",
        "PICSART_BASE_URL": "https://api.picsart.io/tools/1.0",
        "PICSART_TOOL": "removebg",
        "PICSART_TOOL_PARAMETERS": '{"output_type": "cutout", "format": "PNG"}',
        "PRESIGNED_URL_TTL_SECONDS": "600",
        "PICSART_TIMEOUT_SECONDS": "25",
        "MAX_ATTEMPTS": "8",
        "RATE_LIMIT_FLOOR_SECONDS": "90",
        "RETRY_BASE_SECONDS": "3",
        # The Lambda environment holds many more variables; they are ignored.
        "AWS_REGION": "us-east-1",
    }
    environ.update(overrides)
    return environ


def config_error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ)
    return str(caught.value)


def test_complete_valid_environ_is_read_with_every_value() -> None:
    settings = load_settings(valid_environ())
    assert settings.output_bucket == "picsart-output-123456789012"
    assert settings.jobs_table == "picsart-jobs"
    assert settings.delay_queue_url.endswith("/picsart-delay")
    assert settings.dead_letter_queue_url.endswith("/picsart-dlq")
    assert settings.api_key_secret == "picsart/api-key"
    assert settings.tool.name == "removebg"
    assert settings.tool.path == "/removebg"
    assert settings.tool_parameters == RemoveBackgroundParameters(output_type="cutout", format="PNG")


def test_numbers_given_as_strings_by_the_environment_are_accepted() -> None:
    """Environment variables are strings: "600" is a TTL of 600 seconds."""
    settings = load_settings(valid_environ())
    assert settings.presigned_url_ttl_seconds == 600
    assert settings.request_timeout_seconds == 25.0
    assert settings.max_attempts == 8
    assert settings.rate_limit_floor_seconds == 90.0
    assert settings.retry_base_seconds == 3.0


def test_defaults_apply_to_optional_variables() -> None:
    """Guide: "wait at least one minute" is the default rate-limit floor; removebg with no parameters."""
    environ = {name: valid_environ()[name] for name in REQUIRED}
    settings = load_settings(environ)
    assert settings.picsart_base_url == DEFAULT_PICSART_BASE_URL == "https://api.picsart.io/tools/1.0"
    assert settings.tool.name == "removebg"
    assert settings.tool_parameters == RemoveBackgroundParameters()
    assert settings.rate_limit_floor_seconds == 60.0
    assert 60 <= settings.presigned_url_ttl_seconds <= 3600


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_required_variable_is_named(name: str) -> None:
    environ = valid_environ()
    del environ[name]
    assert name in config_error(environ)


@pytest.mark.parametrize("name", REQUIRED)
def test_empty_required_variable_is_named(name: str) -> None:
    assert name in config_error(valid_environ(**{name: ""}))


def test_upscale_without_factor_fails_naming_the_variable_and_the_parameter() -> None:
    """Guide: "Double-check that all mandatory parameters have been provided" (upscale_factor is required)."""
    message = config_error(valid_environ(PICSART_TOOL="upscale", PICSART_TOOL_PARAMETERS="{}"))
    assert "PICSART_TOOL_PARAMETERS" in message
    assert "upscale_factor" in message


def test_upscale_factor_outside_the_enum_fails() -> None:
    """Guide, 422: a value the reference documentation does not allow (upscale_factor in {2,4,6,8})."""
    message = config_error(valid_environ(PICSART_TOOL="upscale", PICSART_TOOL_PARAMETERS='{"upscale_factor": 3}'))
    assert "PICSART_TOOL_PARAMETERS" in message
    assert "upscale_factor" in message


def test_upscale_with_a_valid_factor_is_read() -> None:
    settings = load_settings(valid_environ(PICSART_TOOL="upscale", PICSART_TOOL_PARAMETERS='{"upscale_factor": 4}'))
    assert settings.tool.path == "/upscale"
    assert settings.tool_parameters == UpscaleParameters(upscale_factor=4)


def test_parameters_of_another_tool_are_refused() -> None:
    """Guide, 422: removebg parameters sent to upscale are not parameters of that endpoint."""
    message = config_error(valid_environ(PICSART_TOOL="upscale", PICSART_TOOL_PARAMETERS='{"bg_blur": 10}'))
    assert "bg_blur" in message


def test_parameter_out_of_range_fails_naming_the_parameter() -> None:
    """Guide, 422: "in the range of 0-100 but 102 ... provided"."""
    message = config_error(valid_environ(PICSART_TOOL_PARAMETERS='{"bg_blur": 102}'))
    assert "PICSART_TOOL_PARAMETERS" in message
    assert "bg_blur" in message


def test_parameters_that_are_not_json_fail() -> None:
    message = config_error(valid_environ(PICSART_TOOL_PARAMETERS="upscale_factor=4"))
    assert "PICSART_TOOL_PARAMETERS" in message
    assert "JSON" in message


def test_parameters_as_a_json_list_fail() -> None:
    """Guide, 422: "a parameter ... given as an array when the endpoint expects" an object."""
    message = config_error(valid_environ(PICSART_TOOL_PARAMETERS='[{"upscale_factor": 4}]'))
    assert "PICSART_TOOL_PARAMETERS" in message
    assert "object" in message


def test_unknown_tool_fails_naming_the_variable() -> None:
    """Guide, 404: "Incorrect endpoint paths"."""
    assert "PICSART_TOOL" in config_error(valid_environ(PICSART_TOOL="removebackground"))


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.picsart.io/tools/1.0/",
        "https://api.picsart.io/tools//1.0",
        "https://api.picsart.io//tools/1.0",
        "api.picsart.io/tools/1.0",
        "https://api.picsart.io/tools/1.0 ",
    ],
)
def test_base_url_with_a_trailing_or_double_slash_fails(base_url: str) -> None:
    """Guide, 404: "Including unintended double slashes in the URL, such as /tools/1.0//removebg"."""
    assert "PICSART_BASE_URL" in config_error(valid_environ(PICSART_BASE_URL=base_url))


def test_local_base_url_is_accepted() -> None:
    settings = load_settings(valid_environ(PICSART_BASE_URL="http://127.0.0.1:8080/tools/1.0"))
    assert settings.picsart_base_url == "http://127.0.0.1:8080/tools/1.0"


@pytest.mark.parametrize("ttl", ["59", "3601", "0", "-300"])
def test_presigned_url_ttl_outside_60_to_3600_fails(ttl: str) -> None:
    assert "PRESIGNED_URL_TTL_SECONDS" in config_error(valid_environ(PRESIGNED_URL_TTL_SECONDS=ttl))


@pytest.mark.parametrize("ttl", ["60", "3600"])
def test_presigned_url_ttl_range_ends_are_accepted(ttl: str) -> None:
    assert load_settings(valid_environ(PRESIGNED_URL_TTL_SECONDS=ttl)).presigned_url_ttl_seconds == int(ttl)


@pytest.mark.parametrize(
    ("name", "value"),
    [("PRESIGNED_URL_TTL_SECONDS", "five minutes"), ("MAX_ATTEMPTS", "0"), ("PICSART_TIMEOUT_SECONDS", "0")],
)
def test_unreadable_or_out_of_range_numbers_are_named(name: str, value: str) -> None:
    assert name in config_error(valid_environ(**{name: value}))


def test_every_fault_is_named_in_one_message() -> None:
    """A deployment with two faults is told both at once, not one per redeploy."""
    environ = valid_environ(PRESIGNED_URL_TTL_SECONDS="5", PICSART_BASE_URL="https://api.picsart.io/tools/1.0/")
    del environ["JOBS_TABLE"]
    message = config_error(environ)
    for name in ("JOBS_TABLE", "PRESIGNED_URL_TTL_SECONDS", "PICSART_BASE_URL"):
        assert name in message


def test_completion_events_go_to_the_default_bus_unless_one_is_named() -> None:
    assert load_settings(valid_environ()).event_bus_name == "default"
    assert load_settings(valid_environ(EVENT_BUS_NAME="orders")).event_bus_name == "orders"


@pytest.mark.parametrize("bus", ["", "two words", "arn:aws:events:us-east-1:123456789012:event-bus/orders"])
def test_an_event_bus_that_is_not_a_bus_name_is_named(bus: str) -> None:
    assert "EVENT_BUS_NAME" in config_error(valid_environ(EVENT_BUS_NAME=bus))
