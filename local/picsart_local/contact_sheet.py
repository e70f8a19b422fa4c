"""A contact sheet: each source image beside what its pipelines made of it, as one PNG to look at.

One row per source: the source first, then each output, every tile scaled to the same thumbnail height on a
checkerboard (so a cutout's transparency shows as such, not as white or black), labelled underneath. An output
that is not an image (a pipeline's JSON, or a format Pillow does not read, such as an SVG) is a text tile with its
first lines: for JSON, its tags or labels when it lists some.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

THUMB_HEIGHT: Final = 160
#: Narrow images are centred in a tile this wide, so their label stays readable.
MIN_TILE_WIDTH: Final = 120
#: Panoramas are scaled down to this width (and so below the thumbnail height), so one row stays on a screen.
MAX_TILE_WIDTH: Final = 400
TEXT_TILE_WIDTH: Final = 220
PADDING: Final = 12
FONT_SIZE: Final = 12
LINE_HEIGHT: Final = 16
#: Label lines under each tile; a label's further lines are left out.
LABEL_LINES: Final = 2
LABEL_HEIGHT: Final = LABEL_LINES * LINE_HEIGHT + 4
TITLE_HEIGHT: Final = 32
ROW_HEIGHT: Final = THUMB_HEIGHT + LABEL_HEIGHT + PADDING
CHECKER: Final = 10
TEXT_LINES: Final = (THUMB_HEIGHT - 8) // LINE_HEIGHT

BACKGROUND: Final = (255, 255, 255)
INK: Final = (32, 32, 32)
CHECKER_LIGHT: Final = (236, 236, 236)
CHECKER_DARK: Final = (200, 200, 200)
TEXT_TILE: Final = (248, 246, 232)
#: The keys a data answer names its items by, in the order they are looked for.
_ITEM_NAMES: Final = ("tag", "label", "name", "description", "color", "value")


@dataclass(frozen=True)
class SheetItem:
    """An image (or a JSON answer) as bytes or a file, and its label; "\\n" starts the label's second line."""

    content: bytes | Path
    label: str


@dataclass(frozen=True)
class SheetRow:
    source: SheetItem
    outputs: Sequence[SheetItem]


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @property
    def corners(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.left + self.width, self.top + self.height)


@dataclass(frozen=True)
class PlacedTile:
    """Where one item went: its tile (thumbnail area) and its label underneath; `text` when shown as text."""

    label: str
    tile: Box
    label_box: Box
    text: bool


@dataclass(frozen=True)
class ContactSheet:
    path: Path
    size: tuple[int, int]
    rows: tuple[tuple[PlacedTile, ...], ...]


def tile_width(image_size: tuple[int, int]) -> int:
    """The tile's width for an image of this size scaled to THUMB_HEIGHT, within MIN and MAX_TILE_WIDTH."""
    width, height = image_size
    scaled = round(width * THUMB_HEIGHT / max(height, 1))
    return max(MIN_TILE_WIDTH, min(MAX_TILE_WIDTH, scaled))


