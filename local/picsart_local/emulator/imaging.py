"""Fetching, decoding and processing images with Pillow, standing in for Picsart's models.

The background removal is a colour key, not AI: the background colour is estimated from the
border pixels and pixels close to it become transparent, with a soft ramp at the edge. On the
usual test image (an object on a plain background) this yields a cutout with both fully
transparent and fully opaque pixels, which is what callers check.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import urllib3
from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

from .errors import ApiError
from .validation import Colour, OutputFormat

FETCH_TIMEOUT_SECONDS = 10.0
_CHUNK = 64 * 1024

# Colour distance (largest channel difference) under which a pixel is background, and over which
# it is fully foreground; in between alpha ramps, which gives the soft edge.
_KEY_LOW = 24
_KEY_HIGH = 72
_EDGE_BLUR_RADIUS = 1.0


@dataclass(frozen=True)
class EncodedImage:
    """An encoded result: bytes plus how it is served."""

    data: bytes
    extension: str
    content_type: str


_ENCODINGS: dict[OutputFormat, tuple[str, str, str]] = {
    # format -> (Pillow format name, file extension, content type)
    "JPG": ("JPEG", "jpg", "image/jpeg"),
    "PNG": ("PNG", "png", "image/png"),
    "WEBP": ("WEBP", "webp", "image/webp"),
}


#: The User-Agent of the emulator's own fetches: a result given as the next call's `image_url` is read by
#: Picsart itself, not downloaded by a client, so the result fault (`result_fault_rate`) spares it.
FETCH_USER_AGENT = "picsart-emulator-fetch"


def fetch(pool: urllib3.PoolManager, url: str, field: str, max_bytes: int) -> bytes:
    """GET an input image. Failure or a non-2xx answer -> 400; more than ``max_bytes`` -> 413.

    Details name the problem but never the URL: its query string may be a presigned signature.
    """
    retries = urllib3.Retry(total=5, connect=0, read=0, status=0, other=0, redirect=5)
    try:
        response = pool.request(
            "GET",
            url,
            preload_content=False,
            headers={"User-Agent": FETCH_USER_AGENT},
            retries=retries,
            timeout=urllib3.Timeout(connect=FETCH_TIMEOUT_SECONDS, read=FETCH_TIMEOUT_SECONDS),
        )
    except urllib3.exceptions.MaxRetryError as exc:
        reason = type(exc.reason).__name__ if exc.reason is not None else "too many redirects"
        raise ApiError(400, f"{field}: the image could not be fetched ({reason})") from None
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise ApiError(400, f"{field}: the image could not be fetched ({type(exc).__name__})") from None

    complete = False
    try:
        if not 200 <= response.status < 300:
            raise ApiError(400, f"{field}: the image could not be fetched (the source answered HTTP {response.status})")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ApiError(413, f"{field}: the image is {declared} bytes; the limit is {max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.stream(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, f"{field}: the image is larger than the limit of {max_bytes} bytes")
            chunks.append(chunk)
        complete = True
        return b"".join(chunks)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ApiError(400, f"{field}: the image download failed ({type(exc).__name__})") from None
    finally:
        if complete:
            response.release_conn()
        else:
            # Unread data would poison a pooled connection: close it instead.
            response.close()


def decode(data: bytes, field: str, max_pixels: int | None = None) -> Image.Image:
    """Decode an input image (first frame, EXIF orientation applied) into RGB or RGBA.

    Not an image Pillow can read -> 415; more than ``max_pixels`` pixels -> 413.
    """
    try:
        image: Image.Image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ApiError(413, f"{field}: the image has too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError(415, f"{field}: the content is not a supported image (JPG, PNG, WEBP, TIFF, ...)") from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ApiError(
            413,
            f"{field}: the image is {width}x{height} = {width * height} pixels; "
            f"the limit for this tool is {max_pixels} pixels",
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError:
        raise ApiError(413, f"{field}: the image has too many pixels") from None
    except (OSError, ValueError, SyntaxError):
        raise ApiError(415, f"{field}: the image data is truncated or corrupt") from None
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def background_colour(image: Image.Image) -> tuple[int, int, int]:
    """Median colour of the border strips, taken as the background colour."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    band = max(1, min(width, height) // 50)
    strips = [
        rgb.crop((0, 0, width, band)),
        rgb.crop((0, height - band, width, height)),
        rgb.crop((0, 0, band, height)),
        rgb.crop((width - band, 0, width, height)),
    ]
    histogram = [0] * 768
    for strip in strips:
        for index, count in enumerate(strip.histogram()):
            histogram[index] += count
    medians: list[int] = []
    for channel in range(3):
        counts = histogram[channel * 256 : (channel + 1) * 256]
        half, seen = sum(counts) / 2, 0
        for value, count in enumerate(counts):
            seen += count
            if seen >= half:
                medians.append(value)
                break
    return medians[0], medians[1], medians[2]


def foreground_mask(image: Image.Image) -> Image.Image:
    """An "L" mask: 0 where the pixel matches the border colour, 255 on the object, a ramp between."""
    rgb = image.convert("RGB")
    key = background_colour(rgb)
    distances = [
        ImageChops.difference(channel, Image.new("L", rgb.size, value))
        for channel, value in zip(rgb.split(), key, strict=True)
    ]
    distance = ImageChops.lighter(ImageChops.lighter(distances[0], distances[1]), distances[2])
    span = _KEY_HIGH - _KEY_LOW
    ramp = [0 if d <= _KEY_LOW else 255 if d >= _KEY_HIGH else (d - _KEY_LOW) * 255 // span for d in range(256)]
    mask = distance.point(ramp).filter(ImageFilter.GaussianBlur(_EDGE_BLUR_RADIUS))
    if image.mode == "RGBA":
        # Pixels already transparent in the input stay transparent.
        mask = ImageChops.multiply(mask, image.getchannel("A"))
    return mask


def remove_background(
    image: Image.Image,
    *,
    output_type: str,
    bg_color: Colour | None = None,
    bg_image: Image.Image | None = None,
) -> Image.Image:
    """Cut the object out (RGBA), or return its mask ("L"); optionally put it on a new background."""
    mask = foreground_mask(image)
    if output_type == "mask":
        return mask
    cutout = image.convert("RGBA")
    cutout.putalpha(mask)
    if bg_color is not None:
        return Image.alpha_composite(Image.new("RGBA", cutout.size, bg_color), cutout)
    if bg_image is not None:
        # Cover the whole cutout area with the background, cropping what overflows.
        backdrop = ImageOps.fit(bg_image.convert("RGBA"), cutout.size, Image.Resampling.LANCZOS)
        return Image.alpha_composite(backdrop, cutout)
    return cutout


def upscale(image: Image.Image, factor: int) -> Image.Image:
    """Resize by ``factor`` in both directions with a Lanczos filter."""
    width, height = image.size
    return image.resize((width * factor, height * factor), Image.Resampling.LANCZOS)


def encode(image: Image.Image, fmt: OutputFormat, quality: int = 90) -> EncodedImage:
    """Encode a result; JPG has no alpha, so transparent parts land on white. ``quality`` is JPG's and WEBP's."""
    pillow_format, extension, content_type = _ENCODINGS[fmt]
    if fmt == "JPG" and image.mode in ("RGBA", "LA"):
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
        image = image.convert("RGB")
    elif fmt == "WEBP" and image.mode == "L":
        # WebP has no grey-scale mode.
        image = image.convert("RGB")
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": quality} if fmt in ("JPG", "WEBP") else {}
    image.save(buffer, format=pillow_format, **options)
    return EncodedImage(buffer.getvalue(), extension, content_type)
