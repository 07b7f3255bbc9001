"""What happened to each issue and to the list, from the store alone: plain data for
``newsletter stats`` (table, JSON) and the HTML report (``web/report``).

Where each number comes from, so none is counted twice:

- deliveries: the send journal (``deliveries``), plus the totals ``journal prune`` kept
  in ``sends.pruned``; ``failed`` is the relay's refusal at send time, split by kind
  (``address``: the mailbox does not exist);
- bounced: bounce reports read later by ``newsletter bounces`` (``inbound`` hard and
  soft), distinct addresses per issue;
- unsubscribes: consent-record changes to ``unsubscribed`` whose link or message
  carried the issue (``events.issue``), by source; complaints: ``inbound`` complaints;
- clicks: ``clicks`` rows judged ``counted`` (one per reader and link); ``repeat`` and
  ``scanner`` (mail scanners, the canary) are reported apart, never in ``counted``;
- subscribers over time: the consent record, each change that moved an address into or
  out of ``subscribed``, by UTC day.

Each statement is one grouped query (covering indexes where they exist), all read in one
snapshot, so the numbers agree with each other: about a second at a million deliveries.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

from newsletter.errors import NewsletterError
from newsletter.mailing.db import Database

FAILED_KINDS = ("address", "refused", "unsupported", "temporary", "other")
STATUSES = ("subscribed", "unsubscribed", "bounced")
_ISSUE_DETAIL = re.compile(r"issue (\d+):")  # inbound rows written before the `issue` column


class Link(NamedTuple):
    """One tracked link of an issue and its clicks."""

    link: int
    url: str
    section: str
    title: str
    counted: int
    repeat: int
    scanner: int


class IssueStats(NamedTuple):
    """One issue's send and what came back."""

    issue: int
    sent_at: str  # when its first run started (UTC, ISO 8601)
    pruned: bool  # sent rows were dropped; their totals are kept
    deliveries: dict[str, int]  # audience, delivered, failed, unknown, pending, sending, skipped
    failed: dict[str, int]  # FAILED_KINDS -> count
    bounced: dict[str, int]  # hard, soft: addresses with a bounce report naming the issue
    unsubscribes: dict[str, Any]  # total, by_source
    complaints: int
    clicks: dict[str, int]  # counted, readers, repeat, scanner, canary
    links: list[Link]  # most counted first

    def as_json(self) -> dict[str, Any]:
        return {**self._asdict(), "links": [link._asdict() for link in self.links]}


class Day(NamedTuple):
    """Changes to the list on one UTC day, and how many were subscribed at its end."""

    date: str  # YYYY-MM-DD (a week's Monday, a month's first day, when grouped)
    joined: int
    unsubscribed: int
    bounced: int
    subscribed: int


class IssueRow(NamedTuple):
    """One issue in the overview."""

    issue: int
    sent_at: str
    audience: int
    delivered: int
    failed: int
    unknown: int
    bounced: int  # hard + soft bounce reports
    unsubscribes: int
    complaints: int
    clicks: int  # counted
    readers: int  # distinct readers with a counted click
    scanner: int


class Overview(NamedTuple):
    """The whole list: its subscribers now and over time, and a row per sent issue."""

    subscribers: dict[str, int]  # subscribed, unsubscribed, bounced
    growth: list[Day]  # days with a change, oldest first
    issues: list[IssueRow]  # by number
    latest: IssueStats | None = None  # the newest send's stats, when asked for (the report's clicks chart)

    def as_json(self) -> dict[str, Any]:
        """Without ``latest``: `stats ISSUE --format json` tells one issue."""
        return {"subscribers": self.subscribers, "growth": [d._asdict() for d in self.growth],
                "issues": [row._asdict() for row in self.issues]}


def issue_number(text: str) -> int:
    """ISSUE as given on the command line: a number, or an issue file's ``number:``."""
    if text.isdigit():
        return int(text)
    from newsletter.authoring.catalog import facts_of
    from newsletter.source import load_yaml

    number = facts_of(load_yaml(Path(text), text, what="issue")).number
    if number is None:
        raise NewsletterError(f"{text}: no issue number in it")
    return number


def read_stats(store: Path | str, issue: int | None = None, latest: bool = False) -> IssueStats | Overview:
    """``issue``'s stats, or the overview without one (``latest``: with the newest
    send's stats), from the store at ``store`` (a file or a URL; never created here)."""
    from newsletter.mailing.storage import open_existing, store_error, store_name

    db = open_existing(store)
    if db is None:
        raise NewsletterError(f"{store_name(store)}: no subscriber store yet, so nothing was sent",
                              hint="`newsletter send` creates it")
    try:
        with db.transaction(snapshot=True):  # a send or a click written meanwhile is in all numbers or none
            return overview(db, latest) if issue is None else issue_stats(db, issue)
    except db.Error as e:
        raise store_error(store, e) from None
    finally:
        db.close()


