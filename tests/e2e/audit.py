"""What the e2e tests measure on a page, as a subscriber's outside tools do: boxes beyond
the viewport, axe-core's serious and critical violations, text under 4.5:1."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
OVERFLOW_JS = (HERE / "overflow.js").read_text("utf-8")
CONTRAST_JS = (HERE / "contrast.js").read_text("utf-8")


def overflowing(page) -> list[str]:
    """Elements and lines of text that reach past the viewport's edges."""
    return page.evaluate(OVERFLOW_JS)


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings (axe-playwright-python ships axe-core)."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']}: {[n['target'] for n in v['nodes'][:4]]}"
            for v in found if v["impact"] in ("serious", "critical")]


def unreadable_text(page) -> list[str]:
    """Visible text nodes under 4.5:1 against their effective background."""
    result = page.evaluate(CONTRAST_JS)
    assert result["checked"] > 0, "no text was measured"
    return result["failing"]
