"""What the layouts see of the author's brand: the logo as one of the issue's pictures,
the accent and the colours derived from it, the footer."""

from __future__ import annotations

from typing import Any

from newsletter.authoring import images
from newsletter.authoring.labels import in_lang
from newsletter.authoring.model import Image
from newsletter.brand import palette
from newsletter.config import Settings

LOGO_HEIGHT = 44  # CSS pixels; the file is best drawn at twice that, for sharp screens
LOGO_MAX_WIDTH = 240


def logo_image(settings: Settings) -> Image | None:
    """The logo as a picture of every issue: built, attached or hosted beside its images,
    under brand/ so that it cannot collide with them."""
    file = settings.brand.logo
    size = images.size_of(file) if file is not None else None
    if size is None:  # missing or not an image: newsletter.yaml's check warned; the name stands in
        return None
    width, height = size
    return Image(src=f"brand/{file.name}", alt=settings.brand.logo_alt or settings.name, file=file,
                 width=width, height=height)


def logo_size(logo: Image) -> tuple[int, int]:
    """The logo's width and height as shown: ``LOGO_HEIGHT`` tall unless that is too wide."""
    if not (logo.width and logo.height):
        return LOGO_MAX_WIDTH // 2, LOGO_HEIGHT
    width = min(LOGO_MAX_WIDTH, round(logo.width * LOGO_HEIGHT / logo.height))
    return width, round(logo.height * width / logo.width)


def look(settings: Settings, lang: str, logo: Image | None = None) -> dict[str, Any]:
    """The brand's part of a layout's context, for pages in ``lang``."""
    return {
        "brand": palette(settings.brand.accent),
        "logo": logo,
        "logo_size": logo_size(logo) if logo else None,
        "footer": in_lang(settings.brand.footer, lang),
    }