def issue_stats(db: Database, issue: int) -> IssueStats:
    """One issue's numbers; a NewsletterError if it was never sent from this store."""
    row = db.execute("SELECT started_at, pruned FROM sends WHERE issue = ?", (issue,)).fetchone()
    if row is None:
        sent = [str(n) for (n,) in db.execute("SELECT issue FROM sends ORDER BY issue")]
        known = f"sent: {', '.join(sent[-8:])}" if sent else "no issue has been sent yet"
        known = known.replace("sent: ", "sent: …, ") if len(sent) > 8 else known
        raise NewsletterError(f"issue {issue} was never sent from this subscriber store ({known})")
    states = dict(db.execute("SELECT state, count(*) FROM deliveries WHERE issue = ? GROUP BY state",
                             (issue,)).fetchall())
    for state, n in json.loads(row[1] or "{}").items():
        states[state] = states.get(state, 0) + n
    failed = dict.fromkeys(FAILED_KINDS, 0)
    for kind, n in db.execute("SELECT kind, count(*) FROM deliveries WHERE issue = ? AND state = 'failed'"
                              " GROUP BY kind", (issue,)):
        failed[kind if kind in failed else "other"] += n
    bounced = {"hard": 0, "soft": 0}
    complaints = 0
    for kind, n in db.execute(
            "SELECT kind, count(DISTINCT coalesce(email_key, id)) FROM inbound WHERE kind IN ('hard', 'soft',"
            " 'complaint') AND (issue = ? OR (issue IS NULL AND detail LIKE ?)) GROUP BY kind",
            (issue, f"issue {issue}:%")):
        if kind == "complaint":
            complaints = n
        else:
            bounced[kind] = n
    by_source = dict(db.execute(
        "SELECT source, count(DISTINCT email_key) FROM events WHERE change = 'unsubscribed' AND issue = ?"
        " GROUP BY source ORDER BY count(DISTINCT email_key) DESC, source", (issue,)).fetchall())
    links = [Link(*r) for r in db.execute(
        "SELECT l.id, l.url, l.section, l.title, " + _VERDICTS + " FROM links l"
        " LEFT JOIN clicks c ON c.issue = l.issue AND c.link = l.id WHERE l.issue = ?"
        " GROUP BY l.id, l.url, l.section, l.title", (issue,))]
    links.sort(key=lambda link: (-link.counted, -link.scanner, link.link))
    readers, canary = db.execute(
        "SELECT count(DISTINCT CASE WHEN verdict = 'counted' AND link != 0 THEN coalesce(email_key, client) END),"
        " sum(CASE WHEN link = 0 THEN 1 ELSE 0 END) FROM clicks WHERE issue = ?", (issue,)).fetchone()
    return IssueStats(
        issue, row[0], bool(row[1]), _deliveries(states), failed, bounced,
        {"total": sum(by_source.values()), "by_source": by_source}, complaints,
        {"counted": sum(x.counted for x in links), "readers": readers, "repeat": sum(x.repeat for x in links),
         "scanner": sum(x.scanner for x in links), "canary": canary or 0},
        links)


