"""``check`` and ``build`` as the author runs them: check the file, render it once,
add the size warning, and write the three files plus the images beside them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from newsletter.check import check_issue
from newsletter.config import Settings
from newsletter.errors import Location, Problem
from newsletter.render import GMAIL_CLIP_BYTES, Rendered, Renderer

PREVIEW_TOKEN = "preview-token-0000000000000000000000000000000"  # as long as a real one


@dataclass(frozen=True)
class Reviewed:
    """A checked and rendered issue, with every warning about it."""

    rendered: Rendered
    warnings: list[Problem]


def preview_values(settings: Settings) -> dict[str, str]:
    """Personal fields for a copy nobody receives (built files, the preview)."""
    url = settings.unsubscribe.url or ""
    return {
        "name": "",
        "email": "reader@example.com",
        "unsubscribe_url": url.replace("{token}", PREVIEW_TOKEN) if url else "#unsubscribe",
    }


def review_issue(path: Path, settings: Settings, renderer: Renderer | None = None,
                 display: str | None = None, image_base: str = "") -> Reviewed:
    """Check and render ``path``; raises ``Invalid`` with every error found."""
    checked = check_issue(path, settings.lang, display)
    rendered = (renderer or Renderer(settings)).render(checked.issue, image_base)
    warnings = list(checked.warnings)
    size = len(rendered.fill(preview_values(settings))[0].encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        warnings.append(
            Problem(
                Location(display or str(path), 1, 1),
                f"warning: the email is {size / 1024:.0f} KB of HTML; Gmail clips messages over "
                f"{GMAIL_CLIP_BYTES // 1024} KB and hides the rest, unsubscribe link included",
                warning=True,
            )
        )
    return Reviewed(rendered, warnings)


def write_issue(reviewed: Reviewed, settings: Settings, out_dir: Path) -> list[Path]:
    """Write ``out_dir/<number>/`` email.html, email.txt, index.html and the images."""
    rendered = reviewed.rendered
    target = out_dir / str(rendered.issue.number)
    target.mkdir(parents=True, exist_ok=True)
    email_html, email_text = rendered.fill(preview_values(settings))
    files = {"email.html": email_html, "email.txt": email_text, "index.html": rendered.web}
    written = []
    for name, content in files.items():
        written.append(target / name)
        _write_if_changed(target / name, content)
    for image in rendered.issue.images:
        if image.file is not None:
            dest = target / image.src
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists() or dest.stat().st_size != image.file.stat().st_size:
                shutil.copyfile(image.file, dest)
            written.append(dest)
    return written


def _write_if_changed(path: Path, content: str) -> None:
    data = content.encode("utf-8")
    if path.exists() and path.read_bytes() == data:
        return  # keeps mtimes, so static hosts and watchers see only real changes
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
