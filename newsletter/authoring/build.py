"""``check`` and ``build`` as the author runs them: check the file, render it once,
add the size warning, and write the three files plus the images beside them."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from newsletter.authoring.check import check_issue
from newsletter.authoring.render import GMAIL_CLIP_BYTES, ImageUrl, Rendered, Renderer
from newsletter.config import Settings
from newsletter.errors import Location, NewsletterError, Problem
from newsletter.source import write_atomic

PREVIEW_TOKEN = "preview-token-0000000000000000000000000000000"  # as long as a real one


class Reviewed(NamedTuple):
    """A checked and rendered issue, with every warning about it."""

    rendered: Rendered
    warnings: list[Problem]


def preview_values(settings: Settings) -> dict[str, str]:
    """Personal fields for a copy nobody receives (built files, the preview): a sample
    name, so that the author sees the greeting as a named reader will."""
    url = settings.unsubscribe.url or ""
    return {
        "name": "Ada Lovelace",
        "email": "reader@example.com",
        "unsubscribe_url": url.replace("{token}", PREVIEW_TOKEN) if url else "#unsubscribe",
    }


def review_issue(path: Path, settings: Settings, renderer: Renderer | None = None,
                 display: str | None = None, image_url: ImageUrl | None = None,
                 email_only: bool = False) -> Reviewed:
    """Check and render ``path``, with every warning (the email's size included); raises
    ``Invalid`` with every error found. ``email_only``: `check` needs only the email."""
    checked = check_issue(path, settings.lang, display)
    rendered = (renderer or Renderer(settings)).render(checked.issue, image_url, email_only=email_only)
    size = _size_warning(rendered, settings, display or str(path))
    return Reviewed(rendered, list(settings.warnings) + checked.warnings + size)  # newsletter.yaml's first


def _size_warning(rendered: Rendered, settings: Settings, display: str) -> list[Problem]:
    # Measured as a reader gets it: with a real unsubscribe link in place of its marker.
    size = len(rendered.fill(preview_values(settings))[0].encode("utf-8"))
    if size <= GMAIL_CLIP_BYTES:
        return []
    message = (f"the email is {size / 1024:.0f} KB of HTML; Gmail clips messages over "
               f"{GMAIL_CLIP_BYTES // 1024} KB and hides the rest, unsubscribe link included")
    return [Problem(Location(display, 1, 1), message, warning=True)]


def write_issue(reviewed: Reviewed, settings: Settings, out_dir: Path) -> list[Path]:
    """Write ``out_dir/<number>/`` email.html, email.txt, index.html and the images."""
    rendered = reviewed.rendered
    target = out_dir / str(rendered.issue.number)
    # Every path is settled before anything is written: a bad one leaves the folder as it was.
    pictures = [(inside(target, i.src), i.file) for i in rendered.issue.images if i.file is not None]
    email_html, email_text = rendered.fill(preview_values(settings))
    files = {"email.html": email_html, "email.txt": email_text, "index.html": rendered.web}
    for name, content in files.items():
        write_file(target / name, content)
    for path, file in pictures:
        write_file(path, file.read_bytes())
    return [target / name for name in files] + [path for path, _ in pictures]


def inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, or NewsletterError if that leads out of ``folder`` (``..``,
    an absolute path, a symlink). The checker refuses such paths; this holds if it missed one."""
    path = folder / relative
    if not path.resolve().is_relative_to(folder.resolve()):
        raise NewsletterError(f"{relative}: would be written outside {folder}; nothing written there")
    return path


def write_file(path: Path, content: str | bytes) -> list[Path]:
    """Write ``path`` unless it already holds ``content`` (mtimes then stay, so static
    hosts and watchers see only real changes). Returns [path] if it was written."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path.exists() and path.read_bytes() == data:
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)  # a temporary name of this process's own: serve's rebuild and `archive` may overlap
    return [path]
