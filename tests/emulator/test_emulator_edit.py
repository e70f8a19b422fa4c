"""/edit and /enhance/face: real Pillow work at the spec's paths, its parameters checked as the spec states them."""

from __future__ import annotations

import io

import pytest
import urllib3
from PIL import Image, ImageChops

from .support import BACKGROUND, Api

RED, BLUE = (220, 20, 30), (20, 40, 220)


def _upload(image: Image.Image) -> tuple[str, bytes, str]:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return ("input.png", buffer.getvalue(), "image/png")


def _halves() -> Image.Image:
    """Red on the left, blue on the right: shows which way a flip went."""
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    return image


def _ok(api: Api, response: urllib3.BaseHTTPResponse, extension: str) -> Image.Image:
    assert response.status == 200, response.data
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["url"] == f"{api.emulator.root_url}/results/{body['data']['id']}.{extension}"
    return api.fetch_result(response)


def _close(pixel: object, colour: tuple[int, ...], tolerance: int = 12) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


# --- enhance-face ----------------------------------------------------------------------------


def test_enhance_face_keeps_the_size_changes_pixels_and_defaults_to_jpg(api: Api) -> None:
    response = api.post("enhance/face", {"image_url": api.image_url()})

    result = _ok(api, response, "jpg")
    assert (result.format, result.size) == ("JPEG", (160, 120))
    original = Image.open(io.BytesIO(api.http.request("GET", api.image_url()).data)).convert("RGB")
    assert ImageChops.difference(original, result.convert("RGB")).getbbox() is not None


@pytest.mark.parametrize(("fmt", "pillow_format"), [("PNG", "PNG"), ("WEBP", "WEBP"), ("JPG", "JPEG")])
def test_enhance_face_honours_format(api: Api, fmt: str, pillow_format: str) -> None:
    response = api.post("enhance/face", {"image_url": api.image_url("object.jpg"), "format": fmt})

    assert _ok(api, response, fmt.lower()).format == pillow_format


def test_enhance_face_keeps_transparency(api: Api) -> None:
    image = Image.new("RGBA", (30, 30), (0, 0, 0, 0))
    image.paste((200, 150, 120, 255), (10, 10, 20, 20))

    response = api.post("enhance/face", {"image": _upload(image), "format": "PNG"})

    alpha = _ok(api, response, "png").getchannel("A")
    assert (alpha.getpixel((0, 0)), alpha.getpixel((15, 15))) == (0, 255)


@pytest.mark.parametrize(("field", "value"), [("format", "GIF"), ("format", "jpg"), ("format", "null")])
def test_enhance_face_checks_its_parameters(api: Api, field: str, value: str) -> None:
    response = api.post("enhance/face", {"image_url": api.image_url(), field: value})

    assert response.status == 422
    assert response.json()["detail"].startswith(field)


# --- edit: resize and crop -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({"mode": "resize", "width": "80"}, (80, 60)),  # the height follows the aspect ratio
        ({"mode": "resize", "height": "30"}, (40, 30)),
        ({"mode": "resize", "width": "100", "height": "30"}, (40, 30)),  # fits inside the box
        ({"mode": "resize", "size": "50", "width": "10"}, (50, 38)),  # size overrides width and height
        ({"mode": "resize", "width": "320"}, (160, 120)),  # never larger than the original
        ({"width": "80"}, (80, 60)),  # a size without a mode resizes
        ({"mode": "resize"}, (160, 120)),  # no size: nothing to do
        ({"mode": "resize", "width": "-5"}, (1, 1)),  # below 1 is 1
        ({"mode": "crop", "width": "40", "height": "20"}, (40, 20)),
        ({"mode": "crop", "width": "40"}, (40, 120)),  # a side not given is the whole side
        ({"mode": "crop", "size": "500"}, (160, 120)),
    ],
)
def test_edit_resize_and_crop_sizes(api: Api, fields: dict[str, str], size: tuple[int, int]) -> None:
    response = api.post("edit", {"image_url": api.image_url(), "format": "PNG", **fields})

    assert _ok(api, response, "png").size == size


def test_edit_thumbnail_as_the_example_rule_asks_is_a_webp(api: Api) -> None:
    response = api.post("edit", {"image_url": api.image_url(), "mode": "resize", "width": "64", "format": "WEBP"})

    result = _ok(api, response, "webp")
    assert (result.format, result.size) == ("WEBP", (64, 48))


def test_edit_defaults_to_jpg(api: Api) -> None:
    response = api.post("edit", {"image_url": api.image_url(), "mode": "resize", "width": "64"})

    assert _ok(api, response, "jpg").format == "JPEG"


def test_edit_crop_centres_on_crop_x_and_crop_y(api: Api) -> None:
    # The dark square of the test image spans (70, 50)-(90, 70).
    fields = {"mode": "crop", "width": "10", "height": "10", "crop_x": "80", "crop_y": "60", "format": "PNG"}

    result = _ok(api, api.post("edit", {"image_url": api.image_url(), **fields}), "png").convert("RGB")

    assert result.size == (10, 10)
    assert result.getcolors() == [(100, (20, 20, 60))]


