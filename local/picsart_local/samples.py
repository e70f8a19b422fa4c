"""Small, real sample images: an object on a plain background, the kind of photo background removal is for.

`samples/` in the repository holds the images this writes (`python -m picsart_local.samples samples`), so
a developer can upload them by hand; tests write their own copies into temporary folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SAMPLE_SIZE = (320, 240)


def product_photo(
    size: tuple[int, int] = SAMPLE_SIZE,
    background: tuple[int, int, int] = (236, 238, 241),
    colour: tuple[int, int, int] = (200, 40, 50),
    shape: str = "mug",
) -> Image.Image:
    """A product shot: a shaded object with a soft shadow, centred on a plain studio background."""
    width, height = size
    image = Image.new("RGB", size, background)
    shadow = Image.new("L", size, 0)
    ImageDraw.Draw(shadow).ellipse((width * 0.3, height * 0.78, width * 0.72, height * 0.9), fill=90)
    shadow = shadow.filter(ImageFilter.GaussianBlur(6))
    image.paste(Image.new("RGB", size, (150, 152, 156)), mask=shadow)
    draw = ImageDraw.Draw(image)
    box = (width * 0.33, height * 0.22, width * 0.66, height * 0.82)
    if shape == "mug":
        draw.rounded_rectangle(box, radius=14, fill=colour)
        draw.arc((box[2] - 18, height * 0.36, box[2] + 34, height * 0.64), -90, 90, fill=colour, width=12)
    elif shape == "ball":
        draw.ellipse((width * 0.3, height * 0.15, width * 0.7, height * 0.8), fill=colour)
    else:
        draw.polygon(
            [(width * 0.5, height * 0.12), (width * 0.72, height * 0.82), (width * 0.28, height * 0.82)],
            fill=colour,
        )
    # A highlight, so the object is not one flat colour.
    light = tuple(min(255, c + 70) for c in colour)
    draw.ellipse((width * 0.4, height * 0.3, width * 0.46, height * 0.5), fill=light)
    return image


SAMPLES: dict[str, dict[str, object]] = {
    "red-mug.png": {"colour": (200, 40, 50), "shape": "mug"},
    "blue-ball.jpg": {"colour": (40, 90, 200), "shape": "ball", "background": (250, 250, 250)},
    "green-cone.webp": {"colour": (40, 160, 80), "shape": "cone", "background": (230, 226, 220)},
}


def write_samples(folder: Path) -> list[Path]:
    """Write the sample images into `folder` (created if missing) and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, options in SAMPLES.items():
        path = folder / name
        product_photo(**options).save(path)  # type: ignore[arg-type]
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "samples")):
        print(written_path)
