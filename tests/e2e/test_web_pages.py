"""The web side in real Chromium: the archive at a phone's width, and unsubscribing by
clicking, as a reader would; every page accessible and readable in light and dark."""

from __future__ import annotations

import time

import pytest
from audit import serious_violations, unreadable_text

from newsletter.mailing.store import Store
from newsletter.mailing.tokens import list_id, make_token

from support import screenshot


@pytest.mark.parametrize("path", ["/", "/1/index.html"])
def test_archive_pages_fit_a_phone(page, web, path: str) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(web.base + path)
    scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client
    assert page.get_by_role("button", name="Subscribe").is_visible()
    screenshot(page, "archive-index-375" if path == "/" else "archive-issue-375")


def test_unsubscribe_by_clicking(page, web, ws, secret) -> None:
    token = make_token(secret, list_id("Test Weekly", "news@example.com"), "ada@example.com")
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{web.base}/unsubscribe?token={token}")
    assert Store(ws.settings.subscribers).get("ada@example.com").status == "subscribed"
    page.get_by_role("button", name="Unsubscribe ada@example.com").click()
    page.get_by_text("You are unsubscribed").wait_for()
    assert Store(ws.settings.subscribers).get("ada@example.com").status == "unsubscribed"
    screenshot(page, "unsubscribed-375")


def test_sign_up_from_the_archive_by_clicking(page, web, smtp) -> None:
    page.goto(web.base + "/")
    page.get_by_label("Get the next issue by email").fill("reader@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_text("confirmation link is on its way").wait_for()
    deadline = time.monotonic() + 10  # the outbox thread mails it after the answer
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [rcpt for rcpt, _ in smtp.messages] == ["reader@example.org"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_web_side_pages_are_accessible_and_readable(page, web, secret, scheme: str) -> None:
    token = make_token(secret, list_id("Test Weekly", "news@example.com"), "ada@example.com")
    page.set_viewport_size({"width": 375, "height": 800})
    page.emulate_media(color_scheme=scheme)
    for path in ("/", "/1/index.html", f"/unsubscribe?token={token}", "/unsubscribe?token=bad"):
        page.goto(web.base + path)
        assert serious_violations(page) == [], path
        assert unreadable_text(page) == [], f"{path} ({scheme})"
