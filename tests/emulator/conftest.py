"""Fixtures: a fresh emulator per test (port 0), test images served from a local HTTP server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from picsart_local.emulator import EmulatorSettings, PicsartEmulator

from .support import API_KEY, Api, ImageServer, write_test_images

EmulatorFactory = Callable[..., PicsartEmulator]


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "images"
    directory.mkdir()
    write_test_images(directory)
    return directory


@pytest.fixture
def image_server(image_dir: Path) -> Iterator[ImageServer]:
    server = ImageServer(image_dir)
    yield server
    server.stop()


@pytest.fixture
def start_emulator() -> Iterator[EmulatorFactory]:
    """Start emulators with setting overrides; all are stopped after the test."""
    started: list[PicsartEmulator] = []

    def start(**overrides: Any) -> PicsartEmulator:
        emulator = PicsartEmulator(EmulatorSettings(**{"api_key": API_KEY, **overrides}))
        emulator.start(host="127.0.0.1", port=0)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(start_emulator: EmulatorFactory) -> PicsartEmulator:
    return start_emulator()


@pytest.fixture
def api(emulator: PicsartEmulator, image_server: ImageServer) -> Api:
    return Api(emulator, image_server.url)


@pytest.fixture
def make_api(start_emulator: EmulatorFactory, image_server: ImageServer) -> Callable[..., Api]:
    """An API client on a new emulator with the given setting overrides."""

    def make(**overrides: Any) -> Api:
        return Api(start_emulator(**overrides), image_server.url)

    return make