def write_contact_sheet(rows: Sequence[SheetRow], path: Path, title: str = "Picsart adapter") -> ContactSheet:
    """Draw the rows into one PNG at `path`; return where each tile went."""
    font = ImageFont.load_default(size=FONT_SIZE)
    title_font = ImageFont.load_default(size=FONT_SIZE + 6)
    prepared = [[_prepare(item) for item in (row.source, *row.outputs)] for row in rows]
    widths = [PADDING + sum(tile.width + PADDING for tile in row) for row in prepared]
    width = max([*widths, MIN_TILE_WIDTH + 2 * PADDING])
    height = TITLE_HEIGHT + len(prepared) * ROW_HEIGHT + PADDING
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text(
        (PADDING, (TITLE_HEIGHT - FONT_SIZE - 6) // 2),
        _fit(title, width - 2 * PADDING, title_font, draw),
        fill=INK,
        font=title_font,
    )
    placed_rows: list[tuple[PlacedTile, ...]] = []
    for index, (row, tiles) in enumerate(zip(rows, prepared, strict=True)):
        top = TITLE_HEIGHT + index * ROW_HEIGHT
        left = PADDING
        placed: list[PlacedTile] = []
        for item, tile in zip((row.source, *row.outputs), tiles, strict=True):
            box = Box(left, top, tile.width, THUMB_HEIGHT)
            label_box = Box(left, top + THUMB_HEIGHT + 2, tile.width, LABEL_HEIGHT - 2)
            tile.draw(sheet, draw, box, font)
            for number, line in enumerate(item.label.splitlines()[:LABEL_LINES]):
                shown = _fit(line, tile.width, font, draw)
                draw.text((label_box.left, label_box.top + number * LINE_HEIGHT), shown, fill=INK, font=font)
            placed.append(PlacedTile(item.label, box, label_box, text=tile.image is None))
            left += tile.width + PADDING
        placed_rows.append(tuple(placed))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return ContactSheet(path=path, size=sheet.size, rows=tuple(placed_rows))


@dataclass(frozen=True)
class _Tile:
    """An item ready to draw: an RGBA image at thumbnail scale, or text lines."""

    width: int
    image: Image.Image | None = None
    lines: tuple[str, ...] = ()

    def draw(
        self,
        sheet: Image.Image,
        draw: ImageDraw.ImageDraw,
        box: Box,
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    ) -> None:
        if self.image is None:
            draw.rectangle(box.corners, fill=TEXT_TILE, outline=CHECKER_DARK)
            for number, line in enumerate(self.lines[:TEXT_LINES]):
                shown = _fit(line, box.width - 8, font, draw)
                draw.text((box.left + 4, box.top + 4 + number * LINE_HEIGHT), shown, fill=INK, font=font)
            return
        # Centred in its tile; the checkerboard lies under the image only, so the margins read as margins.
        left = box.left + (box.width - self.image.width) // 2
        top = box.top + (box.height - self.image.height) // 2
        sheet.paste(_checkerboard(self.image.size), (left, top))
        sheet.paste(self.image, (left, top), self.image)


def _prepare(item: SheetItem) -> _Tile:
    data = item.content.read_bytes() if isinstance(item.content, Path) else item.content
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            return _Tile(TEXT_TILE_WIDTH, lines=data_lines(json.loads(data)))
        except ValueError:
            pass  # not JSON after all: perhaps an image, else shown as text below
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGBA")
    except (UnidentifiedImageError, OSError):
        text = data[:2000].decode("utf-8", errors="replace")
        lines = ["(not an image Pillow reads)", *(line.strip() for line in text.splitlines() if line.strip())]
        return _Tile(TEXT_TILE_WIDTH, lines=tuple(lines))
    width = tile_width(image.size)
    scale = min(THUMB_HEIGHT / max(image.height, 1), MAX_TILE_WIDTH / max(image.width, 1))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return _Tile(width, image=image.resize(size, Image.Resampling.LANCZOS))


def data_lines(document: Any) -> tuple[str, ...]:
    """What a data answer's text tile shows: its items' names (with their confidence) when it lists some, else its
    JSON, indented. Picsart's spec leaves the answer's `data` as any object, so this looks for the first list."""
    body = document.get("data", document) if isinstance(document, dict) else document
    items = _first_list(body)
    if items:
        names = [_item_name(item) for item in items]
        shown = [name for name in names if name is not None]
        if len(shown) == len(names):
            return tuple(shown)
    return tuple(json.dumps(body, indent=1, ensure_ascii=False).splitlines())


def _first_list(value: Any) -> list[Any] | None:
    """The first non-empty list in the answer, looking through nested objects breadth-first."""
    pending = [value]
    while pending:
        current = pending.pop(0)
        if isinstance(current, list) and current:
            return current
        if isinstance(current, dict):
            pending.extend(current.values())
    return None


def _item_name(item: Any) -> str | None:
    if isinstance(item, str | int | float):
        return str(item)
    if isinstance(item, dict):
        for key in _ITEM_NAMES:
            if isinstance(item.get(key), str | int | float):
                confidence = item.get("confidence")
                shown = f" ({confidence:.2f})" if isinstance(confidence, float) else ""
                return f"{item[key]}{shown}"
    return None


def _checkerboard(size: tuple[int, int]) -> Image.Image:
    board = Image.new("RGB", size, CHECKER_LIGHT)
    draw = ImageDraw.Draw(board)
    for y in range(0, size[1], CHECKER):
        for x in range((y // CHECKER) % 2 * CHECKER, size[0], 2 * CHECKER):
            draw.rectangle((x, y, x + CHECKER - 1, y + CHECKER - 1), fill=CHECKER_DARK)
    return board


def _fit(text: str, width: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, draw: ImageDraw.ImageDraw) -> str:
    """The text, cut in the middle where it would run past `width` pixels: an output key's start (the pipeline's
    folder) and its end (the file name) both say which output it is."""
    if draw.textlength(text, font=font) <= width:
        return text
    head, tail = text[: len(text) // 2], text[len(text) // 2 :]
    while (head or tail) and draw.textlength(f"{head}...{tail}", font=font) > width:
        if len(head) >= len(tail):
            head = head[:-1]
        else:
            tail = tail[1:]
    return f"{head}...{tail}"