def overview(db: Database, latest: bool = False) -> Overview:
    """The list now and over time, and a row per sent issue; ``latest``: and the stats
    of the issue sent last."""
    counts = db.execute("SELECT " + ", ".join(f"sum(CASE WHEN status = '{s}' THEN 1 ELSE 0 END)" for s in STATUSES)
                        + " FROM subscribers").fetchone()  # one scan: a GROUP BY would sort 100,000 rows
    subscribers = {status: n or 0 for status, n in zip(STATUSES, counts, strict=True)}
    sends = db.execute("SELECT issue, started_at, pruned FROM sends ORDER BY issue").fetchall()
    states: dict[int, dict[str, int]] = defaultdict(dict)
    for issue, state, n in db.execute("SELECT issue, state, count(*) FROM deliveries GROUP BY issue, state"):
        states[issue][state] = n
    for issue, _, pruned in sends:
        for state, n in json.loads(pruned or "{}").items():
            states[issue][state] = states[issue].get(state, 0) + n
    inbound: dict[int, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for kind, issue, detail, who in db.execute(
            "SELECT kind, issue, substr(detail, 1, 20), coalesce(email_key, id) FROM inbound"
            " WHERE kind IN ('hard', 'soft', 'complaint') AND (issue IS NOT NULL OR detail LIKE 'issue %')"):
        if issue is None:
            issue = int(_ISSUE_DETAIL.match(detail)[1]) if _ISSUE_DETAIL.match(detail) else None
        if issue is not None:
            inbound[issue]["complaint" if kind == "complaint" else "bounced"].add(who)
    unsubscribes = dict(db.execute("SELECT issue, count(DISTINCT email_key) FROM events WHERE change ="
                                   " 'unsubscribed' AND issue IS NOT NULL GROUP BY issue").fetchall())
    clicks = {issue: rest for issue, *rest in db.execute(
        "SELECT issue, sum(CASE WHEN verdict = 'counted' THEN 1 ELSE 0 END), count(DISTINCT CASE WHEN verdict ="
        " 'counted' THEN coalesce(email_key, client) END), sum(CASE WHEN verdict = 'scanner' THEN 1 ELSE 0 END)"
        " FROM clicks WHERE link != 0 GROUP BY issue")}
    rows = []
    for issue, started, _ in sends:
        d = _deliveries(states[issue])
        counted, readers, scanner = clicks.get(issue, (0, 0, 0))
        rows.append(IssueRow(issue, started, d["audience"], d["delivered"], d["failed"], d["unknown"],
                             len(inbound[issue]["bounced"]), unsubscribes.get(issue, 0),
                             len(inbound[issue]["complaint"]), counted, readers, scanner))
    newest = max(sends, key=lambda send: send[1])[0] if latest and sends else None
    return Overview(subscribers, growth(db), rows, None if newest is None else issue_stats(db, newest))


def growth(db: Database) -> list[Day]:
    """Subscribers over time, by UTC day: each consent-record change into or out of
    ``subscribed`` (a bounce of someone already unsubscribed moves nothing). The store
    records a change only when the status changes, so every ``subscribed`` row is a
    join; a leave is looked up only for the few rows that may be one. A join imported
    with its own ``created_at`` counts on that day."""
    rows = db.execute(
        "SELECT day, sum(CASE WHEN change = 'subscribed' THEN 1 ELSE 0 END), sum(CASE WHEN change = 'unsubscribed'"
        " THEN 1 ELSE 0 END), sum(CASE WHEN change = 'bounced' THEN 1 ELSE 0 END) FROM (SELECT change, CASE WHEN"
        " detail LIKE 'created_at %' THEN substr(detail, 12, 10) ELSE substr(at, 1, 10) END AS day FROM events e"
        " WHERE change = 'subscribed' OR (change IN ('unsubscribed', 'bounced') AND (SELECT p.change FROM events p"
        " WHERE p.email_key = e.email_key AND p.id < e.id AND p.change IN ('subscribed', 'unsubscribed', 'bounced')"
        " ORDER BY p.id DESC LIMIT 1) = 'subscribed')) moves GROUP BY day ORDER BY day").fetchall()
    days, total = [], 0
    for day, joined, unsubscribed, bounced in rows:
        total += joined - unsubscribed - bounced
        days.append(Day(day, joined, unsubscribed, bounced, total))
    return days


def by_period(days: list[Day], period: str) -> list[Day]:
    """``days`` grouped by ``week`` (from Monday) or ``month``; ``subscribed`` at the end of each."""
    grouped: dict[str, Day] = {}
    for d in days:
        when = dt.date.fromisoformat(d.date)
        start = (when - dt.timedelta(days=when.weekday()) if period == "week" else when.replace(day=1)).isoformat()
        old = grouped.get(start, Day(start, 0, 0, 0, 0))
        grouped[start] = Day(start, old.joined + d.joined, old.unsubscribed + d.unsubscribed,
                             old.bounced + d.bounced, d.subscribed)
    return list(grouped.values())


def period_for(days: list[Day]) -> str:
    """``week`` for up to half a year of changes, ``month`` beyond: a table that fits a screen."""
    if len(days) < 2:
        return "week"
    span = dt.date.fromisoformat(days[-1].date) - dt.date.fromisoformat(days[0].date)
    return "week" if span.days <= 183 else "month"


# Per link: counted, repeat and scanner clicks (a link nobody clicked has all three 0).
_VERDICTS = ", ".join(f"sum(CASE WHEN c.verdict = '{v}' THEN 1 ELSE 0 END)" for v in ("counted", "repeat", "scanner"))


def _deliveries(states: dict[str, int]) -> dict[str, int]:
    get = states.get
    return {"audience": sum(states.values()), "delivered": get("sent", 0), "failed": get("failed", 0),
            "unknown": get("unknown", 0), "pending": get("pending", 0), "sending": get("sending", 0),
            "skipped": get("skipped", 0)}
