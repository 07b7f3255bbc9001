"""Fetching pages, images, feeds and the arXiv API for ``enrich`` and drafts.

Why httpx: one library with an asyncio client, streamed bodies (so a size cap stops
a download instead of trimming it afterwards) and separate connect/read timeouts;
aiohttp would do too, but httpx is also usable from plain code. Redirects are followed
here, hop by hop, so that every hop is checked (http and https only, at most
``MAX_REDIRECTS``) and the chain can be reported to the author.

Concurrency: ``settings.enrich.concurrency`` requests at once in all and at most
``PER_HOST`` to one host, so a list of links from one site does not hammer it.
Successful answers are kept on disk (``.cache/newsletter/enrich/`` in the workspace),
keyed by a hash of the URL, so a rerun fetches nothing it already has.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

import httpx

from newsletter.config import Enrich
from newsletter.source import write_atomic

PAGE_LIMIT = 2 * 1024 * 1024  # bytes of a page read at most; the metadata is in its head
IMAGE_LIMIT = 10 * 1024 * 1024  # an image past this is refused, not trimmed
MAX_REDIRECTS = 10
PER_HOST = 2
CACHE_SECONDS = 7 * 24 * 3600  # a week: long enough for an issue being written
_CHUNK = 64 * 1024


class Fetched(NamedTuple):
    """A successful (2xx) answer."""

    url: str  # as asked
    final_url: str  # after redirects
    status: int
    content_type: str  # the Content-Type header, as sent ("" when none)
    body: bytes
    redirects: tuple[tuple[int, str], ...] = ()  # (status, where it sent us) for each hop
    truncated: bool = False  # the body was longer than the limit and was cut there
    from_cache: bool = False

    @property
    def mime(self) -> str:
        return self.content_type.split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for part in self.content_type.split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None


class FetchError(Exception):
    """A fetch that gave nothing usable; the message is the reason, like '404 Not Found'."""


def is_fetchable(url: str) -> bool:
    """An absolute http(s) URL with a host, and none of what makes browsers and Python read
    another host in it (a login before '@', backslashes, spaces): `check` refuses those."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc
            and "\\" not in url and not any(c.isspace() or ord(c) < 32 for c in url))


