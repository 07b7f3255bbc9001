"""``newsletter serve``: the archive plus one-click unsubscribe and confirmed sign-up.

Starlette (ASGI) under uvicorn: a small, well-kept framework with a production server,
async where it matters (many idle connections) and plain functions in a thread pool for
the SQLite and SMTP work. The rules themselves live in ``consent``.

    GET  /unsubscribe?token=T   a page with a button; changes nothing (scanners prefetch)
    POST /unsubscribe?token=T   RFC 8058 one-click (List-Unsubscribe=One-Click) or the button
    POST /subscribe             email=...: queues a confirmation link (same answer for everyone)
    GET  /confirm?token=T       a page with a button; changes nothing
    POST /confirm               token=...: subscribes (same-origin only)
    GET  /c/<id>                a tracked link: 302 to its URL, the click recorded (``clicks``)
    /...                        the static archive (rebuilt in the background: ``refresh``)

Every response carries the security headers (the archive's too), and a request body is
capped at ``MAX_BODY`` bytes (413, nothing read further, nothing stored).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from newsletter.authoring.render import Renderer
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.importing import check_address
from newsletter.mailing.schedule import Scheduler
from newsletter.web.clicks import Clicks
from newsletter.web.consent import Consent
from newsletter.web.guard import SecurityHeaders, SteadyFiles, same_origin
from newsletter.web.outbox import Outbox
from newsletter.web.refresh import Refresher
from newsletter.web.stats import stats_routes

NO_STORE = {"Cache-Control": "no-store"}


def create_app(settings: Settings, secret: bytes, site: Path) -> Starlette:
    """The web side, serving the archive built in ``site``."""
    consent = Consent(settings, secret)
    outbox = Outbox(settings, secret)
    refresher = Refresher(settings, site)  # builds the archive after the start, then keeps it current
    scheduler = Scheduler(settings)  # starts scheduled sends when due, in threads of their own
    clicks = Clicks(settings, secret)  # records clicks from a thread, many to a transaction
    renderer = Renderer(settings)
    context = {**renderer.site_context(), "subscribe_url": "/subscribe"}
    labels = context["labels"]

    def page(title: str, message: str = "", form: dict | None = None, status: int = 200) -> HTMLResponse:
        body = renderer.template("page.html", {**context, "title": title, "message": message, "form": form})
        return HTMLResponse(body, status_code=status, headers=NO_STORE)

    def bad_link() -> HTMLResponse:
        return page(labels["unsubscribe"], labels["bad_link"], status=400)

    async def token_of(request: Request) -> str:
        token = request.query_params.get("token")
        if token is None and request.method == "POST":
            token = (await request.form()).get("token")
        return str(token or "")

    def issue_of(request: Request) -> int | None:
        """The issue whose unsubscribe link it was (for `stats`), when it says one."""
        issue = request.query_params.get("issue", "")
        return int(issue) if issue.isdecimal() and issue.isascii() and len(issue) < 10 else None

    async def unsubscribe_page(request: Request) -> HTMLResponse:
        token = await token_of(request)
        email = consent.unsubscribe_address(token)
        if email is None:
            return bad_link()
        return page(labels["unsubscribe_title"].format(name=settings.name), "",
                    {"action": "/unsubscribe" + (f"?issue={n}" if (n := issue_of(request)) else ""),
                     "fields": {"token": token},
                     "button": labels["unsubscribe_button"].format(email=email)})

    async def unsubscribe(request: Request) -> HTMLResponse:
        form = await request.form()
        one_click = form.get("List-Unsubscribe") == "One-Click"
        source = "one-click (RFC 8058)" if one_click else "unsubscribe page"
        email = await run_in_threadpool(consent.unsubscribe, await token_of(request), source, issue_of(request))
        if email is None:
            return bad_link()
        return page(labels["unsubscribed_title"], labels["unsubscribed"].format(name=settings.name, email=email))

    async def subscribe(request: Request) -> HTMLResponse:
        address = str((await request.form()).get("email", ""))
        try:
            check_address(address)
        except NewsletterError:
            return page(labels["subscribe"], labels["bad_address"], status=400)
        outcome = await run_in_threadpool(consent.request, address, _client(request))
        if outcome == "too many":
            return page(labels["subscribe"], labels["try_later"], status=429)
        if outcome == "busy":
            return page(labels["subscribe"], labels["try_later"], status=503)
        return page(labels["check_inbox_title"], labels["check_inbox"].format(email=address.strip()))

    async def confirm_page(request: Request) -> HTMLResponse:
        token = await token_of(request)
        email = consent.confirm_address(token)
        if email is None:
            return page(labels["subscribe"], labels["bad_link"], status=400)
        return page(labels["confirm_title"].format(name=settings.name), "",
                    {"action": "/confirm", "fields": {"token": token},
                     "button": labels["confirm_button"].format(email=email)})

    async def confirm(request: Request) -> HTMLResponse:
        if not same_origin(request, settings.base_url):  # a page elsewhere must not subscribe anyone
            return page(labels["subscribe"], labels["bad_link"], status=403)
        email = await run_in_threadpool(consent.confirm, await token_of(request), "web sign-up, confirmed")
        if email is None:
            return page(labels["subscribe"], labels["bad_link"], status=400)
        return page(labels["confirmed_title"], labels["confirmed"].format(email=email, name=settings.name))

    async def click(request: Request) -> Response:
        url = clicks.follow(request.path_params["rest"], request.method, _client(request),
                            request.headers.get("user-agent", ""))
        if url is None:  # never a redirect to anything but a URL the send stored for this link
            return page(settings.name, labels["bad_link"], status=400)
        # no-store: every click asks us again, and no cache keeps a reader's link
        # (Referrer-Policy: no-referrer comes with every response: the site sees no id)
        return Response(status_code=302, headers={"location": url, **NO_STORE})

    routes = [
        Route("/c/{rest:path}", click, methods=["GET"]),  # HEAD too (Starlette), recorded as a scanner's
        Route("/unsubscribe", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe", unsubscribe, methods=["POST"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm", confirm_page, methods=["GET"]),
        Route("/confirm", confirm, methods=["POST"]),
        *stats_routes(settings),  # /stats, /stats/<issue>: HTTP Basic, NEWSLETTER_STATS_PASSWORD (unset: 404)
        Mount("/", SteadyFiles(directory=site, html=True)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        outbox.start()
        clicks.start()
        refresher.start()
        scheduler.start()
        yield
        scheduler.stop()
        refresher.stop()
        outbox.stop()
        clicks.stop()  # writes the clicks still queued
        consent.close()

    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])


def _client(request: Request) -> str:
    """The client's address: the peer's, or what the proxy says when `--proxy-headers`
    told uvicorn to believe it (never otherwise)."""
    return request.client.host if request.client else "unknown"
