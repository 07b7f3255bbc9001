"""`newsletter new --links FILE` and `--feed URL`: drafts from a list of links and from
RSS and Atom feeds, enriched from the local web of tests/fakeweb.py."""

from __future__ import annotations

import datetime as dt

import yaml

from fakeweb import configure


def test_new_from_a_links_file(ws, web) -> None:
    configure(ws, web)
    ws.issue()  # issue 1: the draft is number 2
    (ws.root / "links.txt").write_text(f"""\
# this week's reading (a comment)
{web.url('/og.html')}
https://arxiv.org/abs/2109.10686v2

## Use cases
- {web.url('/twitter.html')}   Worth a look: the card says why.
- {web.url('/og.html')}
## papers
arXiv:2109.13228
""", "utf-8")
    result = ws.run("new", "--links", "links.txt")
    assert result.exit_code == 0, result.stderr
    path = ws.issues / "002.yaml"
    assert result.stdout == f"{path}\n"
    assert "3 item(s)" not in result.stderr and "4 item(s); now write each 'summary: TODO'" in result.stderr
    text = path.read_text("utf-8")
    assert text.startswith("# yaml-language-server: $schema=../issue.schema.json\nnumber: 2\n")
    assert f"date: {dt.date.today().isoformat()}\n" in text
    data = yaml.safe_load(text)
    sections = data["sections"]
    assert list(sections) == ["featured", "use_cases", "papers"]  # the sections' own order
    assert sections["featured"] == [{
        "url": web.url("/og.html"), "title": "An OpenGraph title", "source": "Open Graph Weekly",
        "card": {"title": "An OpenGraph title", "description": "What the OpenGraph page says.",
                 "image": sections["featured"][0]["card"]["image"]},
        "summary": "TODO"}]
    assert [i["url"] for i in sections["use_cases"]] == [web.url("/twitter.html")]  # og.html once
    assert sections["use_cases"][0]["summary"] == "Worth a look: the card says why."
    assert [i["url"] for i in sections["papers"]] == ["https://arxiv.org/abs/2109.10686v2",
                                                      "https://arxiv.org/abs/2109.13228"]
    assert sections["papers"][1]["paper"]["title"].startswith("PASS:")
    assert (ws.issues / sections["featured"][0]["card"]["image"]).is_file()
    check = ws.run("check", "issues/002.yaml")
    assert check.exit_code == 0, check.stderr


def test_a_bad_links_file_writes_nothing(ws, web) -> None:
    configure(ws, web)
    (ws.root / "links.txt").write_text(f"## featured\n{web.url('/og.html')}\n## interviews\nnot a link\n")
    result = ws.run("new", "--links", "links.txt")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "links.txt:3:1: 'interviews' is not a section; use one of: featured, use_cases, papers, articles, other",
        "links.txt:4:1: 'not' is neither an http(s) link nor an arXiv id",
    ]
    assert not list(ws.issues.glob("*.yaml"))


def test_a_link_that_fails_is_listed_and_the_draft_kept(ws, web) -> None:
    configure(ws, web)
    (ws.root / "links.txt").write_text(f"{web.url('/og.html')}\n{web.url('/missing')}\n")
    result = ws.run("new", "--links", "links.txt")
    assert result.exit_code == 1
    assert f"issues/001.yaml:21:12: {web.url('/missing')}: 404 Not Found" in result.stderr
    items = yaml.safe_load((ws.issues / "001.yaml").read_text())["sections"]["featured"]
    assert items[1] == {"url": web.url("/missing"), "summary": "TODO"}


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>A blog</title><link>{base}/</link><description>Posts</description>
<item><title>Newest post</title><link>{base}/og.html</link><pubDate>Tue, 12 Oct 2021 09:00:00 GMT</pubDate></item>
<item><title>Same day as the last issue</title><link>{base}/twitter.html</link>
  <pubDate>Sun, 10 Oct 2021 20:00:00 GMT</pubDate></item>
<item><title>Already in the last issue</title><link>https://thegradient.pub/first</link>
  <pubDate>Mon, 11 Oct 2021 09:00:00 GMT</pubDate></item>
<item><title>A paper</title><link>https://arxiv.org/abs/2106.08265</link>
  <pubDate>Mon, 11 Oct 2021 10:00:00 GMT</pubDate></item>
<item><title>Too old</title><link>{base}/jsonld.html</link><pubDate>Sat, 09 Oct 2021 09:00:00 GMT</pubDate></item>
</channel></rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>An Atom blog</title><id>urn:blog</id>
<updated>2021-10-12T00:00:00Z</updated>
<entry><title>Relative link</title><link href="/relative.html"/><id>urn:1</id>
  <updated>2021-10-12T00:00:00Z</updated></entry>
<entry><title>Old</title><link href="{base}/title.html"/><id>urn:2</id><published>2021-01-01T00:00:00Z</published>
  <updated>2021-01-01T00:00:00Z</updated></entry>
</feed>
"""


def last_issue(ws) -> None:
    ws.issue(body="sections:\n  featured:\n    - title: First\n      url: https://thegradient.pub/first\n"
                  "      summary: S.\n")


def test_new_from_an_rss_feed_takes_what_came_since_the_last_issue(ws, web) -> None:
    configure(ws, web)
    last_issue(ws)
    web.feed_rss = RSS.format(base=web.base).encode()
    result = ws.run("new", "--feed", web.url("/feed.rss"))
    assert result.exit_code == 0, result.stderr
    sections = yaml.safe_load((ws.issues / "002.yaml").read_text())["sections"]
    assert [(i["title"], i["url"]) for i in sections["featured"]] == [
        ("Newest post", web.url("/og.html")), ("Same day as the last issue", web.url("/twitter.html"))]
    assert sections["featured"][0]["card"]["title"] == "An OpenGraph title"  # the feed's title stays
    assert sections["papers"][0]["url"] == "https://arxiv.org/abs/2106.08265"
    assert sections["papers"][0]["paper"]["title"] == "Towards Total Recall in Industrial Anomaly Detection"
    assert all(i["summary"] == "TODO" for items in sections.values() for i in items)


def test_new_from_an_atom_feed_and_a_links_file_together(ws, web) -> None:
    configure(ws, web)
    last_issue(ws)
    web.feed_atom = ATOM.format(base=web.base).encode()
    (ws.root / "links.txt").write_text(f"## articles\n{web.url('/jsonld.html')}\n")
    result = ws.run("new", "--links", "links.txt", "--feed", web.url("/feed.atom"))
    assert result.exit_code == 0, result.stderr
    sections = yaml.safe_load((ws.issues / "002.yaml").read_text())["sections"]
    assert [i["url"] for i in sections["featured"]] == [web.url("/relative.html")]  # resolved, and new
    assert [i["url"] for i in sections["articles"]] == [web.url("/jsonld.html")]


def test_a_feed_that_cannot_be_read_writes_nothing(ws, web) -> None:
    configure(ws, web)
    result = ws.run("new", "--feed", web.url("/missing"))
    assert result.exit_code == 1
    assert result.stderr == f"{web.url('/missing')}: 404 Not Found\n"
    result = ws.run("new", "--feed", web.url("/og.html"))
    assert result.exit_code == 1
    assert result.stderr == f"{web.url('/og.html')}: is not an RSS or Atom feed\n"
    assert not list(ws.issues.glob("*.yaml"))
