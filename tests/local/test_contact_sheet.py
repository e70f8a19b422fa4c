"""The contact sheet: one row per source, its outputs beside it, every tile at the thumbnail height on a
checkerboard and labelled; its size follows from the constants."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from picsart_local.contact_sheet import (
    BACKGROUND,
    CHECKER_DARK,
    CHECKER_LIGHT,
    LABEL_HEIGHT,
    MAX_TILE_WIDTH,
    MIN_TILE_WIDTH,
    PADDING,
    TEXT_TILE_WIDTH,
    THUMB_HEIGHT,
    TITLE_HEIGHT,
    Box,
    SheetItem,
    SheetRow,
    data_lines,
    write_contact_sheet,
)

H = THUMB_HEIGHT
TAGS_ANSWER = {"status": "success", "data": {"tags": [{"tag": "mug", "confidence": 0.93}, {"tag": "red"}]}}


def png(size: tuple[int, int], colour: tuple[int, int, int, int]) -> bytes:
    image = Image.new("RGBA", size, colour)
    # A mark, so a scaled tile holds more than one colour.
    image.paste((0, 0, 0, 255), (0, 0, max(1, size[0] // 4), max(1, size[1] // 4)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def colours(sheet: Image.Image, box: Box) -> set[tuple[int, ...]]:
    found = sheet.crop(box.corners).getcolors(maxcolors=1_000_000)
    assert found is not None
    return {colour for _, colour in found}


@pytest.fixture
def rows(tmp_path: Path) -> list[SheetRow]:
    first = tmp_path / "first.png"
    first.write_bytes(png((2 * H, H), (200, 40, 40, 255)))  # from a file
    return [
        SheetRow(
            SheetItem(first, "source\nproducts/first.png"),
            # Transparent but for its mark: the checkerboard shows through.
            [SheetItem(png((H, H), (40, 40, 200, 0)), "cutout-white\nproducts-white/products/first.jpg")],
        ),
        SheetRow(
            SheetItem(png((3 * H // 2, H), (40, 160, 40, 255)), "source\nrandom/IMG.Jpg"),
            [
                SheetItem(png((H // 2, 2 * H), (90, 90, 90, 255)), "narrow"),
                SheetItem(json.dumps(TAGS_ANSWER).encode(), "tags\ntags/random/IMG.Jpg.json"),
                SheetItem(png((10 * H, H), (10, 120, 120, 255)), "panorama"),
            ],
        ),
    ]


def test_the_sheet_has_a_row_per_source_with_its_outputs_sized_from_the_constants(
    rows: list[SheetRow], tmp_path: Path
) -> None:
    # The fixture's sizes assume these bounds: H and 2H fit a tile, H/2 and 10H do not.
    assert MIN_TILE_WIDTH < H
    assert 2 * H < MAX_TILE_WIDTH < 10 * H
    sheet = write_contact_sheet(rows, tmp_path / "out" / "sheet.png", title="demo")
    first_widths = [2 * H, H]
    # The narrow image is a quarter as wide as it is high: its tile is the minimum width.
    second_widths = [3 * H // 2, MIN_TILE_WIDTH, TEXT_TILE_WIDTH, MAX_TILE_WIDTH]
    width = max(PADDING + sum(w + PADDING for w in widths) for widths in (first_widths, second_widths))
    height = TITLE_HEIGHT + 2 * (H + LABEL_HEIGHT + PADDING) + PADDING
    assert sheet.size == (width, height)
    assert [[tile.tile.width for tile in row] for row in sheet.rows] == [first_widths, second_widths]
    for number, row in enumerate(sheet.rows):
        tops = {tile.tile.top for tile in row}
        assert tops == {TITLE_HEIGHT + number * (H + LABEL_HEIGHT + PADDING)}
        lefts = [tile.tile.left for tile in row]
        assert lefts[0] == PADDING
        for left, tile, after in zip(lefts, row, lefts[1:], strict=False):
            assert after == left + tile.tile.width + PADDING
        for tile in row:
            assert tile.tile.height == H
            assert tile.label_box.top >= tile.tile.top + H
    assert [tile.text for tile in sheet.rows[1]] == [False, False, True, False]
    assert sheet.rows[0][1].label == "cutout-white\nproducts-white/products/first.jpg"


def test_the_sheet_is_a_png_whose_tiles_and_labels_are_drawn(rows: list[SheetRow], tmp_path: Path) -> None:
    path = tmp_path / "sheet.png"
    sheet = write_contact_sheet(rows, path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as opened:
        assert opened.format == "PNG"
        assert opened.size == sheet.size
        image = opened.convert("RGB")
    for row in sheet.rows:
        for tile in row:
            assert len(colours(image, tile.tile)) > 1, f"the tile of {tile.label!r} is blank"
            assert colours(image, tile.label_box) - {BACKGROUND}, f"the label of {tile.label!r} is blank"
    title = Box(0, 0, sheet.size[0], TITLE_HEIGHT)
    assert colours(image, title) - {BACKGROUND}, "the title is blank"


def test_transparency_shows_as_the_checkerboard(rows: list[SheetRow], tmp_path: Path) -> None:
    sheet = write_contact_sheet(rows, tmp_path / "sheet.png")
    cutout = sheet.rows[0][1].tile
    with Image.open(sheet.path) as opened:
        image = opened.convert("RGB")
    # The bottom right of the cutout is fully transparent; its mark is at the top left.
    corner = Box(cutout.left + cutout.width // 2, cutout.top + H // 2, cutout.width // 2, H // 2)
    assert colours(image, corner) == {CHECKER_LIGHT, CHECKER_DARK}


def test_a_data_answer_shows_its_tags_else_its_first_lines() -> None:
    assert data_lines(TAGS_ANSWER) == ("mug (0.93)", "red")
    assert data_lines({"data": {"colors": ["#ff0000", "#00ff00"]}}) == ("#ff0000", "#00ff00")
    assert data_lines({"data": {"description": "a red mug"}}) == ("{", ' "description": "a red mug"', "}")


def test_an_output_pillow_cannot_read_is_a_text_tile(tmp_path: Path) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0"/></svg>'
    rows = [SheetRow(SheetItem(png((H, H), (1, 2, 3, 255)), "source"), [SheetItem(svg, "vectorizer")])]
    sheet = write_contact_sheet(rows, tmp_path / "sheet.png")
    (_, vector), *_ = sheet.rows
    assert vector.text
    assert vector.tile.width == TEXT_TILE_WIDTH
