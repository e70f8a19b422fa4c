"""Helpers for the emulator tests: test images, a tiny image server, and a small API client."""

from __future__ import annotations

import functools
import http.server
import io
import json
import threading
from pathlib import Path
from typing import Any

import urllib3
from PIL import Image, ImageDraw

from picsart_local.emulator import PicsartEmulator

API_KEY = "test-key-123"
FIVE_HEADERS = (
    "X-Picsart-Correlation-Id",
    "X-Picsart-RateLimit-Limit",
    "X-Picsart-RateLimit-Available",
    "X-Picsart-RateLimit-Reset-Time",
    "X-Picsart-Credit-Available",
)
RATE_HEADERS = FIVE_HEADERS[1:]
BACKGROUND = (236, 238, 240)


def write_test_images(directory: Path) -> None:
    """An object (shaded red disc with a dark square) on a plain light background, in PNG and JPG."""
    image = Image.new("RGB", (160, 120), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for step in range(20):
        # Concentric discs, darker inwards: a little shading, like a photographed object.
        shade = 150 + step * 4
        inset = step
        draw.ellipse((40 + inset, 20 + inset, 120 - inset, 100 - inset), fill=(shade, 30, 40))
    draw.rectangle((70, 50, 90, 70), fill=(20, 20, 60))
    image.save(directory / "object.png")
    image.save(directory / "object.jpg", quality=90)
    (directory / "notes.txt").write_text("this is not an image\n" * 20)


class _QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


class ImageServer:
    """Serves a directory over HTTP on a free loopback port, like S3 serving presigned URLs."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietFileHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Api:
    """Calls an emulator the way the adapter does, with every part overridable."""

    def __init__(self, emulator: PicsartEmulator, images_url: str) -> None:
        self.emulator = emulator
        self.images_url = images_url
        self.http = urllib3.PoolManager(maxsize=8, retries=False, timeout=urllib3.Timeout(connect=5, read=20))

    def headers(self, *, key: str | None = API_KEY, accept: str | None = "application/json") -> dict[str, str]:
        headers: dict[str, str] = {}
        if key is not None:
            headers["X-Picsart-API-Key"] = key
        if accept is not None:
            headers["Accept"] = accept
        return headers

    def image_url(self, name: str = "object.png", query: str = "") -> str:
        return f"{self.images_url}/{name}{query}"

    def post(
        self,
        tool: str,
        fields: dict[str, Any] | list[tuple[str, Any]] | None = None,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """POST multipart fields (default) or a JSON body to ``base_url + tool``."""
        headers = self.headers() if headers is None else headers
        url = f"{self.emulator.base_url}/{tool}"
        if json_body is not None:
            return self.http.request(
                "POST", url, body=json.dumps(json_body), headers={**headers, "Content-Type": "application/json"}
            )
        return self.http.request("POST", url, fields=fields or {}, headers=headers)

    def balance(self, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        return self.http.request("GET", f"{self.emulator.base_url}/balance", headers=headers or self.headers())

    def removebg(self, **fields: Any) -> urllib3.BaseHTTPResponse:
        return self.post("removebg", {"image_url": self.image_url(), **fields})

    def fetch_result(self, response: urllib3.BaseHTTPResponse) -> Image.Image:
        """Download the result a 200 answer points to."""
        url = response.json()["data"]["url"]
        result = self.http.request("GET", url)
        assert result.status == 200, result.data
        image = Image.open(io.BytesIO(result.data))
        image.load()
        return image
