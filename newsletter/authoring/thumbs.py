"""Link-card thumbnails: a page's preview image, made small and re-encoded.

Why Pillow: the standard imaging library for Python, with wheels everywhere. The remote
file is never kept as it is: it is decoded (only PNG, JPEG, GIF and WebP are opened),
its EXIF orientation applied, scaled to at most ``MAX_WIDTH`` pixels wide, and written
anew as PNG (graphics, transparency) or JPEG (photos), which also drops its metadata
and anything else that was hiding in the file.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from pathlib import Path
from urllib.parse import urlsplit

MAX_WIDTH = 600
MAX_HEIGHT = 1200  # a very tall image is cropped by nobody; it is scaled to fit this too
MAX_PIXELS = 50_000_000  # refuse to decode more (a "decompression bomb" is tiny on the wire)
_FORMATS = ["PNG", "JPEG", "GIF", "WEBP"]


class ThumbError(Exception):
    """The image cannot be made into a thumbnail; the message says why."""


def thumbnail(data: bytes) -> tuple[bytes, str]:
    """The thumbnail's bytes and its file extension (".png" or ".jpg")."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in words
            source = Image.open(io.BytesIO(data), formats=_FORMATS)
        with source:
            width, height = source.size
            if width * height > MAX_PIXELS:
                raise ThumbError(f"is {width}x{height} pixels, too many to decode safely")
            kind = source.format
            if kind == "JPEG":
                source.draft("RGB", (MAX_WIDTH, MAX_HEIGHT))  # decode at a fraction of the size
            image = ImageOps.exif_transpose(source) or source
            image.load()
    except ThumbError:
        raise
    except UnidentifiedImageError:
        raise ThumbError("is not a PNG, JPEG, GIF or WebP image") from None
    except Image.DecompressionBombError:
        raise ThumbError("has too many pixels to decode safely") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ThumbError(f"cannot be decoded ({e})") from None
    image.thumbnail((MAX_WIDTH, MAX_HEIGHT), Image.Resampling.LANCZOS)
    alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    out = io.BytesIO()
    if alpha or kind in ("PNG", "GIF"):
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if alpha else "RGB")
        image.save(out, "PNG", optimize=True)
        return out.getvalue(), ".png"
    image.convert("RGB").save(out, "JPEG", quality=85, optimize=True, progressive=True)
    return out.getvalue(), ".jpg"


def thumb_stem(image_url: str) -> str:
    """A file name (without extension) for the thumbnail of ``image_url``: readable and stable,
    so the same image is downloaded once however often enrich runs."""
    host = re.sub(r"[^a-z0-9]+", "-", (urlsplit(image_url).hostname or "image").lower()).strip("-")
    digest = hashlib.sha256(image_url.encode()).hexdigest()[:10]
    return f"card-{host[:40]}-{digest}"


def existing(folder: Path, stem: str) -> Path | None:
    """The thumbnail already made for ``stem``, if any."""
    for ext in (".png", ".jpg"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None
