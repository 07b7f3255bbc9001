"""What every response of ``serve`` carries, and what every request may not exceed.

An ASGI middleware rather than a header on each page: the static archive's responses
(Starlette's StaticFiles) get them too, 404s included.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles

MAX_BODY = 8 * 1024  # the forms take an address or a token: a few hundred bytes

# Nothing loads from elsewhere but images, nothing runs, no page may frame ours (the
# unsubscribe and confirm buttons cannot be clickjacked), forms post only to us.
HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:;"
                                 b" form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class _TooLarge(Exception):
    pass


class SecurityHeaders:
    """Adds ``HEADERS`` to every response and answers 413 to a body over ``MAX_BODY``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name for name, _ in HEADERS}
                message = {**message, "headers": [(k, v) for k, v in message.get("headers", [])
                                                  if k.lower() not in names] + HEADERS}
            await send(message)

        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY:
            return await _too_large(send_with_headers)
        seen = 0

        async def capped():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:  # a chunked body that lied or said nothing
                    raise _TooLarge
            return message

        try:
            await self.app(scope, capped, send_with_headers)
        except _TooLarge:
            if not started:
                await _too_large(send_with_headers)


async def _too_large(send) -> None:
    body = b"Request too large.\n"
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def same_origin(request: Request, base_url: str | None) -> bool:
    """Whether a state-changing POST comes from our own pages: the browser's Origin (or,
    without one, Sec-Fetch-Site) must name this server or ``base_url``."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    allowed = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    if base_url:
        parts = urlsplit(base_url)
        allowed.add(f"{parts.scheme}://{parts.netloc}")
    return origin in allowed


class SteadyFiles(StaticFiles):
    """StaticFiles that answer with one version of a file. The archive is rewritten while
    serve runs (each file replaced by a rename); Starlette's FileResponse takes the length
    from one stat and reads the file by its path later, so a page replaced in between went
    out cut short. Here the file is opened once, and its length, ETag and bytes all come
    from that open file (the archive's pages and images are small)."""

    def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Any,
                      status_code: int = 200) -> Response:
        try:
            with open(full_path, "rb") as file:
                body, stat_result = file.read(), os.fstat(file.fileno())
        except OSError:  # gone since it was found: as if it had never been there
            return Response("Not Found", status_code=404, media_type="text/plain")
        etag = hashlib.md5(f"{stat_result.st_mtime}-{stat_result.st_size}".encode(), usedforsecurity=False)
        headers = {"last-modified": formatdate(stat_result.st_mtime, usegmt=True), "etag": f'"{etag.hexdigest()}"'}
        if self.is_not_modified(Headers(headers=headers), Headers(scope=scope)):
            return NotModifiedResponse(Headers(headers=headers))
        media_type = mimetypes.guess_type(str(full_path))[0] or "application/octet-stream"
        return Response(body, status_code=status_code, headers=headers, media_type=media_type)