@pytest.mark.parametrize(
    ("anchor", "colour"), [("top-left", RED), ("bottom-right", BLUE), ("top-right", BLUE), ("center", None)]
)
def test_edit_crop_anchor_places_the_window(api: Api, anchor: str, colour: tuple[int, int, int] | None) -> None:
    fields = {"mode": "crop", "width": "10", "height": "10", "crop_anchor": anchor, "format": "PNG"}

    result = _ok(api, api.post("edit", {"image": _upload(_halves()), **fields}), "png").convert("RGB")

    colours = {c for _, c in result.getcolors() or []}
    assert colours == ({RED, BLUE} if colour is None else {colour})


def test_edit_crop_window_stays_inside_the_image(api: Api) -> None:
    fields = {"mode": "crop", "width": "10", "height": "10", "crop_x": "-50", "crop_y": "999", "format": "PNG"}

    result = _ok(api, api.post("edit", {"image": _upload(_halves()), **fields}), "png").convert("RGB")

    assert result.size == (10, 10)
    assert result.getcolors() == [(100, RED)]  # pushed back to the bottom-left corner


# --- edit: flip, rotate, perspective, quality ----------------------------------------------


@pytest.mark.parametrize(("flip", "left"), [("horizontal", BLUE), ("vertical", RED)])
def test_edit_flip(api: Api, flip: str, left: tuple[int, int, int]) -> None:
    response = api.post("edit", {"image": _upload(_halves()), "flip": flip, "format": "PNG"})

    assert _ok(api, response, "png").convert("RGB").getpixel((2, 10)) == left


def test_edit_rotate_a_quarter_turn_clockwise_swaps_the_sides(api: Api) -> None:
    response = api.post("edit", {"image": _upload(_halves()), "rotate": "90", "format": "PNG"})

    result = _ok(api, response, "png").convert("RGB")
    assert result.size == (20, 40)
    # Clockwise: what was on the left (red) is now at the top.
    assert (result.getpixel((10, 2)), result.getpixel((10, 37))) == (RED, BLUE)


def test_edit_rotate_by_an_angle_grows_the_canvas_with_transparent_corners(api: Api) -> None:
    response = api.post("edit", {"image_url": api.image_url(), "rotate": "-30.5", "format": "PNG"})

    result = _ok(api, response, "png")
    assert result.width > 160
    assert result.height > 120
    assert result.getchannel("A").getpixel((0, 0)) == 0
    assert _close(result.getpixel((result.width // 2, result.height // 2)), (20, 20, 60, 255))


def test_edit_rotated_jpg_has_white_corners(api: Api) -> None:
    response = api.post("edit", {"image_url": api.image_url(), "rotate": "45"})

    result = _ok(api, response, "jpg")
    assert _close(result.convert("RGB").getpixel((0, 0)), (255, 255, 255))


@pytest.mark.parametrize(
    ("field", "value", "transparent", "opaque"),
    [
        ("perspective_horizontal", "30", (159, 0), (0, 0)),  # the right edge comes out narrower
        ("perspective_horizontal", "-30", (0, 0), (159, 0)),
        ("perspective_vertical", "30", (0, 119), (0, 0)),  # the bottom edge
        ("perspective_vertical", "-30", (0, 0), (0, 119)),
    ],
)
def test_edit_perspective_narrows_one_edge(
    api: Api, field: str, value: str, transparent: tuple[int, int], opaque: tuple[int, int]
) -> None:
    response = api.post("edit", {"image_url": api.image_url(), field: value, "format": "PNG"})

    result = _ok(api, response, "png")
    assert result.size == (160, 120)
    alpha = result.getchannel("A")
    assert (alpha.getpixel(transparent), alpha.getpixel(opaque)) == (0, 255)
    assert _close(result.getpixel(opaque), (*BACKGROUND, 255))


def test_edit_quality_sets_the_jpg_encoder_quality(api: Api) -> None:
    def size(quality: str) -> int:
        response = api.post("edit", {"image_url": api.image_url(), "quality": quality})
        assert response.status == 200, response.data
        return len(api.http.request("GET", response.json()["data"]["url"]).data)

    assert size("10") < size("100")


def test_edit_accepts_a_json_body_with_a_float_rotation(api: Api) -> None:
    body = {"image_url": api.image_url(), "rotate": 90.0, "mode": None, "width": None, "format": "PNG"}

    assert _ok(api, api.post("edit", json_body=body), "png").size == (120, 160)


# --- edit: 422 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "stretch"),
        ("width", "1.5"),
        ("height", "tall"),
        ("crop_anchor", "middle"),
        ("flip", "diagonal"),
        ("rotate", "180.5"),
        ("rotate", "-181"),
        ("rotate", "quarter"),
        ("rotate", "nan"),
        ("perspective_horizontal", "46"),
        ("perspective_vertical", "-46"),
        ("quality", "9"),
        ("quality", "101"),
        ("format", "TIFF"),
    ],
)
def test_edit_checks_its_parameters(api: Api, field: str, value: str) -> None:
    response = api.post("edit", {"image_url": api.image_url(), field: value})

    assert response.status == 422, response.data
    assert response.json()["detail"].startswith(field)


@pytest.mark.parametrize(("field", "value"), [("rotate", "12"), ("width", 1.5), ("quality", True)])
def test_edit_json_types_are_strict(api: Api, field: str, value: object) -> None:
    response = api.post("edit", json_body={"image_url": api.image_url(), field: value})

    assert response.status == 422, response.data
    assert response.json()["detail"].startswith(field)
