"""The whole flow on the local stack: moto server, resources from template.yaml, the Picsart emulator and
the runner playing Lambda. Each module gets its own environment, stopped when the module ends."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from picsart_local.emulator import EmulatorSettings
from picsart_local.environment import LocalEnvironment, LocalOptions
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
