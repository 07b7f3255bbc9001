"""``newsletter check --links``: fetch every link of an issue and report the broken ones
at their ``FILE:LINE:COL`` (a link inside Markdown at its field's), and redirects as notes
with the address they end at. And what a send checks before its first message.

Links: items' URLs, the links in the Markdown of the intro, highlights, summaries and
outro, https images (figures and card thumbnails), more posts. Only http(s) is fetched,
``settings.enrich.concurrency`` requests at once and at most ``PER_HOST`` to one host,
with the User-Agent and the timeout of ``settings.enrich``. Each link is asked with HEAD
first (no body to download); a GET settles it when HEAD fails, is refused (405, 501) or
answers 4xx/5xx, since some servers answer HEAD wrongly. A link that cannot be reached,
times out, or ends in 4xx or 5xx is an error.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from newsletter.authoring.check import check_issue
from newsletter.authoring.fetch import is_fetchable, run_blocking
from newsletter.authoring.mistakes import placeholders
from newsletter.authoring.model import Issue, raw_picks
from newsletter.config import Settings
from newsletter.errors import Invalid, Location, Problem
from newsletter.shapes import dotted
from newsletter.source import Path_, Source, load_yaml

PER_HOST = 2


class Link(NamedTuple):
    url: str
    path: Path_  # the field that holds it


class Outcome(NamedTuple):
    error: str | None = None  # why the link is broken, as words after the URL
    final: str | None = None  # where redirects ended, if any
    status: int | None = None  # the last HTTP status, when there was an answer
    failure: str | None = None  # the kind of failure when there was none (ConnectError, ReadTimeout...)


class LinkReport(NamedTuple):
    errors: list[Problem]
    notes: list[tuple[Location, str]]  # redirects: not errors
    checked: int  # distinct URLs fetched

    def lines(self) -> list[str]:
        """Errors and notes in file order, as `check` prints them."""
        found = [(p.order(), str(p)) for p in self.errors]
        found += [((where.line, where.col), f"{where}: note: {message}") for where, message in self.notes]
        return [line for _, line in sorted(found, key=lambda pair: pair[0])]


def links_of(data: Any) -> list[Link]:
    """Every http(s) link of an issue's raw data, in file order, with the field holding it."""
    if not isinstance(data, dict):
        return []
    found = _in_markdown(data.get("intro"), ("intro",))
    highlights = data.get("highlights")
    for i, line in enumerate(highlights if isinstance(highlights, list) else ()):
        found += _in_markdown(line, ("highlights", i))
    for path, pick in raw_picks(data):
        found += _item_links(pick, path) if path[0] == "sections" else _plain(pick.get("url"), (*path, "url"))
    found += _in_markdown(data.get("outro"), ("outro",))
    return found


def _item_links(item: dict, path: Path_) -> list[Link]:
    found = _plain(item.get("url"), (*path, "url"))
    image, card = item.get("image"), item.get("card")
    if isinstance(image, dict):
        found += _plain(image.get("src"), (*path, "image", "src"))
    if isinstance(card, dict):  # the card shows the item's page; its thumbnail may be on the web
        found += _plain(card.get("image"), (*path, "card", "image"))
    return found + _in_markdown(item.get("summary"), (*path, "summary"))


def _plain(value: Any, path: Path_) -> list[Link]:
    return [Link(value.strip(), path)] if isinstance(value, str) and is_fetchable(value.strip()) else []


def _in_markdown(text: Any, path: Path_) -> list[Link]:
    """The links of a Markdown field, as the renderer reads them (CommonMark, autolinks)."""
    if not isinstance(text, str) or "http" not in text:
        return []
    hrefs = [str(t.attrGet("href") or "") for t in _walk(_markdown().parse(text)) if t.type == "link_open"]
    return [link for href in hrefs for link in _plain(href, path)]


@functools.cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).disable("image")  # as markup.py reads the fields


def _walk(tokens: list) -> Iterator[Any]:
    for token in tokens:
        yield token
        yield from _walk(token.children or [])


def check_links(path: Path, settings: Settings, display: str | None = None) -> LinkReport:
    """Fetch every link of the issue at ``path``; the broken ones and the redirects."""
    source = load_yaml(path, display, what="issue")
    return report(source, fetch_all([link.url for link in links_of(source.data)], settings))


