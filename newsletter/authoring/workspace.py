"""``newsletter init DIR``: a fresh workspace for a new author: settings to fill in, the
layouts to make their own, an empty ``issues/`` (the repository's sample issues are
for the demo and the tests, not for a new archive)."""

from __future__ import annotations

import shutil
from pathlib import Path

from newsletter.errors import NewsletterError

SETTINGS = """\
# {name}'s settings. Secrets (the SMTP password, NEWSLETTER_SECRET) never go in this file:
# they come from the environment or the system keyring.
name: {name}
lang: en
from: "Your Name <news@example.com>"     # the sender readers see (required to send)
postal_address: "Your postal address"    # required to send (anti-spam laws)
# base_url: https://news.example.com     # where `newsletter serve` or your host puts the archive
about: |
  A few lines about you and the newsletter, in Markdown.
unsubscribe:
  # url: https://news.example.com/unsubscribe?token={{token}}   # one-click unsubscribe (needs serve)
  mailto: unsubscribe@example.com
subscribers: subscribers.db
# smtp:                                  # absent: a local server on 127.0.0.1:8025 (`newsletter capture`)
#   host: smtp.example.com
#   port: 587
#   username: news@example.com
#   security: starttls
"""

GITIGNORE = "subscribers.db*\nbuild/\nsite/\noutbox/\n.cache/\n"


def layouts_source() -> Path:
    """The layouts that ship with the tool: packaged with a wheel, or the repository's."""
    packaged = Path(__file__).resolve().parent.parent / "_layouts"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "layouts"


def init_workspace(folder: Path, name: str) -> list[Path]:
    """Create ``folder`` as a workspace; refuses to touch one that has settings already."""
    if (folder / "newsletter.yaml").exists():
        raise NewsletterError(f"{folder / 'newsletter.yaml'} exists already; nothing was changed",
                              hint="pick an empty folder")
    if "\n" in name or "\r" in name or '"' in name:
        raise NewsletterError("the name must be one line without double quotes")
    source = layouts_source()
    if not source.is_dir():
        raise NewsletterError(f"no layouts to copy at {source}", hint="reinstall the package")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "issues" / "img").mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, folder / "layouts", dirs_exist_ok=False)
    (folder / "newsletter.yaml").write_text(SETTINGS.format(name=name), "utf-8")
    (folder / ".gitignore").write_text(GITIGNORE, "utf-8")
    return [folder / "newsletter.yaml", folder / "layouts", folder / "issues"]
