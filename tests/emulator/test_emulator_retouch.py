"""/adjust, /effects and GET /effects: real Pillow work keeping the size, parameters checked as the spec states."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import urllib3
from PIL import Image, ImageChops, ImageStat

from picsart_local.emulator.effects import EFFECT_NAMES

from .support import Api


def _fetch(api: Api, response: urllib3.BaseHTTPResponse) -> Image.Image:
    assert response.status == 200, response.data
    return api.fetch_result(response)


def _original(api: Api) -> Image.Image:
    image = Image.open(io.BytesIO(api.http.request("GET", api.image_url()).data))
    return image.convert("RGB")


def _differs(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is not None


def _adjusted(api: Api, **fields: str) -> Image.Image:
    response = api.post("adjust", {"image_url": api.image_url(), "format": "PNG", **fields})
    result = _fetch(api, response).convert("RGB")
    assert result.size == (160, 120)
    return result


# --- adjust ----------------------------------------------------------------------------------


def test_adjust_without_adjustments_returns_the_picture_unchanged(api: Api) -> None:
    assert not _differs(_adjusted(api), _original(api))


def test_adjust_defaults_to_jpg(api: Api) -> None:
    response = api.post("adjust", {"image_url": api.image_url(), "brightness": "10"})

    assert response.json()["data"]["url"].endswith(".jpg")
    assert _fetch(api, response).format == "JPEG"


def test_brightness_and_contrast(api: Api) -> None:
    original = ImageStat.Stat(_original(api).convert("L"))

    brighter = ImageStat.Stat(_adjusted(api, brightness="40").convert("L"))
    black = _adjusted(api, brightness="-100")
    flat = ImageStat.Stat(_adjusted(api, contrast="-100").convert("L"))

    assert brighter.mean[0] > original.mean[0]
    assert black.getextrema() == ((0, 0), (0, 0), (0, 0))
    assert flat.stddev[0] < 1 < original.stddev[0]


def test_saturation_minus_100_is_grey(api: Api) -> None:
    red, green, blue = _adjusted(api, saturation="-100").split()

    assert ImageChops.difference(red, green).getextrema()[1] <= 1
    assert ImageChops.difference(green, blue).getextrema()[1] <= 1


def test_hue_turns_red_towards_cyan(api: Api) -> None:
    red, green, blue = _adjusted(api, hue="100").getpixel((60, 40))  # type: ignore[misc]

    assert green > red
    assert blue > red


def test_temperature_warms_and_cools(api: Api) -> None:
    def red_minus_blue(image: Image.Image) -> float:
        stat = ImageStat.Stat(image)
        return float(stat.mean[0] - stat.mean[2])

    neutral = red_minus_blue(_original(api))

    assert (
        red_minus_blue(_adjusted(api, temperature="100")) > neutral > red_minus_blue(_adjusted(api, temperature="-100"))
    )


def test_vignette_darkens_the_corners_not_the_centre(api: Api) -> None:
    original, result = _original(api), _adjusted(api, vignette="100")

    assert sum(result.getpixel((0, 0))) < sum(original.getpixel((0, 0))) - 100  # type: ignore[arg-type]
    assert result.getpixel((80, 60)) == original.getpixel((80, 60))


def test_noise_is_the_same_for_the_same_picture(api: Api) -> None:
    first, second = _adjusted(api, noise="60"), _adjusted(api, noise="60")

    assert _differs(first, _original(api))
    assert not _differs(first, second)


@pytest.mark.parametrize("field", ["clarity", "shadows", "highlights", "sharpen"])
def test_each_adjustment_changes_the_picture(api: Api, field: str) -> None:
    assert _differs(_adjusted(api, **{field: "80"}), _original(api))


def test_adjust_keeps_transparency(api: Api) -> None:
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    image.paste((200, 100, 50, 255), (5, 5, 15, 15))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")

    response = api.post("adjust", {"image": ("a.png", buffer.getvalue(), "image/png"), "hue": "50", "format": "PNG"})

    alpha = _fetch(api, response).getchannel("A")
    assert (alpha.getpixel((0, 0)), alpha.getpixel((10, 10))) == (0, 255)


@pytest.mark.parametrize(
    ("field", "value"),
    [("brightness", "101"), ("hue", "-101"), ("sharpen", "-1"), ("noise", "101"), ("vignette", "x"), ("hue", "1.5")],
)
def test_adjust_checks_its_parameters(api: Api, field: str, value: str) -> None:
    response = api.post("adjust", {"image_url": api.image_url(), field: value})

    assert response.status == 422, response.data
    assert response.json()["detail"].startswith(field)


# --- effects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EFFECT_NAMES)
def test_every_effect_changes_the_picture_and_keeps_its_size(api: Api, name: str) -> None:
    response = api.post("effects", {"image_url": api.image_url(), "effect_name": name})

    result = _fetch(api, response)
    assert (result.format, result.size) == ("JPEG", (160, 120))
    assert _differs(result, _original(api))


def test_fade_100_gives_the_original_back_and_50_is_in_between(api: Api) -> None:
    def blurred(fade: str) -> Image.Image:
        fields = {"image_url": api.image_url(), "effect_name": "gblur", "fade": fade, "format": "PNG"}
        return _fetch(api, api.post("effects", fields)).convert("RGB")

    original, full, half, none = _original(api), blurred("0"), blurred("50"), blurred("100")

    assert not _differs(none, original)
    assert _differs(half, original)
    assert _differs(half, full)


def test_effects_without_fade_ignore_it(api: Api) -> None:
    fields = {"image_url": api.image_url(), "effect_name": "pixelize", "fade": "100", "format": "PNG"}

    assert _differs(_fetch(api, api.post("effects", fields)), _original(api))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "effect_name"),  # required
        ({"effect_name": "sepia"}, "effect_name"),
        ({"effect_name": "blur", "fade": "101"}, "fade"),
        ({"effect_name": "blur", "fade": "-1"}, "fade"),
        ({"effect_name": "blur", "format": "GIF"}, "format"),
    ],
)
def test_effects_check_their_parameters(api: Api, fields: dict[str, str], field: str) -> None:
    response = api.post("effects", {"image_url": api.image_url(), **fields})

    assert response.status == 422, response.data
    assert response.json()["detail"].startswith(field)


def test_get_effects_lists_the_names_and_costs_no_credit(make_api: Callable[..., Api]) -> None:
    api = make_api(credits=5, quota=10)

    response = api.http.request("GET", f"{api.emulator.base_url}/effects", headers=api.headers())

    assert response.status == 200
    assert response.json() == {"status": "success", "data": [{"name": name} for name in EFFECT_NAMES]}
    assert response.headers["X-Picsart-Credit-Available"] == "5"
    assert response.headers["X-Picsart-RateLimit-Available"] == "9"
    assert api.emulator.calls()[-1].tool == "effect-names"


def test_effects_path_allows_get_and_post(api: Api) -> None:
    response = api.http.request("PUT", f"{api.emulator.base_url}/effects", headers=api.headers())

    assert response.status == 405
    assert response.headers["Allow"] == "POST, GET"
