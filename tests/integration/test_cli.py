"""`picsart-local`: the commands the README shows, run as a developer would (in-process `main`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from picsart_local.cli import main

from .conftest import open_image

pytestmark = pytest.mark.integration


def test_process_prints_the_table_and_writes_results(
    tmp_path: Path, repository_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = repository_root / "samples" / "red-mug.png"
    code = main(["--log-dir", str(tmp_path / "logs"), "process", str(sample), "--out", str(tmp_path / "results")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "uploads/red-mug.png" in printed
    assert "succeeded" in printed
    result = open_image((tmp_path / "results" / "removebg" / "uploads" / "red-mug.png").read_bytes())
    assert result.mode == "RGBA"


def test_process_exits_non_zero_when_an_upload_does_not_finish(
    tmp_path: Path, repository_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No credits: Picsart answers 402 and the job waits for credits; `process` must not report success."""
    monkeypatch.setenv("PICSART_EMULATOR_CREDITS", "0")
    sample = repository_root / "samples" / "red-mug.png"
    code = main(["--log-dir", str(tmp_path / "logs"), "process", str(sample), "--timeout", "5"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "lost" in printed


def test_invoke_runs_a_sample_event_like_sam_local_invoke(
    tmp_path: Path, repository_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = repository_root / "events" / "s3-put.json"
    sample = repository_root / "samples" / "red-mug.png"
    code = main(
        ["--log-dir", str(tmp_path / "logs"), "invoke", "UploadFunction", "-e", str(event), "--put", str(sample)]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    (result,) = json.loads(printed)["results"]
    assert result["status"] == "succeeded"
    assert result["key"] == "uploads/product.png"
    assert result["picsart_correlation_id"]


def test_bad_parameter_override_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--parameter-overrides", "PicsartTool=sharpen", "process", "samples/red-mug.png"])
    assert code == 2
    error = capsys.readouterr().err
    assert "PicsartTool" in error


def test_demo_runs_the_example_rules_and_draws_a_contact_sheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo`: the samples under the three example rules' prefixes, every output stored, and one sheet."""
    code = main(["--log-dir", str(tmp_path / "logs"), "demo", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    results = tmp_path / "results"
    cutout = open_image((results / "products-white" / "products" / "blue-ball.jpg").read_bytes())
    source = open_image((Path(__file__).parents[2] / "samples" / "blue-ball.jpg").read_bytes())
    assert (cutout.format, cutout.size) == ("JPEG", (source.width * 2, source.height * 2)), "on white, upscaled 2x"
    assert open_image((results / "avatars-enhanced" / "avatars" / "green-cone.jpg").read_bytes()).format == "JPEG"
    thumbnail = open_image((results / "thumbnails" / "misc" / "red-mug.webp").read_bytes())
    assert (thumbnail.format, thumbnail.width) == ("WEBP", 320)
    tags = json.loads((results / "tags" / "misc" / "red-mug.png.json").read_text())
    assert tags["data"]["tags"], "the tagging tool's answer is kept"
    sheet = open_image((tmp_path / "demo.png").read_bytes())
    assert sheet.format == "PNG"
    assert sheet.height > sheet.width / 2, "one row per sample"
