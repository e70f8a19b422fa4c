"""The whole flow on the local stack: moto server, resources from template.yaml, the Picsart emulator and
the runner playing Lambda. Each module gets its own environment, stopped when the module ends."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LocalEnvironment, LocalOptions, UploadOutcome
from picsart_local.moto_throttle import ThrottleLimits
from picsart_local.samples import product_photo

#: Settings the template leaves at production values, shortened so tests do not wait a real minute.
FAST_RETRIES = {"RATE_LIMIT_FLOOR_SECONDS": "2", "RETRY_BASE_SECONDS": "0.5"}


def start_environment(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    emulator: EmulatorSettings | None = None,
    parameters: dict[str, str] | None = None,
    upload_concurrency: int = 4,
    event_sources: bool = True,
    prewarm: bool = False,
    function_environment: dict[str, str] | None = None,
    rules_file: Path | None = None,
    item_throttle: ThrottleLimits | None = None,
) -> LocalEnvironment:
    options = LocalOptions(
        stack_name=f"it-{name}",
        parameters=parameters or {},
        function_environment={**FAST_RETRIES, **(function_environment or {})},
        emulator=emulator or EmulatorSettings(),
        log_dir=tmp_path_factory.mktemp(f"{name}-logs"),
        upload_concurrency=upload_concurrency,
        event_sources=event_sources,
        prewarm=prewarm,
        rules_file=rules_file,
        item_throttle=item_throttle,
    )
    return LocalEnvironment(options).start()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    environment = start_environment(tmp_path_factory, "removebg")
    yield environment
    environment.stop()


def png_bytes(**options: object) -> bytes:
    buffer = io.BytesIO()
    product_photo(**options).save(buffer, format="PNG")  # type: ignore[arg-type]
    return buffer.getvalue()


def jpeg_bytes(**options: object) -> bytes:
    buffer = io.BytesIO()
    product_photo(**options).save(buffer, format="JPEG")  # type: ignore[arg-type]
    return buffer.getvalue()


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def log_lines(log_dir: Path) -> list[str]:
    return [line for path in sorted(log_dir.rglob("*.log")) for line in path.read_text().splitlines()]


#: What `not_succeeded` shows of each line a function logged about an upload.
LOGGED_FIELDS = ("timestamp", "function_name", "message", "reason", "delay_seconds")


def not_succeeded(env: LocalEnvironment, outcomes: Mapping[str, UploadOutcome]) -> dict[str, list[str]]:
    """Each upload that did not succeed: where it ended, the runner's counts of failed invocations, and the
    last lines its functions logged about it. Asserted equal to {} so that a rare failure explains itself
    in CI's output rather than as a bare set of statuses."""
    found: dict[str, list[str]] = {}
    entries: list[dict[str, Any]] | None = None
    for key, outcome in outcomes.items():
        if outcome.status == "succeeded":
            continue
        if entries is None:
            entries = env.runner.log_records() if env.runner is not None else []
        record = outcome.record or {}
        lines = [
            " ".join(str(entry[field]) for field in LOGGED_FIELDS if field in entry)
            for entry in entries
            if entry.get("key") == key
        ]
        found[key] = [f"{outcome.status}: {outcome.reason}; record status {record.get('status')!r}", *lines[-12:]]
    if found and env.runner is not None:
        counters = env.runner.counters()
        found["(runner)"] = [
            f"errors {dict(counters.errors)}, timeouts {dict(counters.timeouts)}, "
            f"batch item failures {dict(counters.batch_item_failures)}"
        ]
    return found
