"""The built email and web page in real Chromium: at a phone's width nothing scrolls
sideways, images load, and the page fetches nothing from outside."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO, screenshot


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    for number in ("033", "034"):
        subprocess.run([sys.executable, "-m", "newsletter", "build", f"issues/{number}.yaml", "-o", str(out)],
                       cwd=REPO, check=True, capture_output=True)
    return out


@pytest.mark.parametrize("number", ["33", "34"])
@pytest.mark.parametrize("name", ["email.html", "index.html"])
@pytest.mark.parametrize("width", [375, 1024])
def test_page_fits_the_screen_and_images_load(page, built: Path, number: str, name: str, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    page.goto((built / number / name).as_uri())
    scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client, f"{name} scrolls sideways at {width}px ({scroll} > {client})"
    broken = page.evaluate("""Promise.all([...document.images].map(img => {
        img.loading = "eager";  // the web page lazy-loads figures below the fold
        return img.decode().then(() => null, () => img.src);
    })).then(results => results.filter(Boolean))""")
    assert broken == []
    title = page.locator("h1").first.inner_text()
    assert title.strip()
    screenshot(page, f"{number}-{name.split('.')[0]}-{width}")
