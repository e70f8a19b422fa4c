"""The emulator's answers to tool calls: successes and each documented error status."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import urllib3

from picsart_local.emulator.imaging import EncodedImage
from picsart_local.emulator.results import ResultStore

from .support import API_KEY, FIVE_HEADERS, Api


def _assert_error(response: urllib3.BaseHTTPResponse, status: int, message: str) -> str:
    """An error in Picsart's shape, with all five headers; returns the detail."""
    assert response.status == status, response.data
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == status
    assert body["message"] == message
    assert isinstance(body["detail"], str)
    assert body["detail"]
    for header in FIVE_HEADERS:
        assert header in response.headers, header
    return str(body["detail"])


# --- successes -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["object.png", "object.jpg"])
def test_removebg_cutout_has_transparent_background_and_opaque_object(api: Api, name: str) -> None:
    response = api.post("removebg", {"image_url": api.image_url(name)})

    assert response.status == 200, response.data
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["url"] == f"{api.emulator.root_url}/results/{body['data']['id']}.png"
    result = api.fetch_result(response)
    assert result.format == "PNG"
    assert result.mode == "RGBA"
    assert result.size == (160, 120)
    alpha = result.getchannel("A")
    assert alpha.getextrema() == (0, 255)
    assert alpha.getpixel((2, 2)) == 0  # background corner
    assert alpha.getpixel((80, 60)) == 255  # middle of the object


def test_removebg_mask_is_a_greyscale_image(api: Api) -> None:
    response = api.removebg(output_type="mask")

    assert response.status == 200, response.data
    mask = api.fetch_result(response)
    assert mask.mode == "L"
    assert mask.getpixel((2, 2)) == 0
    assert mask.getpixel((80, 60)) == 255


def test_removebg_bg_color_and_jpg_format(api: Api) -> None:
    response = api.removebg(bg_color="#00ff00", format="JPG")

    assert response.status == 200, response.data
    assert response.json()["data"]["url"].endswith(".jpg")
    result = api.fetch_result(response)
    assert result.format == "JPEG"
    red, green, blue = result.convert("RGB").getpixel((2, 2))  # type: ignore[misc]
    # The plain background became green.
    assert green > 200
    assert red < 60
    assert blue < 60


def test_removebg_accepts_a_json_body(api: Api) -> None:
    response = api.post("removebg", json_body={"image_url": api.image_url(), "bg_blur": 10, "format": "WEBP"})

    assert response.status == 200, response.data
    result = api.fetch_result(response)
    assert result.format == "WEBP"
    assert result.getchannel("A").getextrema() == (0, 255)


def test_removebg_accepts_an_uploaded_image(api: Api, image_dir: Path) -> None:
    data = (image_dir / "object.png").read_bytes()
    response = api.post("removebg", {"image": ("object.png", data, "image/png")})

    assert response.status == 200, response.data
    assert response.json()["data"]["id"]


def test_upscale_doubles_the_size_and_defaults_to_jpg(api: Api) -> None:
    response = api.post("upscale", {"image_url": api.image_url(), "upscale_factor": "2"})

    assert response.status == 200, response.data
    assert response.json()["data"]["url"].endswith(".jpg")
    result = api.fetch_result(response)
    assert result.format == "JPEG"
    assert result.size == (320, 240)


def test_upscale_honours_factor_and_format(api: Api) -> None:
    response = api.post("upscale", {"image_url": api.image_url("object.jpg"), "upscale_factor": "4", "format": "PNG"})

    assert response.status == 200, response.data
    result = api.fetch_result(response)
    assert (result.format, result.size) == ("PNG", (640, 480))


def test_success_consumes_one_credit(make_api: Callable[..., Api]) -> None:
    api = make_api(credits=10)

    response = api.removebg()

    assert response.status == 200
    assert response.headers["X-Picsart-Credit-Available"] == "9"
    assert api.balance().json() == {"credits": 9}
    assert api.emulator.credits == 9


def test_balance_answers_credits_with_the_five_headers(make_api: Callable[..., Api]) -> None:
    api = make_api(credits=42)

    response = api.balance()

    assert response.status == 200
    assert response.json() == {"credits": 42}
    for header in FIVE_HEADERS:
        assert header in response.headers


