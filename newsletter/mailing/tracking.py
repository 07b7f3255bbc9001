"""Tracked links (``tracking.clicks``): each link of a sent issue gets a number, kept in
the store's ``links`` table, and the email links ``{base_url}/c/<id>`` instead, where
``serve`` redirects (``web/clicks``).

The id is ``<issue>.<link>.<mac>``: the MAC (HMAC-SHA256 of the newsletter's secret,
cut to 12 bytes, base64url) covers the list, the issue and the number, so nobody can
make an id we did not write, and the redirect only goes to the URL stored for it (never
one taken from the request). Link 0 is the canary, stored nowhere. A link keeps its
number for good: a rerun, a resumed send or an edit after a test copy appends new
numbers and never gives an old one another URL, so every link already mailed keeps
going where it went.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from newsletter.authoring.labels import in_lang
from newsletter.authoring.linkcheck import fetch_all
from newsletter.authoring.markup import Markdown
from newsletter.authoring.model import Issue
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.db import Database
from newsletter.mailing.storage import connect, driver_errors, store_error
from newsletter.mailing.tokens import list_id as list_id_of

CANARY = 0  # the link no human clicks (hidden in the email's HTML)
_ID = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.([A-Za-z0-9_-]{16})")


def _mac(secret: bytes, list_id: str, issue: int, link: int) -> str:
    digest = hmac.new(secret, f"click\0{list_id}\0{issue}.{link}".encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode("ascii")  # 12 bytes: 16 characters, no padding


def link_id(secret: bytes, list_id: str, issue: int, link: int) -> str:
    """The signed id of link number ``link`` of ``issue``."""
    return f"{issue}.{link}.{_mac(secret, list_id, issue, link)}"


def read_link_id(secret: bytes, list_id: str, text: str) -> tuple[int, int] | None:
    """(issue, link) of an id we made; None for anything else, in any other spelling."""
    match = _ID.fullmatch(text)
    if match is None:
        return None
    issue, link = int(match.group(1)), int(match.group(2))
    return (issue, link) if hmac.compare_digest(match.group(3), _mac(secret, list_id, issue, link)) else None


def tracking_on(settings: Settings) -> bool:
    """Links are tracked only with ``tracking.clicks`` and a ``base_url`` to redirect from."""
    return settings.tracking.clicks and bool(settings.base_url)


class LinkBook:
    """The tracked links of one issue as a render hands them out (``Renderer.render``'s
    ``track``): known URLs keep their number, new ones get the next; ``save`` stores them."""

    def __init__(self, settings: Settings, secret: bytes, issue: Issue):
        self.settings, self.secret, self.issue = settings, secret, issue.number
        self.places = _places(issue, in_lang(settings.brand.footer, issue.lang), settings.about)
        self.list_id = list_id_of(settings.name, settings.sender)
        self.base = f"{settings.base_url}/c/"
        self.known = {url: n for n, url in self._rows()}
        self.new: dict[int, tuple[str, str, str]] = {}  # number -> (url, section, title)

    def _rows(self) -> list[tuple[int, str]]:
        db = self._connect()
        try:
            return db.execute("SELECT id, url FROM links WHERE issue = ?", (self.issue,)).fetchall()
        finally:
            db.close()

    def _connect(self) -> Database:
        return connect(self.settings.subscribers)  # its failures are already a NewsletterError

    def link(self, url: str, tagged: str) -> str:
        """The redirect URL for the issue's ``url``, to ``tagged`` (with its UTM parameters)."""
        number = self.known.get(tagged)
        if number is None:
            number = max(self.known.values(), default=0) + 1
            self.known[tagged] = number
            self.new[number] = (tagged, *self.places.get(url, ("", "")))
        return self.base + link_id(self.secret, self.list_id, self.issue, number)

    @property
    def canary(self) -> str:
        return self.base + link_id(self.secret, self.list_id, self.issue, CANARY)

    def save(self) -> None:
        """Store the numbers handed out. Another send or test of the same issue preparing
        at the same moment could have taken a number for another URL: then nothing is
        stored and the send stops before any message (running it again renumbers)."""
        if not self.new:
            return
        db = self._connect()
        try:
            with db.transaction(lock=f"links of issue {self.issue}"):  # check, then insert: one at a time
                for number, (url, section, title) in self.new.items():
                    row = db.execute("SELECT url FROM links WHERE issue = ? AND id = ?",
                                     (self.issue, number)).fetchone()
                    if row is not None and row[0] != url:
                        raise NewsletterError(f"issue {self.issue}: its links were numbered by another send at the"
                                              " same moment; nothing was sent", hint="run the same command again")
                    db.execute("INSERT INTO links (issue, id, url, section, title) VALUES (?, ?, ?, ?, ?)"
                               " ON CONFLICT DO NOTHING", (self.issue, number, url, section, title))
        except driver_errors() as e:
            raise store_error(self.settings.subscribers, e) from None
        finally:
            db.close()
        self.new = {}

    def check_served(self) -> None:
        """Refuse to send unless ``serve`` answers the redirect at base_url (with the same
        secret): otherwise every link of every message would be broken. Asks for the
        canary, which serve records as a scanner's, so no count changes."""
        if not self.settings.links.check_hosted:
            return
        outcome = fetch_all([self.canary], self.settings)[self.canary]
        if outcome.error:
            raise NewsletterError(
                f"issue {self.issue}: with tracking.clicks the email's links go through {self.base}, which does"
                f" not answer ({outcome.status or outcome.failure}); every link in the email would be broken",
                hint="run `newsletter serve` at base_url with the same NEWSLETTER_SECRET and subscriber store,"
                     " or set tracking: {clicks: false}")


def _places(issue: Issue, footer: str | None, about: str | None) -> dict[str, tuple[str, str]]:
    """Each URL of the email -> (section, title) for the ``links`` table: its item's
    title, or a Markdown link's own text; the first place a URL appears names it."""
    out: dict[str, tuple[str, str]] = {}
    parser = Markdown().md  # the renderer's own configuration: the same hrefs, normalized alike

    def prose(text: str | None, section: str, inline: bool = False) -> None:
        tokens = parser.parseInline(text or "", {}) if inline else parser.parse(text or "", {})
        for token in tokens:
            kids, href, start = token.children or [], None, 0
            for n, kid in enumerate(kids):
                if kid.type == "link_open":
                    href, start = str(kid.attrGet("href") or ""), n
                elif kid.type == "link_close" and href is not None:
                    out.setdefault(href, (section, "".join(k.content for k in kids[start:n]).strip()))
                    href = None

    prose(issue.intro, "intro")
    for line in issue.highlights:
        prose(line, "highlights", inline=True)
    for section in issue.sections:
        for item in section.items:
            out.setdefault(item.url, (section.key, item.title))
            if item.paper:
                out.setdefault(item.paper.url, (section.key, item.paper.title))
            prose(item.summary, section.key)
    for post in issue.more:
        out.setdefault(post.url, ("more", post.title))
    for text, section in ((issue.outro, "outro"), (footer, "footer"), (about, "footer")):
        prose(text, section)
    return out
