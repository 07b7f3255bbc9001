"""``serve``'s ``/stats`` and ``/stats/<issue>``: the stats report (``report``) behind
HTTP Basic authentication, for the author only.

The password is NEWSLETTER_STATS_PASSWORD, read when ``serve`` starts (never from a
file); without it both routes answer 404, as if they did not exist. Any user name is
accepted; the password is compared in constant time. A client that gets it wrong
``LIMIT`` times within ``WINDOW`` seconds is answered 429 until the window has passed,
so guessing is slow even over many connections from one address. Reports are built in
the thread pool (SQL and matplotlib take a fraction of a second) and never cached.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import threading
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.stats import read_stats
from newsletter.web.report import render_report

PASSWORD_VARIABLE = "NEWSLETTER_STATS_PASSWORD"
LIMIT, WINDOW = 10, 60.0  # wrong passwords from one client, seconds
_PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
_CHALLENGE = {**_PRIVATE, "WWW-Authenticate": 'Basic realm="newsletter stats", charset="UTF-8"'}


def stats_routes(settings: Settings, password: str | None = None) -> list[Route]:
    """The two routes; ``password`` defaults to NEWSLETTER_STATS_PASSWORD."""
    secret = (password if password is not None else os.environ.get(PASSWORD_VARIABLE, "")).encode("utf-8")
    failures: dict[str, list[float]] = {}
    lock = threading.Lock()

    def refused(client: str) -> bool:
        with lock:
            recent = [t for t in failures.get(client, ()) if t > time.monotonic() - WINDOW]
            failures[client] = recent
            return len(recent) >= LIMIT

    def failed(client: str) -> None:
        with lock:
            failures.setdefault(client, []).append(time.monotonic())
            if len(failures) > 10_000:  # many clients: forget those whose window has passed
                for old in [c for c, times in failures.items() if times[-1] < time.monotonic() - WINDOW]:
                    del failures[old]

    async def report(request: Request) -> Response:
        if not secret:
            return PlainTextResponse("Not Found", status_code=404)
        client = request.client.host if request.client else "unknown"
        if refused(client):
            return PlainTextResponse("Too many wrong passwords; try again in a minute.\n", status_code=429,
                                     headers={**_PRIVATE, "Retry-After": str(int(WINDOW))})
        if not hmac.compare_digest(_password_of(request), secret):
            if request.headers.get("authorization"):
                failed(client)
            return PlainTextResponse("The stats need the password.\n", status_code=401, headers=_CHALLENGE)
        issue = request.path_params.get("issue")
        try:
            body = await run_in_threadpool(_render, settings, issue)
        except NewsletterError as e:  # an issue never sent, no store yet: said in a sentence
            return PlainTextResponse(str(e) + "\n", status_code=404, headers=_PRIVATE)
        return HTMLResponse(body, headers=_PRIVATE)

    return [Route("/stats", report, methods=["GET"]), Route("/stats/{issue:int}", report, methods=["GET"])]


def _render(settings: Settings, issue: int | None) -> str:
    return render_report(settings, read_stats(settings.subscribers, issue, latest=True), "/stats/{issue}", "/stats")


def _password_of(request: Request) -> bytes:
    """The password of a Basic ``Authorization`` header (b"" when there is none)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""
    return decoded.partition(b":")[2]