class Fetcher:
    """An async HTTP client with limits, used as ``async with Fetcher(...) as f``."""

    def __init__(self, settings: Enrich, cache_dir: Path | None = None):
        self.settings = settings
        self.cache_dir = cache_dir
        self.sent = 0  # requests that went out (cache hits are not requests)
        self._all = asyncio.Semaphore(max(1, settings.concurrency))
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Fetcher:
        limits = httpx.Limits(max_connections=max(1, self.settings.concurrency), max_keepalive_connections=8)
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(self.settings.timeout),
            limits=limits,
            headers={"User-Agent": self.settings.user_agent},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def get(
        self,
        url: str,
        *,
        limit: int = PAGE_LIMIT,
        truncate: bool = True,
        cache: bool = True,
        accept: str = "*/*",
        only: tuple[str, ...] = (),
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> Fetched:
        """GET ``url``, following redirects; raise FetchError unless it ends in a 2xx.

        ``truncate``: past ``limit`` bytes keep what was read (a page) instead of failing
        (an image). ``only``: the media types whose body is read; another type ends with an
        empty body (a PDF linked as a page is not downloaded). ``before`` runs before each
        request that really goes out (arXiv's pace); a cache hit skips it. Only 2xx answers
        are cached: a failure is tried again next time.
        """
        if not is_fetchable(url):
            raise FetchError("only http and https links are fetched")
        key = hashlib.sha256(f"{limit} {url}".encode()).hexdigest()[:40]
        if cache and (hit := self._cached(key)) is not None:
            return hit
        redirects: list[tuple[int, str]] = []
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            if before is not None:
                await before()
            status, location, answer = await self._one(current, limit, truncate, accept, only)
            if location is None:
                assert answer is not None
                fetched = Fetched(url, current, status, answer[0], answer[1], tuple(redirects), answer[2])
                if cache:
                    self._store(key, fetched)
                return fetched
            target = urljoin(current, location)
            if not is_fetchable(target):
                raise FetchError(f"redirects ({status}) to {target}, which is not an http(s) address")
            redirects.append((status, target))
            current = target
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")

    async def _one(self, url: str, limit: int, truncate: bool, accept: str, only: tuple[str, ...]
                   ) -> tuple[int, str | None, tuple[str, bytes, bool] | None]:
        """One request: (status, redirect location or None, (content type, body, truncated))."""
        assert self._client is not None, "use the Fetcher in 'async with'"
        host = (urlsplit(url).hostname or "").lower()
        gate = self._hosts.setdefault(host, asyncio.Semaphore(PER_HOST))
        async with gate, self._all:
            self.sent += 1
            try:
                # The timeout bounds each read; this bounds the whole answer, so a server
                # that trickles a byte a second cannot hold us for ever.
                async with asyncio.timeout(self.settings.timeout * 3):
                    return await self._exchange(url, limit, truncate, accept, only)
            except (TimeoutError, httpx.TimeoutException):
                raise FetchError(f"timed out (no complete answer within {self.settings.timeout:g} s)") from None
            except httpx.ConnectError as e:
                raise FetchError(f"cannot connect ({_reason(e)})") from None
            except httpx.HTTPError as e:
                raise FetchError(f"the connection failed ({_reason(e)})") from None

    async def _exchange(self, url: str, limit: int, truncate: bool, accept: str, only: tuple[str, ...]
                        ) -> tuple[int, str | None, tuple[str, bytes, bool] | None]:
        assert self._client is not None
        request = self._client.build_request("GET", url, headers={"Accept": accept})
        response = await self._client.send(request, stream=True)
        try:
            status = response.status_code
            if status in (301, 302, 303, 307, 308) and response.headers.get("location"):
                return status, response.headers["location"], None
            if not 200 <= status < 300:
                raise FetchError(f"{status} {response.reason_phrase or _phrase(status)}".strip())
            content_type = response.headers.get("content-type", "")
            if only and content_type.split(";")[0].strip().lower() not in only:
                return status, None, (content_type, b"", False)
            declared = response.headers.get("content-length", "")
            if not truncate and declared.isdigit() and int(declared) > limit:
                raise FetchError(f"is {_mb(int(declared))}, more than the {_mb(limit)} allowed")
            body = bytearray()
            cut = False
            async for chunk in response.aiter_bytes(_CHUNK):
                body += chunk
                if len(body) > limit:
                    if not truncate:
                        raise FetchError(f"is more than the {_mb(limit)} allowed; stopped reading")
                    del body[limit:]
                    cut = True
                    break
            return status, None, (content_type, bytes(body), cut)
        finally:
            await response.aclose()

    def _cached(self, key: str) -> Fetched | None:
        if self.cache_dir is None:
            return None
        meta = self.cache_dir / f"{key}.json"
        try:
            info = json.loads(meta.read_text("utf-8"))
            if time.time() - info["fetched_at"] > CACHE_SECONDS:
                return None
            body = (self.cache_dir / f"{key}.body").read_bytes()
        except (OSError, ValueError, KeyError):
            return None
        return Fetched(info["url"], info["final_url"], info["status"], info["content_type"], body,
                       tuple((s, u) for s, u in info["redirects"]), info["truncated"], True)

    def _store(self, key: str, fetched: Fetched) -> None:
        if self.cache_dir is None:
            return
        info = {"url": fetched.url, "final_url": fetched.final_url, "status": fetched.status,
                "content_type": fetched.content_type, "redirects": fetched.redirects,
                "truncated": fetched.truncated, "fetched_at": time.time()}
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.cache_dir / f"{key}.body", fetched.body)  # the body first: the
            write_atomic(self.cache_dir / f"{key}.json", json.dumps(info).encode())  # json marks it whole
        except OSError:
            pass  # a cache that cannot be written only costs a refetch next time


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text or type(error).__name__


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KB"


def run_blocking(coroutine):
    """``asyncio.run(coroutine)`` for synchronous callers, also when this thread already
    runs an event loop (a caller inside async code, or a test harness such as
    Playwright's sync API): then it runs on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
