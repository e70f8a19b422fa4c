"""The template is valid SAM and passes the linter: what `sam validate --lint` says before a deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from picsart_local.cfn_template import load_template


def test_sam_validate_lint_passes(repository_root: Path) -> None:
    sam = Path(sys.executable).with_name("sam")
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--template", str(repository_root / "template.yaml")],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


def test_functions_run_python313_on_arm64_with_tracing(repository_root: Path) -> None:
    template = load_template(repository_root / "template.yaml")
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    variables = function_globals["Environment"]["Variables"]
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(variables)
