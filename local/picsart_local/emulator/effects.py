"""``POST /effects`` (apply one of the spec's effects) and ``GET /effects`` (their names).

Each effect name of the spec's EffectsParameters is a Pillow stand-in for Picsart's filter of that family:
blurs (``blur``, ``gblur``, ``lensblur``, ``motionblur``, ``smartblur``), ``pixelize``, ``noise``,
``popart``, ``saturation``, drawings (``sketch*``, ``sketcher*``), monochromes (``mnch*``), light leaks
(``light1`` to ``light20``: a coloured glow from a corner) and colour grades for the others (``1972``,
``brnz*`` bronze, ``icy*`` cool, ``food*`` warm, ...). Every effect changes the picture and keeps its size
and transparency. ``fade`` (0 to 100) blends the original back in, 100 giving the original; the effects the
spec lists as not supporting fade ignore it. ``format`` defaults to JPG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps

from . import imaging
from .retouch import add_noise, join_alpha, lut, split_alpha
from .toolkit import Tool, ToolCall, ToolOutput
from .validation import FORMAT, Param

Effect = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True)
class _Grade:
    """A colour grade: channel gains, then contrast, saturation and brightness factors."""

    red: float = 1.0
    green: float = 1.0
    blue: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    brightness: float = 1.0
    #: How much of a bronze (sepia) toning to blend in, 0 to 1.
    bronze: float = 0.0
    #: Radius of a softening blur blended in at half strength, 0 for none.
    soften: float = 0.0

    def __call__(self, rgb: Image.Image) -> Image.Image:
        gains = (self.red, self.green, self.blue)
        rgb = Image.merge("RGB", [band.point(_gain(k)) for band, k in zip(rgb.split(), gains, strict=True)])
        rgb = ImageEnhance.Contrast(rgb).enhance(self.contrast)
        rgb = ImageEnhance.Color(rgb).enhance(self.saturation)
        rgb = ImageEnhance.Brightness(rgb).enhance(self.brightness)
        if self.bronze:
            toned = ImageOps.colorize(ImageOps.grayscale(rgb), black=(40, 22, 5), white=(255, 236, 200))
            rgb = Image.blend(rgb, toned, self.bronze)
        if self.soften:
            rgb = Image.blend(rgb, rgb.filter(ImageFilter.GaussianBlur(self.soften)), 0.5)
        return rgb


def _gain(factor: float) -> list[int]:
    return lut(lambda x: x * factor)


_GRADES: dict[str, _Grade] = {
    "1972": _Grade(red=1.08, blue=0.85, contrast=0.85, saturation=0.6, brightness=1.05),
    "apr1": _Grade(red=1.05, contrast=0.9, saturation=1.15, brightness=1.08),
    "apr2": _Grade(blue=1.05, contrast=0.9, saturation=1.1, brightness=1.1),
    "apr3": _Grade(red=1.06, green=1.04, contrast=0.88, saturation=1.2, brightness=1.06),
    "brl1": _Grade(blue=1.05, contrast=1.2, saturation=0.5),
    "brnz1": _Grade(bronze=0.4),
    "brnz2": _Grade(bronze=0.6),
    "brnz3": _Grade(bronze=0.8, contrast=1.1),
    "brnz4": _Grade(bronze=1.0, contrast=1.2),
    "cyber1": _Grade(red=1.1, green=0.85, blue=1.2, contrast=1.2, saturation=1.3),
    "cyber2": _Grade(red=0.85, green=1.05, blue=1.2, contrast=1.25, saturation=1.4),
    "dodger": _Grade(contrast=0.95, brightness=1.25),
    "food1": _Grade(red=1.08, green=1.03, blue=0.92, contrast=1.08, saturation=1.3),
    "food2": _Grade(red=1.1, green=1.05, blue=0.9, contrast=1.12, saturation=1.4),
    "icy1": _Grade(red=0.88, green=0.98, blue=1.15, saturation=0.85, brightness=1.05),
    "icy2": _Grade(red=0.85, green=0.97, blue=1.2, saturation=0.75, brightness=1.08),
    "icy3": _Grade(red=0.8, green=0.95, blue=1.25, saturation=0.65, brightness=1.1),
    "nature1": _Grade(green=1.08, contrast=1.05, saturation=1.25),
    "nature2": _Grade(red=0.95, green=1.1, contrast=1.08, saturation=1.35),
    "ntrl1": _Grade(contrast=1.1, saturation=0.95),
    "ntrl2": _Grade(contrast=1.15, saturation=0.9, brightness=1.03),
    "sft1": _Grade(brightness=1.03, soften=2),
    "sft2": _Grade(brightness=1.04, contrast=0.95, soften=3),
    "sft3": _Grade(brightness=1.05, contrast=0.9, soften=4),
    "sft4": _Grade(brightness=1.06, contrast=0.85, saturation=0.9, soften=5),
    "shadow1": _Grade(contrast=1.2, brightness=0.85),
    "shadow2": _Grade(contrast=1.3, brightness=0.75),
    "spc1": _Grade(red=0.85, green=0.9, blue=1.2, contrast=1.25),
    "tl1": _Grade(red=1.08, green=1.02, blue=0.9, contrast=1.1),
    "tl2": _Grade(red=0.92, green=1.04, blue=1.08, contrast=1.1),
    "urban1": _Grade(contrast=1.25, saturation=0.6),
    "urban2": _Grade(contrast=1.3, saturation=0.4, brightness=0.95),
    "water1": _Grade(red=0.9, green=1.05, blue=1.15, soften=1),
    "water2": _Grade(red=0.85, green=1.08, blue=1.2, saturation=1.1, soften=2),
}

# Light leaks: glow colours and the corner each starts from cycle with the effect's number.
_GLOWS = ((255, 170, 60), (255, 90, 120), (255, 230, 150), (120, 160, 255))


def _light(number: int) -> Effect:
    def light(rgb: Image.Image) -> Image.Image:
        glow_colour = _GLOWS[(number - 1) % len(_GLOWS)]
        corner = (number - 1) % 4
        # 0 at the glow's corner, 255 at the opposite one.
        ramp = Image.linear_gradient("L").resize(rgb.size)
        across = Image.linear_gradient("L").rotate(90).resize(rgb.size)
        distance = ImageChops.lighter(
            ramp if corner < 2 else ImageOps.flip(ramp), across if corner % 2 else ImageOps.mirror(across)
        )
        strength = 0.35 + 0.05 * ((number - 1) % 5)
        mask = distance.point(lut(lambda d: 255 * strength * (1 - d / 255)))
        glow = Image.composite(Image.new("RGB", rgb.size, glow_colour), Image.new("RGB", rgb.size), mask)
        return ImageChops.screen(rgb, glow)

    return light


def _motion_blur(rgb: Image.Image) -> Image.Image:
    result = rgb
    for count, shift in enumerate((-4, -3, -2, -1, 1, 2, 3, 4), start=2):
        result = Image.blend(result, ImageChops.offset(rgb, shift, 0), 1 / count)
    return result


def _pixelize(rgb: Image.Image) -> Image.Image:
    small = rgb.resize((max(1, rgb.width // 8), max(1, rgb.height // 8)), Image.Resampling.BOX)
    return small.resize(rgb.size, Image.Resampling.NEAREST)


def _drawing(edge_filter: type[ImageFilter.BuiltinFilter], *, invert: bool, colour: float = 0.0) -> Effect:
    """Lines drawn from the edges, dark on light; ``colour`` blends that much of the picture back in."""

    def drawing(rgb: Image.Image) -> Image.Image:
        lines = ImageOps.grayscale(rgb).filter(edge_filter)
        lines = ImageOps.autocontrast(ImageOps.invert(lines) if invert else lines)
        drawn = Image.merge("RGB", (lines, lines, lines))
        return Image.blend(drawn, rgb, colour) if colour else drawn

    return drawing


def _monochrome(contrast: float) -> Effect:
    def monochrome(rgb: Image.Image) -> Image.Image:
        grey = ImageEnhance.Contrast(ImageOps.grayscale(rgb)).enhance(contrast)
        return Image.merge("RGB", (grey, grey, grey))

    return monochrome


def _fattal(rgb: Image.Image) -> Image.Image:
    """A tone-mapped look: strong local contrast, then livelier colours."""
    return _Grade(saturation=1.2)(rgb.filter(ImageFilter.UnsharpMask(radius=8, percent=150, threshold=0)))


EFFECTS: dict[str, Effect] = {
    "blur": lambda rgb: rgb.filter(ImageFilter.GaussianBlur(3)),
    "gblur": lambda rgb: rgb.filter(ImageFilter.GaussianBlur(6)),
    "lensblur": lambda rgb: rgb.filter(ImageFilter.BoxBlur(4)),
    "motionblur": _motion_blur,
    "smartblur": lambda rgb: rgb.filter(ImageFilter.SMOOTH_MORE).filter(ImageFilter.SMOOTH_MORE),
    "pixelize": _pixelize,
    "noise": lambda rgb: add_noise(rgb, 30),
    "popart": lambda rgb: ImageEnhance.Color(ImageOps.posterize(rgb, 2)).enhance(1.6),
    "saturation": lambda rgb: ImageEnhance.Color(rgb).enhance(1.8),
    "sketch1": _drawing(ImageFilter.FIND_EDGES, invert=True),
    "sketch2": _drawing(ImageFilter.CONTOUR, invert=False),
    "sketch3": _drawing(ImageFilter.EMBOSS, invert=False),
    "sketcher1": _drawing(ImageFilter.FIND_EDGES, invert=True, colour=0.35),
    "sketcher2": _drawing(ImageFilter.CONTOUR, invert=False, colour=0.35),
    "mnch1": _monochrome(1.0),
    "mnch2": _monochrome(1.2),
    "mnch3": _monochrome(1.4),
    "fattal2": _fattal,
    **{f"light{number}": _light(number) for number in range(1, 21)},
    **_GRADES,
}

#: The effect names in the spec's order (EffectsParameters.effect_name).
EFFECT_NAMES: tuple[str, ...] = (
    "1972", "apr1", "apr2", "apr3", "blur", "gblur", "lensblur", "motionblur", "smartblur", "pixelize", "brl1",
    "brnz1", "brnz2", "brnz3", "brnz4", "cyber1", "cyber2", "dodger", "fattal2", "food1", "food2", "icy1", "icy2",
    "icy3", *(f"light{number}" for number in range(1, 21)), "mnch1", "mnch2", "mnch3", "nature1", "nature2",
    "noise", "ntrl1", "ntrl2", "popart", "saturation", "sft1", "sft2", "sft3", "sft4", "shadow1", "shadow2",
    "sketch1", "sketch2", "sketch3", "sketcher1", "sketcher2", "spc1", "tl1", "tl2", "urban1", "urban2",
    "water1", "water2",
)  # fmt: skip

#: The effects the spec says "do not support fade".
NO_FADE: frozenset[str] = frozenset(
    {"lensblur", "pixelize", "saturation", "shadow1", "shadow2", *(f"light{number}" for number in range(1, 21))}
)

EFFECTS_PARAMS: dict[str, Param] = {
    "effect_name": Param("enum", choices=EFFECT_NAMES, required=True),
    "fade": Param("int", 0, 100),
    "format": FORMAT,
}


def apply_effect(image: Image.Image, name: str, fade: int = 0) -> Image.Image:
    """Apply one effect by name, ``fade`` percent of the original blended back in where the effect allows."""
    rgb, alpha = split_alpha(image)
    result = EFFECTS[name](rgb)
    if fade and name not in NO_FADE:
        result = Image.blend(result, rgb, fade / 100)
    return join_alpha(result, alpha)


def effect_names_payload(credits: int) -> object:
    """``GET /effects``: every effect name (effectRetrievalSuccess)."""
    return {"status": "success", "data": [{"name": name} for name in EFFECT_NAMES]}


def _effects(call: ToolCall) -> ToolOutput:
    return imaging.encode(apply_effect(call.image(), call.get("effect_name", ""), call.get("fade", 0)), call.format)


EFFECTS_TOOL = Tool("effects", "/effects", EFFECTS_PARAMS, _effects)
