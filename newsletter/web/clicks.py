"""``GET /c/<id>``: the redirect of a tracked link (``mailing.tracking``), and its click.

The request does only what the answer needs: it checks the id's MAC, finds the link's
URL (in memory after the first time: a link never changes its URL) and queues the
click. A thread writes the queued clicks ``FLUSH`` seconds at a time, in one transaction
(a thread woken for each click cost the redirects about 40% of their throughput under
wrk), judging each:

    scanner   the canary (the email's hidden link) or a client that hit it within
              ``AROUND`` seconds either side (earlier clicks are relabelled when the
              canary comes); a HEAD request; no user agent, or a known tool's; a click
              within ``SOON`` seconds of the message's delivery (with per_subscriber,
              the journal's time for that reader; otherwise the send's start); a
              client opening ``BURST`` different links of an issue within ``BURST_SECONDS``
    repeat    the same reader (the address with per_subscriber, else the client) on a
              link they have already been counted for
    counted   everything else: one per reader, link and issue

A client is a keyed hash of the address and user agent: never stored as it came.
Clicks still queued when the process is killed are lost; ``stop`` writes them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import sys
import threading
import time
from collections import Counter, deque
from typing import NamedTuple
from urllib.parse import quote

from newsletter.config import Settings
from newsletter.mailing.db import Database
from newsletter.mailing.storage import connect, transaction
from newsletter.mailing.tokens import list_id, read_token
from newsletter.mailing.tracking import CANARY, read_link_id

SOON = 10.0  # a human cannot get the message, open it and click within this
AROUND = 300.0  # a canary hit discounts its client's clicks this long before and after
BURST, BURST_SECONDS = 5, 2.0  # humans open links one after another, scanners all at once
FLUSH = 0.1  # seconds between writes of the queued clicks
ISSUES_KEPT = 8  # issues whose counted readers the thread keeps in memory (others are read again)
BACKLOG = 100_000  # queued clicks past this are dropped (and counted), never blocking the redirect

# Tools and link scanners that say what they are (a bot's user agent names its page: "+https://...").
# Browsers always send one.
# Substrings of the lower-cased agent: a regex alternation of them took 60 µs a request.
_MACHINE = ("bot/", "+http", "crawl", "spider", "slurp", "preview", "scan", "python", "curl", "wget", "go-http",
            "java/", "okhttp", "libwww", "httpclient", "axios", "node-fetch", "headless", "phantomjs", "barracuda",
            "mimecast", "proofpoint", "ms-office", "microsoft office", "safelinks", "fortiguard", "symantec",
            "trendmicro")


class Hit(NamedTuple):
    issue: int
    link: int
    at: float  # unix time of the request
    client: str
    email_key: str | None  # only with tracking.per_subscriber
    machine: bool  # HEAD, or a user agent no person uses


class Clicks:
    """Redirect targets of tracked links, and a thread that records the clicks."""

    def __init__(self, settings: Settings, secret: bytes):
        self.settings, self.secret = settings, secret
        self.list_id = list_id(settings.name, settings.sender)
        self.record = settings.tracking.clicks  # off: links already mailed still go where they went
        self.per_subscriber = settings.tracking.per_subscriber
        self.clients: dict[tuple[str, str], tuple[str, bool]] = {}  # (address, agent) -> (client, machine)
        self.urls: dict[tuple[int, int], str] = {}
        self.queue: deque[Hit] = deque()  # appends and pops from two threads need no lock
        self.dropped = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="clicks", daemon=True)
        self.db: Database | None = None  # for link lookups, from the event loop

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Write what is queued and stop."""
        self.stopping.set()
        self.thread.join(timeout=10)
        if self.dropped:
            print(f"clicks: {self.dropped} not recorded: more came than the store could take", file=sys.stderr)
        if self.db is not None:
            self.db.close()

    def follow(self, path: str, method: str, address: str, agent: str) -> str | None:
        """Where ``/c/<path>`` redirects, its click queued; None unless we made the id
        and know its link (then nothing is redirected or recorded)."""
        link_part, _, reader = path.partition("/")
        ids = read_link_id(self.secret, self.list_id, link_part)
        email_key = read_token(self.secret, self.list_id, reader, "click") if reader else None
        if ids is None or (reader and email_key is None):
            return None
        url = self._url(*ids)
        if url is not None and self.record:
            client, machine = self._client(address, agent)
            hit = Hit(*ids, time.time(), client, email_key if self.per_subscriber else None,
                      machine or method == "HEAD")
            if len(self.queue) < BACKLOG:
                self.queue.append(hit)
            else:
                self.dropped += 1
        return url

    def _client(self, address: str, agent: str) -> tuple[str, bool]:
        """The client's keyed hash, and whether its agent is a machine's (kept for the
        clients of the last while: readers click more than once, scanners many times)."""
        known = self.clients.get((address, agent))
        if known is None:
            if len(self.clients) >= 10_000:
                self.clients.clear()
            mac = hmac.new(self.secret, f"click-client\0{address}\0{agent}".encode(), hashlib.sha256)
            known = self.clients[(address, agent)] = (mac.hexdigest()[:32], _machine(agent))
        return known

    def _url(self, issue: int, link: int) -> str | None:
        if link == CANARY:  # scanners land on the web version, which is harmless
            return f"{self.settings.base_url or ''}/{issue}/"
        url = self.urls.get((issue, link))
        if url is None:
            self.db = self.db or connect(self.settings.subscribers)
            row = self.db.execute("SELECT url FROM links WHERE issue = ? AND id = ?", (issue, link)).fetchone()
            if row is None:  # not cached: the send may store it later
                return None
            # As a header allows: non-ASCII (and anything else a header cannot hold) percent-encoded.
            url = self.urls[(issue, link)] = quote(row[0], safe=":/?#[]@!$&'()*+,;=%~")
        return url

    def _loop(self) -> None:
        db = connect(self.settings.subscribers)
        judge = Judge()
        try:
            while not (self.stopping.is_set() and not self.queue):
                self.stopping.wait(FLUSH)
                batch = [self.queue.popleft() for _ in range(len(self.queue))]
                if not batch:
                    continue
                try:
                    with transaction(db):
                        for hit in batch:
                            judge.write(db, hit)
                        judge.flush(db)
                except Exception as e:  # the thread must outlive any one failure: say it, go on
                    judge = Judge()  # what it remembered may name rows that were rolled back
                    print(f"clicks: {len(batch)} not recorded: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            db.close()


class Judge:
    """The verdict on each click, from what the clicks thread remembers (the last minutes'
    canary hits and each client's last seconds; who was counted for which link, per issue,
    read once from the store) so that a click costs a share of one insert, whoever sends
    thousands: the rows go in many to a statement (each statement lets the event loop's
    thread take the GIL back, which costs the redirects more than the insert itself)."""

    def __init__(self) -> None:
        self.canaries: dict[str, float] = {}  # client -> its last canary hit
        # (client, issue) -> its clicks of the last BURST_SECONDS, oldest first, and how many per link
        self.recent: dict[tuple[str, int], tuple[deque[tuple[float, int]], Counter[int]]] = {}
        self.counted: dict[int, set[tuple[str, int]]] = {}  # issue -> (reader, link) counted
        self.started: dict[int, float] = {}  # issue -> its send's start (fixed once there)
        self.unsent: set[int] = set()  # issues with no send yet, as of this batch
        self.rows: list[tuple] = []  # judged, not yet inserted
        self.swept = 0.0

    def write(self, db: Database, hit: Hit) -> None:
        """Judge ``hit``; ``flush`` inserts it (inside the caller's transaction)."""
        self._sweep(hit.at)
        counted = self._counted(db, hit.issue)
        reader = (hit.email_key or hit.client, hit.link)
        if hit.link == CANARY:
            self.canaries[hit.client] = hit.at
            self._discount(db, hit.client, hit.at - AROUND)
            verdict = "scanner"
        elif hit.machine or self._soon(db, hit) or hit.at - self.canaries.get(hit.client, -AROUND) <= AROUND:
            verdict = "scanner"
        elif self._burst(db, hit):
            verdict = "scanner"
        else:
            verdict = "repeat" if reader in counted else "counted"
        if verdict == "counted":
            counted.add(reader)
        self.rows.append((hit.issue, hit.link, hit.at, hit.client, hit.email_key, verdict))

    def flush(self, db: Database) -> None:
        """Insert the clicks judged so far."""
        for start in range(0, len(self.rows), 500):  # 3,000 parameters a statement: far within SQLite's limit
            chunk = self.rows[start:start + 500]
            db.execute("INSERT INTO clicks (issue, link, at, client, email_key, verdict) VALUES "
                       + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)), [v for row in chunk for v in row])
        self.rows = []
        self.unsent.clear()

    def _counted(self, db: Database, issue: int) -> set[tuple[str, int]]:
        counted = self.counted.pop(issue, None)
        if counted is None:
            self.flush(db)  # this batch's clicks of the issue are in the store too
            rows = db.execute("SELECT coalesce(email_key, client), link FROM clicks WHERE issue = ?"
                              " AND verdict = 'counted'", (issue,))
            counted = {(who, link) for who, link in rows}
        self.counted[issue] = counted  # the most recently clicked issue last
        if len(self.counted) > ISSUES_KEPT:
            del self.counted[next(iter(self.counted))]
        return counted

    def _discount(self, db: Database, client: str, since: float, issue: int | None = None) -> None:
        """Relabel ``client``'s clicks since ``since`` (of ``issue``, or all) as a scanner's."""
        self.flush(db)
        where = "client = ? AND at >= ?" + (" AND issue = ?" if issue is not None else "")
        args = (client, since) + ((issue,) if issue is not None else ())
        hint = " INDEXED BY clicks_by_client" if db.dialect == "sqlite" else ""  # SQLite picked the issue index
        for number, link, email_key in db.execute(
                f"UPDATE clicks{hint} SET verdict = 'scanner' WHERE {where}"
                " AND verdict = 'counted' RETURNING issue, link, email_key", args).fetchall():
            self.counted.get(number, set()).discard((email_key or client, link))
        db.execute(f"UPDATE clicks{hint} SET verdict = 'scanner' WHERE {where}"
                   " AND verdict = 'repeat'", args)

    def _soon(self, db: Database, hit: Hit) -> bool:
        """Within ``SOON`` s of the message's delivery: the reader's own with per_subscriber
        (the journal writes it just after the relay took the message, so a click may even
        come first); else of the send's start, all that is known without the reader."""
        if hit.email_key is not None:
            row = db.execute("SELECT updated_at FROM deliveries WHERE issue = ? AND email_key = ? AND state = 'sent'",
                             (hit.issue, hit.email_key)).fetchone()
            if row is not None:
                return hit.at < _unix(row[0]) + SOON
        if hit.issue not in self.started:
            row = None if hit.issue in self.unsent else db.execute("SELECT started_at FROM sends WHERE issue = ?",
                                                                   (hit.issue,)).fetchone()
            if row is None:  # not sent yet (a test copy): nothing to measure from
                self.unsent.add(hit.issue)
                return False
            self.started[hit.issue] = _unix(row[0])
        return 0 <= hit.at - self.started[hit.issue] < SOON

    def _burst(self, db: Database, hit: Hit) -> bool:
        key = (hit.client, hit.issue)
        recent, links = self.recent.get(key) or self.recent.setdefault(key, (deque(), Counter()))
        while recent and recent[0][0] < hit.at - BURST_SECONDS:
            _, old = recent.popleft()
            links[old] -= 1
            if not links[old]:
                del links[old]
        recent.append((hit.at, hit.link))
        links[hit.link] += 1
        if len(links) < BURST:
            return False
        self._discount(db, hit.client, hit.at - BURST_SECONDS, hit.issue)
        return True

    def _sweep(self, now: float) -> None:
        """Forget what no rule looks at any more, once a minute."""
        if now - self.swept < 60:
            return
        self.swept = now
        self.canaries = {client: at for client, at in self.canaries.items() if at >= now - AROUND}
        self.recent = {key: (recent, links) for key, (recent, links) in self.recent.items()
                       if recent and recent[-1][0] >= now - BURST_SECONDS}


def _machine(agent: str) -> bool:
    """Whether a user agent is no person's: none at all, or a tool or scanner naming itself."""
    lower = agent.lower()
    return not agent or any(word in lower for word in _MACHINE)


def _unix(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()
