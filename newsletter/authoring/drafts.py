"""Drafts from links and feeds: ``newsletter new --links FILE`` and ``--feed URL``.

A links file is the way an author collects a week's reading: one URL (or arXiv id) a
line, optionally under headings that name the sections::

    ## featured
    https://example.com/post   a note here becomes the summary
    ## papers
    arXiv:2109.10686

Lines before any heading go to ``papers`` when they are arXiv links, else ``featured``.
A feed (RSS or Atom, read by feedparser, fetched by the same fetcher as ``enrich``)
adds its entries published since the previous issue's date. Either way the next issue
file is written with ``summary: TODO`` for the author, then enriched. A draft: nothing
is ever sent from here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urljoin

import yaml

from newsletter.authoring.arxivmeta import arxiv_id, valid_id
from newsletter.authoring.enrich import Report, enrich_issue
from newsletter.authoring.fetch import Fetcher, FetchError, run_blocking
from newsletter.authoring.pagemeta import clean
from newsletter.authoring.scaffold import issue_files, new_issue
from newsletter.config import Settings
from newsletter.errors import Invalid, Location, NewsletterError, Problem
from newsletter.shapes import SECTION_KEYS, is_web_url
from newsletter.source import load_yaml, read_text

TODO = "TODO"
FEED_LIMIT = 5 * 1024 * 1024
_FEED_TYPES = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"


class Link(NamedTuple):
    url: str
    section: str
    title: str | None = None  # from a feed entry
    summary: str = TODO  # the note after the URL, when there is one


class Draft(NamedTuple):
    path: Path
    links: int
    report: Report


def draft_issue(settings: Settings, today: dt.date, links_file: Path | None = None,
                feeds: tuple[str, ...] = ()) -> Draft:
    """Write the next issue from ``links_file`` and ``feeds``, enriched."""
    links = read_links(links_file) if links_file is not None else []
    if feeds:
        previous = _previous_issue(settings.root / "issues")
        links += run_blocking(_feed_links(settings, feeds, *previous))
    unique: dict[str, Link] = {}
    for link in links:
        unique.setdefault(link.url, link)  # each URL once, where it first came
    links = list(unique.values())
    if not links:
        where = " and ".join(filter(None, (str(links_file) if links_file else "", ", ".join(feeds))))
        raise NewsletterError(f"{where}: no links to draft an issue from")
    path = new_issue(settings, today, sections_yaml(links))
    return Draft(path, len(links), enrich_issue(path, settings, display=_shown(path, settings.root)))


def read_links(path: Path, display: str | None = None) -> list[Link]:
    """The links of a links file; every bad line is reported at once."""
    display = display or str(path)
    section: str | None = None
    links: list[Link] = []
    problems: list[Problem] = []
    for number, line in enumerate(read_text(path, display).splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            name = re.sub(r"[\s-]+", "_", text.lstrip("#").strip().lower())
            if name in SECTION_KEYS:
                section = name
            elif text.startswith("##"):
                problems.append(Problem(Location(display, number, 1), f"'{text.lstrip('#').strip()}' is not a "
                                        f"section; use one of: {', '.join(SECTION_KEYS)}"))
            continue  # a single '#': a comment
        text = re.sub(r"^[-*+]\s+", "", text)
        first, _, note = text.partition(" ")
        first = first.strip("<>")
        paper = valid_id(re.sub(r"^arxiv:", "", first, flags=re.I))
        url = f"https://arxiv.org/abs/{paper}" if paper and not is_web_url(first) else first
        if not is_web_url(url):
            col = line.index(first[:1]) + 1 if first else 1
            problems.append(Problem(Location(display, number, col),
                                    f"'{first}' is neither an http(s) link nor an arXiv id"))
            continue
        links.append(Link(url, section or _section_of(url), None, clean(note) or TODO))
    if problems:
        raise Invalid(problems)
    return links


def _section_of(url: str) -> str:
    return "papers" if arxiv_id(url) else "featured"


def sections_yaml(links: list[Link]) -> str:
    """The ``sections:`` block of a draft, in the sections' order, links in the given order."""
    out = ["sections:\n"]
    for key in SECTION_KEYS:
        chosen = [link for link in links if link.section == key]
        if chosen:
            out.append(f"  {key}:\n")
        for link in chosen:
            first = f"title: {_scalar(link.title)}\n      url: " if link.title else "url: "
            out.append(f"    - {first}{_scalar(link.url)}\n      summary: {_scalar(link.summary)}\n")
    return "".join(out)


def _scalar(text: str) -> str:
    """``text`` as a YAML value: plain when the checker reads it back as the same text."""
    try:
        if yaml.safe_load(f"k: {text}") == {"k": text}:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _previous_issue(folder: Path) -> tuple[dt.date | None, set[str]]:
    """The date of the latest issue in ``folder`` and the URLs it links (not linked again)."""
    files = issue_files(folder) if folder.is_dir() else {}
    try:
        data = load_yaml(files[max(files)]).data if files else {}
    except NewsletterError:  # a broken file: no date to go by, so every entry is offered
        data = {}
    date = data.get("date")
    return (date if isinstance(date, dt.date) else None), set(_urls(data))


def _urls(value: object):
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "url" and isinstance(inner, str):
                yield inner.strip()
            else:
                yield from _urls(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _urls(inner)


async def _feed_links(settings: Settings, feeds: tuple[str, ...], since: dt.date | None,
                      known: set[str]) -> list[Link]:
    async with Fetcher(settings.enrich) as fetcher:
        answers = await asyncio.gather(*(fetcher.get(url, limit=FEED_LIMIT, truncate=False, cache=False,
                                                     accept=_FEED_TYPES) for url in feeds),
                                       return_exceptions=True)
    links: list[Link] = []
    for url, answer in zip(feeds, answers, strict=True):
        if isinstance(answer, FetchError):
            raise NewsletterError(f"{url}: {answer}")
        if isinstance(answer, BaseException):
            raise answer
        links += feed_entries(answer.body, answer.final_url, since, known, url)
    return links


def feed_entries(body: bytes, base: str, since: dt.date | None, known: set[str], shown: str) -> list[Link]:
    """The entries of an RSS or Atom feed published on or after ``since`` (the previous
    issue's day: what came out after it was sent), minus links already in ``known``."""
    import feedparser

    feed = feedparser.parse(body, response_headers={"content-location": base})
    if not feed.entries and (feed.bozo or not feed.version):
        raise NewsletterError(f"{shown}: is not an RSS or Atom feed")
    links = []
    for entry in feed.entries:
        url = urljoin(base, entry.get("link") or "")
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        if not is_web_url(url) or url in known or (since and when and dt.date(*when[:3]) < since):
            continue
        links.append(Link(url, _section_of(url), clean(entry.get("title"))))
    return links


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
