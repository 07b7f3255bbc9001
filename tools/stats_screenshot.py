"""Draw docs/stats-report.png, the README's picture of `newsletter stats --format html`,
with the headless Chromium the tests use.

The store is made up, as the stats benchmark makes its own (``bench/bench_stats.py``:
a year of sign-ups through the real import, twelve weekly issues, unsubscribes, bounces
and clicks), 2,400 readers; the latest issue's links take the sample issue 033's titles.
The report is the real one, rendered by ``web.report``. Run it after changing the report:

    .venv/bin/python tools/stats_screenshot.py
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import tempfile
from pathlib import Path

import yaml
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from bench_stats import make_history  # noqa: E402

from newsletter.config import load_settings  # noqa: E402
from newsletter.mailing.stats import read_stats  # noqa: E402
from newsletter.web.report import render_report  # noqa: E402

OUT = REPO / "docs" / "stats-report.png"
ISSUES = 12


def sample_titles() -> list[tuple[str, str]]:
    """(section, title) of the sample issue's items and more posts, in the email's order."""
    issue = yaml.safe_load((REPO / "issues" / "033.yaml").read_text("utf-8"))
    found = [(key, item["title"]) for key, items in issue["sections"].items() for item in items or ()]
    return found + [("more", post["title"]) for post in issue.get("more") or ()]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "subscribers.db"
        make_history(store, 2_400, ISSUES, dt.datetime(2025, 11, 20, tzinfo=dt.UTC), seed=33)
        db = sqlite3.connect(store)
        titles = sample_titles()
        with db:
            for link, (section, title) in enumerate(titles, start=1):
                db.execute("UPDATE links SET section = ?, title = ? WHERE issue = ? AND id = ?",
                           (section, title, ISSUES, link))
            for table, column in (("links", "id"), ("clicks", "link")):  # the sample has fewer links
                db.execute(f"DELETE FROM {table} WHERE issue = ? AND {column} > ?", (ISSUES, len(titles)))
        db.close()
        settings = load_settings(REPO / "newsletter.yaml")._replace(subscribers=store)
        page_file = Path(tmp) / "stats.html"
        page_file.write_text(render_report(settings, read_stats(store, latest=True)), "utf-8")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 800}, device_scale_factor=1)
            page.goto(page_file.as_uri())
            bottom = page.evaluate("document.querySelector('#chart-clicks').getBoundingClientRect().bottom")
            page.screenshot(path=str(OUT), clip={"x": 0, "y": 0, "width": 1000, "height": bottom + 16},
                            full_page=True)
            browser.close()
    print(f"Wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
