"""The built email of every sample issue and of a generated 30-item one, and the web
pages, in real Chromium, as a subscriber measures them:

- nothing is wider than the screen at 320, 375 and 600 px, with images loaded, blocked
  (requests aborted, as mail apps do by default) and off (no src: alt text instead);
- axe-core finds no serious or critical violation, in light and dark colour schemes;
- every text node reaches 4.5:1 against the background it is painted on, in light and dark.

Screenshots (desktop, mobile, images off, dark) land in build/screenshots/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from audit import overflowing, serious_violations, unreadable_text

from support import REPO, screenshot

SAMPLES = sorted(p.stem.lstrip("0") for p in (REPO / "issues").glob("*.yaml"))
GENERATED = "100"
EMAILS = [*SAMPLES, GENERATED]

ITEM = """\
    - title: {title}
      url: https://papers.mlnews.dev/{section}/{i}
{extra}      summary: |
        {summary}
"""
LONG_WORD = "https://papers.mlnews.dev/a/very/long/address/that/nobody/wrapped/" + "x" * 60


def generated_issue(folder: Path) -> Path:
    """A workspace like the repository's (its settings, logo and layouts, another accent)
    with a 30-item issue: five sections, figures, papers, link cards with thumbnails, long
    words, its own label."""
    (folder / "issues" / "img").mkdir(parents=True)
    for image in (REPO / "issues" / "img").glob("*.png"):
        shutil.copy(image, folder / "issues" / "img" / image.name)
    settings = (REPO / "newsletter.yaml").read_text("utf-8") + f"layouts: {REPO / 'layouts'}\n"
    settings = settings.replace('accent: "#1a5fb4"', 'accent: "#0f766e"')  # another accent: derived colours hold too
    assert "#0f766e" in settings
    (folder / "newsletter.yaml").write_text(settings, "utf-8")
    sections = ["featured", "use_cases", "papers", "articles", "other"]
    body = "sections:\n"
    for s, section in enumerate(sections):
        body += f"  {section}:\n"
        for i in range(6):
            n = s * 6 + i
            extra = ""
            if n % 5 == 0:
                extra += (f"      image: {{src: img/pass-tiles.png, alt: A grid of tiles for item {n}, "
                          f"caption: Figure {n} as redrawn}}\n")
            if n % 2:
                extra += f'      paper: {{arxiv: "2110.{n:05d}", title: "A paper title as long as real ones"}}\n'
            if n % 4 == 1:
                extra += (f"      card: {{title: Is this the page's title?, description: One line from page {n}, "
                          f"image: img/scaling-curves.png}}\n")
            summary = "Two sentences on what it found, with **bold**, *emphasis* and a [link](https://mlnews.dev/)."
            if n % 7 == 3:
                summary += f" A long address written out: {LONG_WORD}"
            title = f"Item {n}, a headline of ordinary length about models and data"
            body += ITEM.format(title=title, section=section, i=i, extra=extra, summary=summary)
    issue = folder / "issues" / f"{GENERATED}.yaml"
    issue.write_text(f"number: {GENERATED}\ndate: 2021-11-07\ntitle: Thirty items, five sections\n"
                     "labels: {highlights: This month's highlights}\n"
                     "highlights:\n  - A highlight with a [link](https://mlnews.dev/h).\n" + body, "utf-8")
    return issue


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """build/<number>/ of every sample and of the generated issue, and the archive's index."""
    out = tmp_path_factory.mktemp("build")
    for number in SAMPLES:
        subprocess.run([sys.executable, "-m", "newsletter", "build", f"issues/{int(number):03d}.yaml", "-o", str(out)],
                       cwd=REPO, check=True, capture_output=True)
    workspace = tmp_path_factory.mktemp("generated")
    issue = generated_issue(workspace)
    subprocess.run([sys.executable, "-m", "newsletter", "build", str(issue), "-o", str(out)],
                   cwd=workspace, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "newsletter", "archive", "-o", str(out / "site")],
                   cwd=REPO, check=True, capture_output=True)
    return out


def without_images(email: Path) -> Path:
    """The email as a mail app with images off shows it: no src, the alt text instead."""
    off = email.with_name("email-images-off.html")
    off.write_text(re.sub(r'(<img\b[^>]*?)\ssrc="[^"]*"', r"\1", email.read_text("utf-8")), "utf-8")
    return off


@pytest.mark.parametrize("number", EMAILS)
@pytest.mark.parametrize("images", ["loaded", "blocked", "off"])
def test_nothing_is_wider_than_the_screen(page, built: Path, number: str, images: str) -> None:
    email = built / number / "email.html"
    if images == "blocked":
        page.route("**/*.{png,jpg,jpeg,gif,webp}", lambda route: route.abort())
    if images == "off":
        email = without_images(email)
    for width in (320, 375, 600):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(email.as_uri())
        loaded = page.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth).length")
        assert (loaded > 0) == (images == "loaded"), f"images {images} but {loaded} loaded"
        beyond = overflowing(page)
        assert beyond == [], f"{number} at {width}px, images {images}: {len(beyond)}: {beyond[:8]}"


PAGES = [f"{n}/email.html" for n in EMAILS] + [f"{n}/index.html" for n in EMAILS] + ["site/index.html"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", PAGES)
def test_accessible_and_every_text_readable(page, built: Path, name: str, scheme: str) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    page.emulate_media(color_scheme=scheme)
    page.goto((built / name).as_uri())
    assert serious_violations(page) == []
    assert unreadable_text(page) == [], f"{name} ({scheme}): text under 4.5:1"


@pytest.mark.parametrize("number", EMAILS)
def test_screenshots_desktop_mobile_images_off_dark(page, built: Path, number: str) -> None:
    email = built / number / "email.html"
    views = [("desktop", 1024, "light", email), ("mobile", 375, "light", email),
             ("images-off", 375, "light", without_images(email)), ("dark", 375, "dark", email)]
    for view, width, scheme, file in views:
        page.set_viewport_size({"width": width, "height": 800})
        page.emulate_media(color_scheme=scheme)
        page.goto(file.as_uri())
        assert screenshot(page, f"email-{number}-{view}").stat().st_size > 0
