"""Papers from the arXiv API: id, title and first authors, for every arXiv link of an issue.

arXiv asks robots to use its API rather than its pages, and to send at most one request
every three seconds. So an issue's ids go in one request (``id_list=``), and the time of
the last request is kept on disk (in the enrich cache folder), so that two runs in a row
wait for each other too; a lock file keeps two processes from going at once.

Why feedparser: the API answers Atom, and feedparser reads Atom (and RSS, for
``new --feed``) leniently into plain dicts; the ``arxiv`` package wraps the same call
but adds paging and retries that would break the one-request rule.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlencode

from newsletter.authoring.arxivid import arxiv_id, valid_id  # noqa: F401 (arxiv_id: enrich and drafts ask here)
from newsletter.authoring.fetch import Fetcher, FetchError
from newsletter.authoring.pagemeta import clean
from newsletter.source import write_atomic

INTERVAL = 3.0  # seconds between two requests to the API, across runs (arXiv's rule)
BATCH = 100  # ids per request; an issue has far fewer
STAMP = "arxiv-last-request"
_VERSION = re.compile(r"v[1-9]\d*$")
_SUFFIXES = {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"}


class ArxivPaper(NamedTuple):
    arxiv: str  # as asked: with the version when the link had one
    title: str
    authors: str  # "Tay, Dehghani, et al."

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


def short_authors(names: list[str]) -> str:
    """The first two family names, then "et al." when there are more: "Tay, Dehghani, et al."."""
    family = [_family(n) for n in names if n.strip()]
    if len(family) > 2:
        return f"{family[0]}, {family[1]}, et al."
    return ", ".join(family)


def _family(name: str) -> str:
    words = name.replace(",", " ").split()
    while len(words) > 1 and words[-1].lower() in _SUFFIXES:
        words.pop()
    return words[-1] if words else name.strip()


async def lookup(fetcher: Fetcher, api: str, ids: list[str], cache_dir: Path) -> dict[str, ArxivPaper | str]:
    """Each id's paper, or why it could not be looked up."""
    wanted = sorted(set(ids))
    found: dict[str, ArxivPaper | str] = {}
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start:start + BATCH]
        query = urlencode({"id_list": ",".join(batch), "max_results": len(batch)})
        url = f"{api}{'&' if '?' in api else '?'}{query}"
        try:
            answer = await fetcher.get(url, accept="application/atom+xml",
                                       before=lambda: wait_turn(cache_dir))
        except FetchError as e:
            found.update({i: f"the arXiv API failed: {e}" for i in batch})
            continue
        papers = parse_atom(answer.body)
        for wanted_id in batch:
            paper = papers.get(wanted_id) or papers.get(_VERSION.sub("", wanted_id))
            if paper is None:
                found[wanted_id] = "arXiv has no such paper"
            else:
                found[wanted_id] = ArxivPaper(wanted_id, paper.title, paper.authors)
    return found


def parse_atom(body: bytes) -> dict[str, ArxivPaper]:
    """The entries of an API answer, by id with and without version."""
    import feedparser  # imported here: only enrich needs it

    out: dict[str, ArxivPaper] = {}
    for entry in feedparser.parse(body).entries:
        m = re.search(r"arxiv\.org/abs/(.+)$", entry.get("id", ""))
        title = clean(entry.get("title"))
        if not m or not title or not valid_id(m[1]):  # the API's "errors#..." entries
            continue
        names = [a.get("name", "") for a in entry.get("authors", []) if isinstance(a, dict)]
        paper = ArxivPaper(m[1], title, short_authors(names))
        out[m[1]] = paper
        out.setdefault(_VERSION.sub("", m[1]), paper)
    return out


async def wait_turn(cache_dir: Path) -> None:
    """Sleep until ``INTERVAL`` seconds have passed since the last request (this run's or
    an earlier one's), then note this request's time."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp = cache_dir / STAMP
    lock = open(cache_dir / f"{STAMP}.lock", "a")  # noqa: SIM115 (held across the await)
    try:
        await asyncio.to_thread(_lock, lock)
        try:
            last = float(stamp.read_text("ascii"))
        except (OSError, ValueError):
            last = 0.0
        # A stamp in the future (a clock set back) costs one interval at most.
        wait = min(last + INTERVAL - time.time(), INTERVAL)
        if wait > 0:
            await asyncio.sleep(wait)
        write_atomic(stamp, repr(time.time()).encode("ascii"))
    finally:
        lock.close()  # closing releases the lock


def _lock(file) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: two runs at the same moment are the user's own doing
        return
    fcntl.flock(file.fileno(), fcntl.LOCK_EX)