# --- 401, 404, 405, 406 ----------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong-key", API_KEY + "x"])
def test_401_without_the_right_key(api: Api, key: str | None) -> None:
    response = api.post("removebg", {"image_url": api.image_url()}, headers=api.headers(key=key))

    _assert_error(response, 401, "Unauthorized")
    assert api.emulator.calls()[-1].status == 401


@pytest.mark.parametrize("accept", [None, "*/*", "text/html", "application/*", "application/xml"])
def test_406_without_accept_application_json(api: Api, accept: str | None) -> None:
    response = api.post("removebg", {"image_url": api.image_url()}, headers=api.headers(accept=accept))

    _assert_error(response, 406, "Not Acceptable")


def test_accept_with_json_among_others_is_enough(api: Api) -> None:
    response = api.balance(headers=api.headers(accept="text/html, application/json;q=0.9"))

    assert response.status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/tools/1.0//removebg",
        "//tools/1.0/removebg",  # a leading double slash, which URL parsing likes to fold away
        "/tools//1.0/removebg",
        "/tools/1.0/removebg//",
        "/tools/1.0/nope",
        "/tools/1.0/removebg/",
        "/tools/2.0/removebg",
    ],
)
def test_404_unknown_path_or_double_slash(api: Api, path: str) -> None:
    response = api.http.request(
        "POST", api.emulator.root_url + path, fields={"image_url": api.image_url()}, headers=api.headers()
    )

    assert response.status == 404
    assert response.json()["code"] == 404
    assert "X-Picsart-Correlation-Id" in response.headers
    assert api.emulator.calls()[-1].status == 404


def test_404_double_slash_answers_with_the_five_headers(api: Api) -> None:
    response = api.http.request("POST", api.emulator.base_url + "//removebg", headers=api.headers())

    _assert_error(response, 404, "Not Found")


@pytest.mark.parametrize(("method", "tool", "allow"), [("GET", "removebg", "POST"), ("POST", "balance", "GET")])
def test_405_wrong_method(api: Api, method: str, tool: str, allow: str) -> None:
    response = api.http.request(method, f"{api.emulator.base_url}/{tool}", headers=api.headers())

    _assert_error(response, 405, "Method Not Allowed")
    assert response.headers["Allow"] == allow


# --- 400, 413, 415 ---------------------------------------------------------------------------


def test_413_when_the_fetched_image_is_too_large(make_api: Callable[..., Api]) -> None:
    api = make_api(max_input_bytes=200)

    detail = _assert_error(api.removebg(), 413, "Request Entity Too Large")

    assert "200 bytes" in detail


def test_413_when_the_upscale_input_has_too_many_pixels(make_api: Callable[..., Api]) -> None:
    api = make_api(max_upscale_input_pixels=160 * 120 - 1)

    upscale = api.post("upscale", {"image_url": api.image_url(), "upscale_factor": "2"})
    removebg = api.removebg()

    assert "pixels" in _assert_error(upscale, 413, "Request Entity Too Large")
    assert removebg.status == 200  # the pixel limit is the upscale one only


def test_415_when_the_content_is_not_an_image(api: Api) -> None:
    response = api.post("removebg", {"image_url": api.image_url("notes.txt")})

    detail = _assert_error(response, 415, "Unsupported Media Type")
    assert "image" in detail


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_415_wrong_body_type(api: Api, content_type: str | None) -> None:
    headers = api.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = api.http.request(
        "POST", f"{api.emulator.base_url}/removebg", body=f"image_url={api.image_url()}", headers=headers
    )

    _assert_error(response, 415, "Unsupported Media Type")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"image_url": '),
        ("application/json", b'["not", "an", "object"]'),
        ("multipart/form-data", b"no boundary given"),
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1'),
    ],
)
def test_400_malformed_body(api: Api, content_type: str, body: bytes) -> None:
    headers = {**api.headers(), "Content-Type": content_type}
    response = api.http.request("POST", f"{api.emulator.base_url}/removebg", body=body, headers=headers)

    _assert_error(response, 400, "Bad Request")


def test_400_when_the_image_url_answers_404_without_echoing_the_query(api: Api) -> None:
    url = api.image_url("missing.png", "?X-Amz-Signature=SECRET-SIG")

    detail = _assert_error(api.post("removebg", {"image_url": url}), 400, "Bad Request")

    assert "404" in detail
    assert "SECRET-SIG" not in detail


