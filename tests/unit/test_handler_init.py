"""What a handler's init does: the settings are checked at once; the processor (the AWS SDK, its clients, the
domain) is built in the init only when the init runs ahead of traffic, and at the first event otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from picsart_adapter.dependencies import init_runs_ahead_of_traffic

from .test_config import valid_environ

ROOT = Path(__file__).resolve().parents[2]
_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
from picsart_adapter import dependencies
built = dependencies.get_balance_check if sys.argv[1] == "balance_handler" else dependencies.get_processor
print(built.cache_info().currsize)
"""


def processors_built_at_import(handler: str, **environment: str) -> str:
    function = {"upload_handler": "upload", "retry_handler": "retry", "balance_handler": "balance"}[handler]
    env = {
        "PATH": os.environ.get("PATH", ""),
        **valid_environ(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers" / "picsart_adapter")]),
        **environment,
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, handler], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("handler", ["upload_handler", "retry_handler", "balance_handler"])
@pytest.mark.parametrize(("initialization_type", "built"), [("on-demand", "0"), ("provisioned-concurrency", "1")])
def test_the_processor_is_built_in_the_init_only_when_the_init_runs_ahead_of_traffic(
    handler: str, initialization_type: str, built: str
) -> None:
    assert processors_built_at_import(handler, AWS_LAMBDA_INITIALIZATION_TYPE=initialization_type) == built


def test_an_invalid_setting_fails_the_init_even_when_the_processor_waits_for_the_first_event() -> None:
    with pytest.raises(AssertionError, match="PRESIGNED_URL_TTL_SECONDS"):
        processors_built_at_import(
            "upload_handler", AWS_LAMBDA_INITIALIZATION_TYPE="on-demand", PRESIGNED_URL_TTL_SECONDS="forever"
        )


@pytest.mark.parametrize(
    ("initialization_type", "ahead"),
    [("on-demand", False), ("provisioned-concurrency", True), ("snap-start", True), (None, False)],
)
def test_inits_ahead_of_traffic_are_provisioned_concurrency_and_snapstart(
    monkeypatch: pytest.MonkeyPatch, initialization_type: str | None, ahead: bool
) -> None:
    if initialization_type is None:
        monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    else:
        monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", initialization_type)
    assert init_runs_ahead_of_traffic() is ahead
