"""/tags, a data tool, and pipelines chaining each step's result URL into the next step's image_url as given."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from .support import Api


def _upload(image: Image.Image) -> tuple[str, bytes, str]:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return ("input.png", buffer.getvalue(), "image/png")


def _tags(api: Api, fields: dict[str, object]) -> dict[str, float]:
    response = api.post("tags", fields)
    assert response.status == 200, response.data
    body = response.json()
    assert body["status"] == "success"
    assert set(body["data"]) == {"tags"}
    tags = body["data"]["tags"]
    confidences = [tag["confidence"] for tag in tags]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0 < c <= 1 for c in confidences)
    return {tag["label"]: tag["confidence"] for tag in tags}


def test_tags_name_orientation_and_main_colours(api: Api) -> None:
    tags = _tags(api, {"image_url": api.image_url()})

    # 160x120: a red disc (about a quarter of the picture) on a light background.
    assert list(tags) == ["landscape", "white", "red"]
    assert tags["landscape"] == 1.0
    assert 0.6 < tags["white"] < 0.8
    assert 0.2 < tags["red"] < 0.35


def test_tags_are_the_same_for_the_same_image(api: Api) -> None:
    first = api.post("tags", {"image_url": api.image_url()})
    second = api.post("tags", {"image_url": api.image_url()})

    assert first.json() == second.json()


@pytest.mark.parametrize(
    ("size", "colour", "expected"),
    [
        # Both tags have confidence 1 here: ties go by label.
        ((30, 60), (20, 160, 40), ["green", "portrait"]),
        ((50, 50), (250, 220, 30), ["square", "yellow"]),
        ((51, 50), (10, 10, 10), ["black", "square"]),  # within 2 % is square
        ((90, 40), (40, 60, 200), ["blue", "landscape"]),
    ],
)
def test_tags_of_plain_images(
    api: Api, size: tuple[int, int], colour: tuple[int, int, int], expected: list[str]
) -> None:
    assert list(_tags(api, {"image": _upload(Image.new("RGB", size, colour))})) == expected


def test_transparent_when_some_pixels_are_see_through(api: Api) -> None:
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((230, 120, 20, 255), (0, 0, 40, 30))

    tags = _tags(api, {"image": _upload(image)})

    assert list(tags) == ["orange", "square", "transparent"]  # orange covers every opaque pixel: 1.0


def test_an_opaque_rgba_image_is_not_transparent(api: Api) -> None:
    assert "transparent" not in _tags(api, {"image": _upload(Image.new("RGBA", (20, 20), (200, 200, 200, 255)))})


def test_tags_answer_data_and_no_url_whatever_else_is_sent(api: Api) -> None:
    # /tags has no format parameter: one sent is a name the spec does not give it, and is ignored.
    response = api.post("tags", {"image_url": api.image_url(), "format": "PNG"})

    assert response.status == 200, response.data
    assert set(response.json()["data"]) == {"tags"}


def test_a_json_body_works_too(api: Api) -> None:
    response = api.post("tags", json_body={"image_url": api.image_url()})

    assert response.status == 200
    assert response.json()["data"]["tags"][0] == {"label": "landscape", "confidence": 1.0}


def test_removebg_then_upscale_then_tags_through_result_urls(api: Api) -> None:
    """Each step's data.url goes into the next step's image_url exactly as given, as pipelines do."""
    cutout = api.post("removebg", {"image_url": api.image_url()})
    assert cutout.status == 200, cutout.data
    cutout_url = cutout.json()["data"]["url"]

    upscaled = api.post("upscale", {"image_url": cutout_url, "upscale_factor": "2", "format": "PNG"})
    assert upscaled.status == 200, upscaled.data
    upscaled_url = upscaled.json()["data"]["url"]
    result = api.fetch_result(upscaled)
    assert (result.format, result.size, result.mode) == ("PNG", (320, 240), "RGBA")
    assert result.getchannel("A").getextrema() == (0, 255)  # the cut-out's transparency came through

    tags = _tags(api, {"image_url": upscaled_url})

    # The background is gone: what is left is the red disc and its dark blue square.
    assert list(tags) == ["landscape", "transparent", "red", "blue"]
    cutout_path = cutout_url.removeprefix(api.emulator.root_url)
    upscaled_path = upscaled_url.removeprefix(api.emulator.root_url)
    records = [r for r in api.emulator.calls() if r.tool is not None]
    assert [(r.tool, r.status) for r in records] == [("removebg", 200), ("upscale", 200), ("tags", 200)]
    assert [r.image_url_path for r in records[1:]] == [cutout_path, upscaled_path]
    # The emulator fetched its own results over HTTP, as Picsart fetches any image_url.
    fetched = [r.path for r in api.emulator.calls() if r.method == "GET" and r.status == 200]
    assert cutout_path in fetched
    assert upscaled_path in fetched
    assert api.emulator.credits == 1_000_000 - 3
