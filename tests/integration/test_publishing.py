"""Drafts and publishing: the archive lists an issue (index, feed) once its send started
or `newsletter publish` said it went out; a draft's page is written, unlisted. The build
is incremental, and `newsletter serve` shows a newly published issue without a restart."""

from __future__ import annotations

import os
import time

import feedparser
import pytest

from newsletter.mailing.storage import store_exists
from newsletter.web.archive import build_archive
from newsletter.web.published import published_issues

from support import Web, free_port, smtp_config

pytestmark = pytest.mark.backends

DAY_NS = 86_400 * 10**9


def second(ws, title: str = "Second issue") -> None:
    path = ws.issue("002.yaml", number=2, title=title)
    path.write_text(path.read_text().replace("date: 2021-10-10", "date: 2021-10-17"))


def two_issues(ws) -> None:
    ws.issue("001.yaml", number=1, title="First issue")
    second(ws)


def listed(ws) -> tuple[str, list[str]]:
    site = ws.root / "site"
    feed = feedparser.parse((site / "feed.xml").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    return (site / "index.html").read_text(), [e.title for e in feed.entries]


def test_with_no_store_every_issue_is_a_draft_written_unlisted(ws) -> None:
    two_issues(ws)
    result = ws.run("archive")
    assert result.exit_code == 0
    assert "2 issue(s) written unlisted: not yet published" in result.output
    index, titles = listed(ws)
    assert titles == [] and "First issue" not in index and 'href="1/index.html"' not in index
    assert "<h1>First issue</h1>" in (ws.root / "site" / "1" / "index.html").read_text()  # reachable, unlisted
    assert not store_exists(ws.settings.subscribers)  # building never creates the store


def test_publish_lists_an_issue_by_number_or_file(ws) -> None:
    two_issues(ws)
    assert "Issue 2 is now published" in ws.run("publish", "issues/002.yaml").output
    assert "was already published" in ws.run("publish", "2").output
    result = ws.run("archive")
    assert "1 issue(s) written unlisted: not yet published (1;" in result.output
    index, titles = listed(ws)
    assert titles == ["Second issue"] and 'href="2/index.html"' in index and 'href="1/index.html"' not in index
    ws.run("publish", "1")
    index, titles = listed(ws) if ws.run("archive").exit_code == 0 else ("", [])
    assert titles == ["Second issue", "First issue"]
    assert index.index('href="2/index.html"') < index.index('href="1/index.html"')


def test_a_send_publishes_its_issue(ws, smtp, secret) -> None:
    ws.configure(extra=smtp_config(smtp.port))
    two_issues(ws)
    ws.run("subscribers", "add", "ada@example.com")
    ws.run("archive")
    assert listed(ws)[1] == []
    assert ws.run("send", "--yes", "issues/001.yaml").exit_code == 0
    assert published_issues(ws.settings) == {1}
    ws.run("archive")
    assert listed(ws)[1] == ["First issue"]


def test_an_unchanged_rebuild_writes_nothing_and_an_edit_rewrites_one_page(ws) -> None:
    two_issues(ws)
    old = time.time_ns() - DAY_NS  # files written long ago (a fresh stamp is re-read, like git's racy files)
    for path in [*ws.issues.glob("*.yaml"), ws.root / "newsletter.yaml"]:
        os.utime(path, ns=(old, old))
    site = ws.root / "site"
    assert build_archive(ws.settings, site, {1, 2})
    assert build_archive(ws.settings, site, {1, 2}) == []
    second(ws, "Second issue, retitled")
    assert sorted(p.relative_to(site).as_posix() for p in build_archive(ws.settings, site, {1, 2})) == [
        "2/index.html", "feed.xml", "index.html"]
    (site / "1" / "index.html").unlink()  # a page lost from the site is written again
    assert [p.relative_to(site).as_posix() for p in build_archive(ws.settings, site, {1, 2})] == ["1/index.html"]


def test_serve_shows_a_newly_published_issue_without_a_restart(ws, smtp, secret) -> None:
    ws.configure(extra=smtp_config(smtp.port))
    ws.issue("001.yaml", number=1, title="First issue")
    ws.run("publish", "1")
    web = Web(ws, free_port())
    try:
        web.wait_for("/", 'href="1/index.html"')
        second(ws)  # a new draft
        web.wait_for("/2/index.html", "<h1>Second issue</h1>")  # its page is up, unlisted
        assert 'href="2/index.html"' not in web.request("GET", "/")[1]
        assert "Second issue" not in web.request("GET", "/feed.xml")[1]
        ws.run("publish", "2")
        web.wait_for("/", 'href="2/index.html"', seconds=5)
        feed = feedparser.parse(web.wait_for("/feed.xml", "Second issue", seconds=5))
        assert [e.title for e in feed.entries] == ["Second issue", "First issue"]
    finally:
        web.stop()