def test_400_when_the_image_url_cannot_be_reached(api: Api) -> None:
    # Port 9 on loopback (discard) is practically never listening: connection refused.
    response = api.post("removebg", {"image_url": "http://127.0.0.1:9/x.png?sig=SECRET-SIG"})

    detail = _assert_error(response, 400, "Bad Request")
    assert "SECRET-SIG" not in detail


# --- 422 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bg_blur", "102"),
        ("bg_blur", "-1"),
        ("bg_blur", "abc"),
        ("bg_blur", "1.5"),
        ("stroke_size", "101"),
        ("stroke_opacity", "-5"),
        ("shadow_opacity", "200"),
        ("shadow_offset_x", "101"),
        ("shadow_offset_y", "-101"),
        ("output_type", "sticker"),
        ("scale", "stretch"),
        ("shadow", "everywhere"),
        ("format", "GIF"),
        ("format", "png"),
        ("auto_center", "yes"),
        ("bg_color", "not-a-colour"),
        ("model", "urn:air:picsart:model:picsart:sod@99"),
    ],
)
def test_422_invalid_removebg_parameter_names_the_field(api: Api, field: str, value: str) -> None:
    detail = _assert_error(api.removebg(**{field: value}), 422, "Unprocessable Entity")

    assert detail.startswith(field)


def test_422_bg_blur_102_is_out_of_range(api: Api) -> None:
    detail = _assert_error(api.removebg(bg_blur="102"), 422, "Unprocessable Entity")

    assert "bg_blur" in detail
    assert "0 to 100" in detail


def test_valid_optional_parameters_are_accepted(api: Api) -> None:
    response = api.removebg(
        bg_blur="100",
        scale="fill",
        auto_center="true",
        stroke_size="0",
        stroke_color="#fff",
        shadow="custom",
        shadow_offset_x="-100",
        shadow_offset_y="100",
        model="urn:air:picsart:model:picsart:sod@11",
    )

    assert response.status == 200, response.data


def test_422_two_image_inputs(api: Api) -> None:
    response = api.post("removebg", {"image_url": api.image_url(), "image_id": "abc123"})

    detail = _assert_error(response, 422, "Unprocessable Entity")
    assert "image_url" in detail
    assert "image_id" in detail


def test_422_no_body_at_all_is_a_call_without_an_input(api: Api) -> None:
    response = api.http.request("POST", f"{api.emulator.base_url}/removebg", headers=api.headers())

    assert _assert_error(response, 422, "Unprocessable Entity").startswith("image_url")


def test_422_no_image_input(api: Api) -> None:
    detail = _assert_error(api.post("removebg", {"format": "PNG"}), 422, "Unprocessable Entity")

    assert "image_url" in detail


def test_image_id_names_an_earlier_result(api: Api) -> None:
    """The spec's deprecated image_id: "result image ID from a different API", here an earlier data.id."""
    first = api.removebg()
    assert first.status == 200

    response = api.post("upscale", {"image_id": first.json()["data"]["id"], "upscale_factor": "2", "format": "PNG"})

    assert response.status == 200, response.data
    result = api.fetch_result(response)
    assert (result.size, result.getchannel("A").getextrema()) == ((320, 240), (0, 255))


def test_bg_image_id_names_an_earlier_result(api: Api) -> None:
    backdrop = api.post("adjust", {"image_url": api.image_url(), "hue": "60", "format": "PNG"})
    assert backdrop.status == 200

    response = api.removebg(bg_image_id=backdrop.json()["data"]["id"])

    assert response.status == 200, response.data
    assert api.fetch_result(response).getchannel("A").getextrema() == (255, 255)  # the backdrop fills it


@pytest.mark.parametrize("field", ["image_id", "bg_image_id"])
def test_400_for_an_unknown_image_id(api: Api, field: str) -> None:
    fields = {field: "0" * 32} if field == "image_id" else {"image_url": api.image_url(), field: "0" * 32}

    detail = _assert_error(api.post("removebg", fields), 400, "Bad Request")

    assert detail.startswith(field)


@pytest.mark.parametrize("null", ["", "null"])
def test_a_nullable_form_field_given_as_null_is_absent(api: Api, null: str) -> None:
    response = api.removebg(bg_color=null, bg_image_url=null, stroke_size=null, model=null)

    assert response.status == 200, response.data
    assert api.fetch_result(response).getchannel("A").getextrema() == (0, 255)  # no background was put in