def report(source: Source, outcomes: dict[str, Outcome]) -> LinkReport:
    errors, notes = [], []
    for link in links_of(source.data):
        outcome = outcomes.get(link.url, Outcome())
        where = source.where(link.path)
        if outcome.error:
            errors.append(Problem(where, f"{dotted(link.path)}: {link.url} {outcome.error}"))
        elif outcome.final and outcome.final != link.url:
            notes.append((where, f"{dotted(link.path)}: {link.url} redirects to {outcome.final}"))
    return LinkReport(errors, notes, len(outcomes))


def fetch_all(urls: list[str], settings: Settings) -> dict[str, Outcome]:
    """The outcome of each distinct URL of ``urls``."""
    distinct = list(dict.fromkeys(urls))
    return run_blocking(_fetch_all(distinct, settings)) if distinct else {}


async def _fetch_all(urls: list[str], settings: Settings) -> dict[str, Outcome]:
    import httpx  # only here: it costs ~60 ms to import, which plain `check` never pays

    fetch = settings.enrich
    at_once = max(1, fetch.concurrency)
    limits = httpx.Limits(max_connections=at_once, max_keepalive_connections=at_once)
    everyone = asyncio.Semaphore(at_once)
    hosts: dict[str, asyncio.Semaphore] = {}
    async with httpx.AsyncClient(follow_redirects=True, timeout=httpx.Timeout(fetch.timeout), limits=limits,
                                 headers={"User-Agent": fetch.user_agent, "Accept": "*/*"}) as client:

        async def one(url: str) -> tuple[str, Outcome]:
            host = (urlsplit(url).hostname or "").lower()
            async with hosts.setdefault(host, asyncio.Semaphore(PER_HOST)), everyone:
                return url, await _probe(client, url, fetch.timeout)

        return dict(await asyncio.gather(*(one(url) for url in urls)))


async def _probe(client: Any, url: str, timeout: float) -> Outcome:
    """HEAD, then GET if HEAD did not settle it."""
    try:
        response = await _ask(client, "HEAD", url, timeout)
    except Exception:  # any failure of HEAD: GET decides
        response = None
    if response is None or response.status_code >= 400:
        try:
            response = await _ask(client, "GET", url, timeout)
        except Exception as e:
            return Outcome(error=_failure(e, timeout), failure=type(e).__name__)
    status = response.status_code
    if status >= 400:
        return Outcome(error=f"is broken: {status} {response.reason_phrase or _phrase(status)}".rstrip(),
                       status=status)
    return Outcome(final=str(response.url) if response.history else None, status=status)


async def _ask(client: Any, method: str, url: str, timeout: float) -> Any:
    """One request, redirects followed, the body left unread; all of it within ``timeout``
    (httpx's timeout bounds each read, so a server trickling bytes could go on for ever)."""

    async def exchange() -> Any:
        async with client.stream(method, url) as response:
            return response

    return await asyncio.wait_for(exchange(), timeout)


def _failure(error: Exception, timeout: float) -> str:
    import httpx

    if isinstance(error, (TimeoutError, httpx.TimeoutException)):
        return f"did not answer within {timeout:g} s"
    if isinstance(error, httpx.TooManyRedirects):
        return "redirects too many times"
    if isinstance(error, httpx.UnsupportedProtocol):
        return "redirects to an address that is not http(s)"
    reason = str(error).strip() or type(error).__name__
    if isinstance(error, httpx.ConnectError):
        return f"cannot be reached ({reason})"
    return f"cannot be fetched ({reason})"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def check_to_send(path: Path, settings: Settings, display: str) -> Issue:
    """The issue, checked as `send` needs it: valid, with no placeholder of `newsletter new`
    left, and, when ``links.check_on_send`` is set, no broken link. Raises ``Invalid``."""
    issue = check_issue(path, settings.lang, display).issue
    source = load_yaml(path, display, what="issue")
    problems = [Problem(source.where(at), f"{dotted(at)}: {message}") for at, message in placeholders(source.data)]
    if settings.links.check_on_send:
        problems += report(source, fetch_all([link.url for link in links_of(source.data)], settings)).errors
    if problems:
        raise Invalid(problems)
    return issue
