"""What a tool of the emulator is: its path, its parameter table and the function doing its work.

The gateway (`server`) runs every tool the same way: it admits the call, checks the body against the
tool's table (`validation.check_params`), hands the tool a `ToolCall` and answers with what the tool
returns: an encoded image (stored and answered as ``data.url``) or a data object (answered as ``data``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, cast

from PIL import Image

from .imaging import EncodedImage
from .settings import EmulatorSettings
from .validation import BodyKind, Checked, ImageSource, OutputFormat, Param, RawParams, check_params

#: What a tool hands back: an image to store and point to, or the ``data`` object of a data tool.
ToolOutput = EncodedImage | dict[str, object]
_T = TypeVar("_T")


class Loader(Protocol):
    """Fetches (or takes) an input image, checks its size and decodes it; raises `ApiError`."""

    def __call__(self, field: str, source: ImageSource, *, max_pixels: int | None = None) -> Image.Image: ...


@dataclass(frozen=True)
class ToolCall:
    """One admitted, checked call of a tool."""

    checked: Checked
    load: Loader
    settings: EmulatorSettings
    default_format: OutputFormat

    def image(self, *, max_pixels: int | None = None) -> Image.Image:
        """The input image."""
        return self.load("image", self.checked.source, max_pixels=max_pixels)

    def get(self, name: str, default: _T) -> _T:
        """A checked value, or ``default`` when the parameter was not given (or given as null)."""
        return cast(_T, self.checked.values.get(name, default))

    def has(self, name: str) -> bool:
        """Whether the parameter was given (and not null)."""
        return name in self.checked.values

    @property
    def format(self) -> OutputFormat:
        """The output format asked for, else the tool's default."""
        return self.get("format", self.default_format)


@dataclass(frozen=True)
class Tool:
    """A tool at ``POST <path>``."""

    name: str
    path: str
    params: Mapping[str, Param]
    run: Callable[[ToolCall], ToolOutput]
    default_format: OutputFormat = "JPG"
    #: The table for JSON bodies; None: `params` without its file parts.
    json_params: Mapping[str, Param] | None = None
    #: Whether ``Prefer: respond-async`` answers 202 and the result is polled at ``GET <path>/<transaction_id>``.
    asynchronous: bool = False
    result: Literal["image", "data"] = "image"
    #: Rules between parameters that the table cannot state; raises `ApiError` 422.
    cross_check: Callable[[Checked], None] | None = None

    def check(self, params: RawParams, kind: BodyKind) -> Checked:
        """Check a body against this tool's table and rules (422 naming the field)."""
        json_params = self.json_params
        if json_params is None:
            json_params = {name: spec for name, spec in self.params.items() if spec.kind != "file"}
        checked = check_params(self.params, json_params, params, kind)
        if self.cross_check is not None:
            self.cross_check(checked)
        return checked