def test_null_is_no_value_for_a_field_that_is_not_nullable(api: Api) -> None:
    detail = _assert_error(api.removebg(bg_blur="null"), 422, "Unprocessable Entity")

    assert detail.startswith("bg_blur")


@pytest.mark.parametrize("size", ["0", "-3", "100000"])
def test_bg_width_and_height_take_any_integer_as_the_spec_does(api: Api, size: str) -> None:
    assert api.removebg(bg_width=size, bg_height=size).status == 200


@pytest.mark.parametrize("url", ["", "ftp://example.invalid/x.png", "not a url", "http://x/" + "a" * 2080])
def test_422_invalid_image_url(api: Api, url: str) -> None:
    detail = _assert_error(api.post("removebg", {"image_url": url}), 422, "Unprocessable Entity")

    assert detail.startswith("image_url")


def test_422_missing_upscale_factor(api: Api) -> None:
    detail = _assert_error(api.post("upscale", {"image_url": api.image_url()}), 422, "Unprocessable Entity")

    assert detail.startswith("upscale_factor")


@pytest.mark.parametrize("factor", ["3", "1", "16", "two"])
def test_422_upscale_factor_outside_the_enum(api: Api, factor: str) -> None:
    response = api.post("upscale", {"image_url": api.image_url(), "upscale_factor": factor})

    assert _assert_error(response, 422, "Unprocessable Entity").startswith("upscale_factor")


def test_a_parameter_the_spec_does_not_name_is_ignored(api: Api) -> None:
    """The spec's body schemas do not forbid other properties, so a schema-valid call may carry them."""
    response = api.removebg(colour_magic="1")

    assert response.status == 200, response.data


@pytest.mark.parametrize("field", ["image", "bg_image", "bg_image_id"])
def test_422_a_multipart_only_field_in_a_json_body(api: Api, field: str) -> None:
    response = api.post("removebg", json_body={"image_url": api.image_url(), field: "x"})

    assert _assert_error(response, 422, "Unprocessable Entity").startswith(field)


def test_422_repeated_field(api: Api) -> None:
    fields = [("image_url", api.image_url()), ("bg_blur", "1"), ("bg_blur", "2")]

    detail = _assert_error(api.post("removebg", fields), 422, "Unprocessable Entity")

    assert detail.startswith("bg_blur")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bg_blur": "10"}, "bg_blur"),  # JSON integers must be numbers
        ({"bg_blur": [10]}, "bg_blur"),  # an array where a value is expected
        ({"auto_center": "true"}, "auto_center"),
        ({"model": "urn:air:picsart:model:picsart:sod@11"}, "model"),  # JSON allows sod@10 only
    ],
)
def test_422_json_types_are_strict(api: Api, body: dict[str, object], field: str) -> None:
    response = api.post("removebg", json_body={"image_url": api.image_url(), **body})

    assert _assert_error(response, 422, "Unprocessable Entity").startswith(field)


def test_failed_calls_do_not_consume_credits(make_api: Callable[..., Api]) -> None:
    api = make_api(credits=5)

    invalid = api.removebg(bg_blur="102")
    not_image = api.post("removebg", {"image_url": api.image_url("notes.txt")})

    assert (invalid.status, not_image.status) == (422, 415)
    assert not_image.headers["X-Picsart-Credit-Available"] == "5"
    assert api.balance().json() == {"credits": 5}


def test_error_bodies_are_json(api: Api) -> None:
    response = api.http.request("GET", api.emulator.base_url + "/nope", headers=api.headers())

    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.data)["code"] == 404


def test_a_result_is_served_for_its_lifetime_however_many_follow() -> None:
    """A pipeline's later step fetches the first step's result URL after minutes of waiting, when thousands of
    later results were stored (Picsart keeps result URLs about 24 hours)."""
    store = ResultStore(lambda: 86_400.0)
    first = store.put(EncodedImage(b"first", "png", "image/png"))
    for _ in range(5_000):
        store.put(EncodedImage(b"later", "png", "image/png"))
    kept = store.get(first)
    assert kept is not None
    assert kept.data == b"first"


def test_a_result_past_its_lifetime_is_gone(api: Api) -> None:
    response = api.removebg()
    assert response.status == 200, response.data
    assert api.fetch_result(response).size == (160, 120), "served within its lifetime"

    api.emulator.reconfigure(result_lifetime_seconds=1e-6)  # read at each use: the result is now past it
    gone = api.http.request("GET", response.json()["data"]["url"])

    assert gone.status == 404
