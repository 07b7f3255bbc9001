"""``newsletter enrich``: fill in what the author left out, from the linked pages.

For each item with a ``url``: its ``title`` (when missing), ``source`` (the site's name)
and ``card`` (the page's title, description and preview image, made into a thumbnail
in ``img/``); for arXiv links (and items with only ``paper: {arxiv: ...}``): ``url``,
``title``, ``source`` and ``paper`` (id, title, first authors) from the arXiv API, never
from arXiv's pages. ``more`` posts get a missing ``title``. What the author wrote stays
unless ``force``. The file is edited in place (see ``yamledit``); a link that cannot be
fetched leaves its item as it was and is reported with the reason.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from newsletter.authoring import arxivmeta, thumbs
from newsletter.authoring.fetch import IMAGE_LIMIT, Fetcher, FetchError, is_fetchable, run_blocking
from newsletter.authoring.pagemeta import PageMeta, page_meta
from newsletter.authoring.yamledit import Document, blank
from newsletter.config import Settings
from newsletter.errors import Invalid, Location, NewsletterError, Problem
from newsletter.source import load_yaml, write_atomic

ITEM_ORDER = ("title", "url", "source", "image", "paper", "card", "summary")
PAPER_ORDER = ("arxiv", "title", "authors")
CARD_ORDER = ("title", "description", "image")
ARXIV_SOURCE = "arXiv"
_HTML = ("text/html", "application/xhtml+xml")


class Report(NamedTuple):
    filled: int  # values written
    items: int  # items (and more posts) that got something
    problems: list[Problem]  # errors: what could not be filled; warnings: redirects, reformatting
    requests: int  # requests that went out (cache hits are not)

    @property
    def failed(self) -> bool:
        return any(not p.warning for p in self.problems)


class _Target(NamedTuple):
    path: tuple[Any, ...]  # ("sections", "featured", 0) or ("more", 1)
    more: bool
    page: str | None  # a (non-arXiv) page to read
    arxiv: str | None  # an arXiv id to look up
    at: tuple[Any, ...]  # the value a message points at: the url (or the arXiv id)


class _Page(NamedTuple):
    meta: PageMeta | None = None
    image: str | None = None  # the thumbnail, relative to the issue file
    problems: tuple[tuple[bool, str], ...] = ()  # (is a warning, message)


def cache_dir(settings: Settings) -> Path:
    return settings.root / ".cache" / "newsletter" / "enrich"


def enrich_issue(path: Path, settings: Settings, force: bool = False, display: str | None = None) -> Report:
    """Fill ``path`` in place; the report lists what could not be filled."""
    display = display or str(path)
    source = load_yaml(path, display, what="issue")  # the safe loader first: tags, duplicates, bombs
    if source.problems:
        raise Invalid(source.problems)
    raw = path.read_bytes()
    doc = Document(raw.decode("utf-8"), display)
    targets = list(_targets(doc.data, force))
    pages, papers, requests = run_blocking(_gather(targets, settings, path.parent / "img"))
    found: list[tuple[tuple[Any, ...], str, bool]] = []  # (where, message, is a warning)
    filled = items = 0
    for t in targets:
        page = pages.get(t.page) if t.page else None
        paper = papers.get(t.arxiv) if t.arxiv else None
        found += [(t.at, f"{t.page}: {message}", warning) for warning, message in (page.problems if page else ())]
        if isinstance(paper, str):
            found.append((t.at, f"{t.arxiv}: {paper}", False))
        done, missing = _apply(doc, t, page, paper if isinstance(paper, arxivmeta.ArxivPaper) else None, force)
        filled += done
        items += done > 0
        if missing and page and page.meta is not None:
            found.append((t.at, f"{t.page}: the page gives no title; write one", False))
    problems = []
    if doc.edits:
        text = doc.text()
        if path.read_bytes() != raw:
            raise NewsletterError(f"{display}: changed while enrich ran; nothing written, run it again")
        write_atomic(path, text.encode("utf-8"))
        source = load_yaml(path, display, what="issue")  # lines moved: say where things are now
        if doc.reformatted:
            problems.append(Problem(Location(display), "its indentation was made uniform to add the new keys",
                                    True))
    problems += [Problem(source.where(at), message, warning) for at, message, warning in found]
    return Report(filled, items, sorted(problems, key=Problem.order), requests)


def _targets(data: Any, force: bool):
    """The items and more posts that have something to fill, and what to read for them."""
    sections = data.get("sections") if isinstance(data, dict) else None
    entries: list[tuple[tuple[Any, ...], Any, bool]] = []
    for key, items in sections.items() if isinstance(sections, dict) else ():
        for i, item in enumerate(items if isinstance(items, list) else ()):
            entries.append((("sections", key, i), item, False))
    more = data.get("more") if isinstance(data, dict) else None
    for i, post in enumerate(more if isinstance(more, list) else ()):
        entries.append((("more", i), post, True))
    for path, item, is_more in entries:
        if not isinstance(item, dict):
            continue
        url = item.get("url") if isinstance(item.get("url"), str) and is_fetchable(item["url"]) else None
        paper = item.get("paper") if isinstance(item.get("paper"), dict) else None
        from_url = arxivmeta.arxiv_id(url) if url else None
        arxiv = arxivmeta.valid_id(paper.get("arxiv")) if paper else None
        arxiv = arxiv or from_url
        page = url if url and not from_url else None
        card = item.get("card") if isinstance(item.get("card"), dict) else {}
        if is_more:
            wants_page = wants_paper = force or blank(item.get("title"))
        else:
            wants_page = force or any(blank(v) for v in (item.get("title"), item.get("source"), card.get("title"),
                                                         card.get("description"), card.get("image")))
            wants_paper = force or any(blank(v) for v in (
                item.get("url"), *(() if page else (item.get("title"), item.get("source"))),
                (paper or {}).get("title"), (paper or {}).get("authors")))
        if (page and wants_page) or (arxiv and wants_paper):
            at = path + ("url",) if "url" in item else path + ("paper", "arxiv")
            yield _Target(path, is_more, page if wants_page else None, arxiv if wants_paper else None, at)


async def _gather(targets: list[_Target], settings: Settings, img_dir: Path
                  ) -> tuple[dict[str, _Page], dict[str, Any], int]:
    cache = cache_dir(settings)
    async with Fetcher(settings.enrich, cache) as fetcher:
        images: dict[str, asyncio.Task] = {}
        pages = {t.page: None for t in targets if t.page}
        ids = sorted({t.arxiv for t in targets if t.arxiv})
        jobs = [_read_page(fetcher, url, img_dir, images) for url in pages]
        if ids:
            jobs.append(arxivmeta.lookup(fetcher, settings.enrich.arxiv_api, ids, cache))
        done = await asyncio.gather(*jobs)
    papers = done.pop() if ids else {}
    return dict(zip(pages, done, strict=True)), papers, fetcher.sent


async def _read_page(fetcher: Fetcher, url: str, img_dir: Path, images: dict[str, asyncio.Task]) -> _Page:
    try:
        page = await fetcher.get(url, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.5", only=_HTML)
    except FetchError as e:
        return _Page(problems=((False, str(e)),))
    notes: list[tuple[bool, str]] = []
    if page.redirects:
        codes = ", ".join(str(status) for status, _ in page.redirects)
        notes.append((True, f"redirects ({codes}) to {page.final_url}; link it directly?"))
    if page.mime not in _HTML:
        return _Page(PageMeta(), None, (*notes, (True, f"is {page.mime or 'of no stated type'}, not a web page")))
    meta = await asyncio.to_thread(page_meta, page.body, page.final_url, page.charset)
    image = None
    if meta.image:
        if meta.image not in images:
            images[meta.image] = asyncio.ensure_future(_thumbnail(fetcher, meta.image, img_dir))
        image, problem = await images[meta.image]
        if problem:
            notes.append((False, f"preview image {meta.image}: {problem}"))
    return _Page(meta, image, tuple(notes))


async def _thumbnail(fetcher: Fetcher, url: str, img_dir: Path) -> tuple[str | None, str | None]:
    """(the thumbnail's path relative to the issue, None) or (None, why not)."""
    stem = thumbs.thumb_stem(url)
    if (made := thumbs.existing(img_dir, stem)) is not None:
        return f"{img_dir.name}/{made.name}", None
    try:
        got = await fetcher.get(url, limit=IMAGE_LIMIT, truncate=False, cache=False, accept="image/*")
        data, ext = await asyncio.to_thread(thumbs.thumbnail, got.body)
    except (FetchError, thumbs.ThumbError) as e:
        return None, str(e)
    img_dir.mkdir(exist_ok=True)
    write_atomic(img_dir / f"{stem}{ext}", data)
    return f"{img_dir.name}/{stem}{ext}", None


def _apply(doc: Document, t: _Target, page: _Page | None, paper: arxivmeta.ArxivPaper | None,
           force: bool) -> tuple[int, bool]:
    """Write what was found; returns (values written, whether the title is still missing)."""
    filled = 0
    item = doc.node(t.path)

    def put(path: tuple[Any, ...], key: str, value: Any, order: tuple[str, ...], overwrite: bool = force) -> None:
        nonlocal filled
        if value not in (None, "", {}) and doc.set(path, key, value, order, overwrite):
            filled += len(value) if isinstance(value, dict) else 1

    meta = page.meta if page else None
    if meta is not None:
        put(t.path, "title", meta.title, ITEM_ORDER)
        if not t.more:
            put(t.path, "source", meta.site_name or _host(t.page or ""), ITEM_ORDER)
            _card(put, t.path, item, meta, page.image if page else None)
    if paper is not None:
        put(t.path, "url", paper.url, ITEM_ORDER, overwrite=False)
        if not t.page:
            put(t.path, "title", paper.title, ITEM_ORDER)
            if not t.more:
                put(t.path, "source", ARXIV_SOURCE, ITEM_ORDER)
        if not t.more:
            fields = {"arxiv": paper.arxiv, "title": paper.title, "authors": paper.authors or None}
            if not isinstance(item.get("paper"), dict):
                put(t.path, "paper", {k: v for k, v in fields.items() if v}, ITEM_ORDER)
            else:
                for key, value in fields.items():
                    put(t.path + ("paper",), key, value, PAPER_ORDER, overwrite=force and key != "arxiv")
    return filled, blank(doc.node(t.path).get("title"))


def _card(put: Any, path: tuple[Any, ...], item: Any, meta: PageMeta, image: str | None) -> None:
    """A card only when the page gives more than its title: a title alone would repeat the item's."""
    fields = {"title": meta.title, "description": meta.description, "image": image}
    if not isinstance(item.get("card"), dict):
        if meta.title and (meta.description or image):
            put(path, "card", {k: v for k, v in fields.items() if v}, ITEM_ORDER)
        return
    for key, value in fields.items():
        put(path + ("card",), key, value, CARD_ORDER)


def _host(url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    return (host[4:] if host.startswith("www.") else host) or None
