"""The author's look (``brand:`` in newsletter.yaml) and the colour maths behind it.

The layouts put accent text (links, highlight titles) on light surfaces, and in dark mode
on dark ones. The author picks the light-mode accent, so ``check`` warns when it is too
pale (WCAG 2 contrast); the dark-mode accent and the text on buttons are derived here so
that they reach 4.5:1 whatever the author picked.
"""

from __future__ import annotations

import colorsys
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from newsletter.shapes import Context, Custom, Field, Mapping, Text
from newsletter.source import Path_
from newsletter.wording import Label

AA = 4.5  # WCAG 2 AA for body text
DEFAULT_ACCENT = "#1a5fb4"
HEX = r"#[0-9a-fA-F]{6}"
# The darkest light surface and the lightest dark surface that carry accent text in the
# default layouts (the page behind the cards; the soft boxes in dark mode). Keep in step
# with layouts/email.mjml, email.css and web.css (the e2e contrast tests would catch drift).
LIGHT_SURFACE = "#eef1f4"
DARK_SURFACE = "#262d36"
INK = "#ffffff", "#111418"  # text on a button: white or near-black, whichever reads better

RGB = tuple[float, float, float]


def rgb(colour: str) -> RGB:
    """``#rrggbb`` as three 0-255 channels."""
    if not re.fullmatch(HEX, colour):
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def hex_of(channels: RGB) -> str:
    return "#" + "".join(f"{round(min(255, max(0, c))):02x}" for c in channels)


def luminance(colour: str) -> float:
    """WCAG relative luminance."""
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours, 1 to 21."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def mix(a: str, b: str, share: float) -> str:
    """``a`` with ``share`` (0-1) of ``b`` mixed in."""
    return hex_of(tuple(x + (y - x) * share for x, y in zip(rgb(a), rgb(b), strict=True)))


def readable(colour: str, surface: str, lighter: bool, target: float = AA) -> str:
    """``colour`` made lighter (or darker) just enough to reach ``target`` on ``surface``;
    unchanged if it already does. Lightness moves in HSL, so the hue and saturation stay."""
    h, lightness, s = colorsys.rgb_to_hls(*(c / 255 for c in rgb(colour)))
    for _ in range(101):
        shade = hex_of(tuple(c * 255 for c in colorsys.hls_to_rgb(h, lightness, s)))
        if contrast(shade, surface) >= target:
            return shade
        lightness = min(1.0, lightness + 0.01) if lighter else max(0.0, lightness - 0.01)
    return "#ffffff" if lighter else "#000000"


class Palette(NamedTuple):
    """The accent and what the layouts derive from it, for light and dark mode."""

    accent: str = DEFAULT_ACCENT
    accent_dark: str = "#8ab4ff"  # links and highlights on dark surfaces
    on_accent: str = "#ffffff"  # text on an accent button
    on_accent_dark: str = "#111418"


@lru_cache(maxsize=8)  # every render asks; the answer depends on the accent alone
def palette(accent: str = DEFAULT_ACCENT) -> Palette:
    """The colours the layouts use for ``accent``."""
    dark = readable(accent, DARK_SURFACE, lighter=True, target=AA + 1)  # headroom: thin text on dark
    return Palette(accent, dark, _ink_on(accent), _ink_on(dark))


def _ink_on(background: str) -> str:
    return max(INK, key=lambda ink: contrast(ink, background))


def accent_problem(accent: str) -> str | None:
    """Why ``accent`` is hard to read as link text in light mode, or None."""
    ratio = contrast(accent, LIGHT_SURFACE)
    if ratio >= AA:
        return None
    return (f"{accent} is {ratio:.1f}:1 against the light background ({LIGHT_SURFACE}); links need "
            f"{AA}:1 to be read easily. A darker shade such as {readable(accent, LIGHT_SURFACE, lighter=False)} "
            "would do")


class Brand(NamedTuple):
    """A logo at the top, the accent colour, a footer of the author's own."""

    logo: Path | None = None  # an image file
    logo_alt: str | None = None  # default: the newsletter's name
    accent: str = DEFAULT_ACCENT  # links, the highlights bar, buttons
    footer: str | dict[str, str] | None = None  # Markdown, or Markdown per language


_IMAGE_KINDS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF87a", b"GIF89a")


def _logo(value: str, path: Path_, ctx: Context) -> Any:
    # A warning, not an error: without its logo the email shows the newsletter's name,
    # which is no reason to stop a build (or every command, settings being read by all).
    file = ctx.base_dir / value
    try:
        head = None
        if file.is_file():
            with file.open("rb") as f:  # 12 bytes tell the kind; the logo may be large
                head = f.read(12)
    except OSError:
        head = None
    if head is None:
        ctx.warn(path, f"no image file '{value}' (the path is relative to newsletter.yaml); "
                       "the newsletter's name is shown instead")
    elif not (head.startswith(_IMAGE_KINDS) or head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        ctx.warn(path, f"'{value}' is not a PNG, JPEG, GIF or WebP image; the newsletter's name is shown instead")
    return value


def _accent(value: str, path: Path_, ctx: Context) -> Any:
    problem = accent_problem(value.lower())
    if problem:
        ctx.warn(path, problem)
    return value.lower()


def brand_format() -> Mapping:
    """The shape of ``brand:`` in newsletter.yaml."""
    _colour = Text(pattern=HEX)
    _colour.description = "a colour like #1a5fb4"
    return Mapping(
        {
            "logo": Field(Custom(Text(), _logo), "An image file shown at the top (relative to newsletter.yaml)"),
            "logo_alt": Field(Text(), "The logo's alt text (default: the newsletter's name)"),
            "accent": Field(Custom(_colour, _accent),
                            "A #rrggbb colour for links, the highlights bar and buttons"),
            "footer": Field(Label("footer"), "Markdown at the end of every email and page (or per language)"),
        }
    )


def brand_of(given: dict[str, Any], root: Path) -> Brand:
    """``Brand`` from the checked ``brand:`` keys that are set; the logo's path made absolute."""
    if "logo" in given:
        given = {**given, "logo": (root / given["logo"]).resolve()}
    return Brand(**given)
