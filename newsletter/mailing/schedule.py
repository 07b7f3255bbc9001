"""Scheduled sends: ``send ISSUE --at TIME`` writes a row in ``schedules``; ``send --due``
(from cron) and a thread of ``serve`` start the sends whose time has come.

    scheduled -> started     (claimed, then the normal journaled send)
        \\-> cancelled

The issue and the setup are checked when the send is scheduled (a broken one is refused
then, not at 3 a.m.), and rendered when it fires. A row is claimed (scheduled -> started)
in one statement before anything is sent, so two ``--due`` processes, or ``serve`` and
cron (on one host, or on several sharing a PostgreSQL store), never both start it; the
send itself is ``send_issue``, journaled and resumable (``newsletter send ISSUE --yes``
resumes one that stopped), never mailing anyone twice.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.db import Database
from newsletter.mailing.send import Report, prepare, send_issue
from newsletter.mailing.storage import connect, driver_errors, now, store_name

CHECK_EVERY = 2.0  # seconds between serve's looks for due sends (with jitter)
NOT_SENT = "not sent: "  # the detail of a fired row whose send never began (it may be scheduled again)
LOCK = "schedules"  # PostgreSQL: what reads a row and then writes it takes turns


class Scheduled(NamedTuple):
    issue: int
    path: str
    due: float  # unix time
    state: str  # scheduled | started | cancelled
    detail: str

    def when(self) -> str:
        """The due time in local time and in UTC."""
        return describe_time(self.due)


class Fired(NamedTuple):
    """A due send that was started, and what came of it: a report, or why it did not run."""

    scheduled: Scheduled
    report: Report | None
    error: NewsletterError | None


def describe_time(due: float) -> str:
    local = dt.datetime.fromtimestamp(due).astimezone()
    utc = dt.datetime.fromtimestamp(due, dt.UTC)
    return f"{local:%Y-%m-%d %H:%M:%S %z} local ({utc:%Y-%m-%d %H:%M:%S} UTC)"


def parse_at(text: str, at: float | None = None) -> float:
    """The unix time of an ISO 8601 ``--at`` with a timezone, which must be in the future."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise NewsletterError(f"--at {text!r} is not a date and time", hint="ISO 8601 with a timezone, like"
                              " 2026-12-01T09:00+09:00 or 2026-12-01T00:00Z") from None
    if when.tzinfo is None:
        raise NewsletterError(f"--at {text} has no timezone, so it could mean different times on this machine"
                              " and on the one that sends",
                              hint=f"add one: {text}Z for UTC, or an offset like {text}+09:00")
    due = when.timestamp()
    if due <= (time.time() if at is None else at):
        raise NewsletterError(f"--at {text} is in the past ({describe_time(due)})",
                              hint="to send now: newsletter send ISSUE --yes")
    return due


def schedule_send(path: Path, settings: Settings, display: str, due: float) -> Scheduled:
    """Check the issue and the setup as a send would, then record (or move) its scheduled
    send. Refused once a send of the issue has started."""
    issue = prepare(path, settings, display).issue
    db = connect(settings.subscribers)
    try:
        with db.transaction(LOCK):
            started = db.execute("SELECT audience FROM sends WHERE issue = ?", (issue,)).fetchone()
            if started and started[0]:
                raise NewsletterError(f"the send of issue {issue} has started already; it cannot be scheduled",
                                      hint=f"`newsletter status {display}` shows it; `newsletter send {display}"
                                           " --yes` resumes it")
            row = _row(db, issue)
            if row and row.state == "started" and NOT_SENT not in row.detail:
                raise NewsletterError(f"the scheduled send of issue {issue} has started already")
            db.execute("INSERT INTO schedules (issue, path, due, created_at, state, detail)"
                       " VALUES (?, ?, ?, ?, 'scheduled', '') ON CONFLICT (issue) DO UPDATE SET path = excluded.path,"
                       " due = excluded.due, created_at = excluded.created_at, state = 'scheduled', detail = ''",
                       (issue, str(path.resolve()), due, now()))
            return _row(db, issue)
    finally:
        db.close()


def cancel(settings: Settings, issue: int) -> Scheduled:
    """Cancel a scheduled send that has not started."""
    db = connect(settings.subscribers)
    try:
        with db.transaction(LOCK):
            row = _row(db, issue)
            if row is None or row.state == "cancelled":
                raise NewsletterError(f"issue {issue} has no scheduled send")
            if row.state == "started":
                raise NewsletterError(f"the scheduled send of issue {issue} has started already; too late to cancel",
                                      hint="Ctrl-C (or stopping serve) stops a send; it never resumes on its own")
            db.execute("UPDATE schedules SET state = 'cancelled', detail = ? WHERE issue = ?",
                       (f"cancelled at {now()}", issue))
            return _row(db, issue)
    finally:
        db.close()


def listing(settings: Settings, issue: int | None = None) -> list[Scheduled]:
    """Every scheduled send (or the one of ``issue``), soonest first."""
    db = connect(settings.subscribers)
    try:
        where, args = ("WHERE issue = ?", (issue,)) if issue is not None else ("", ())
        rows = db.execute(f"SELECT issue, path, due, state, detail FROM schedules {where} ORDER BY due, issue", args)
        return [Scheduled(*row) for row in rows]
    finally:
        db.close()


def claim_due(db: Database, at: float | None = None) -> list[Scheduled]:
    """Mark every due send started, in one statement; only the claimer fires them (a
    concurrent claimer's UPDATE waits for this one's rows, then finds them started)."""
    rows = db.execute("UPDATE schedules SET state = 'started', detail = ? WHERE state = 'scheduled' AND due <= ?"
                      " RETURNING issue, path, due, state, detail",
                      (f"started at {now()}", time.time() if at is None else at)).fetchall()
    return sorted((Scheduled(*row) for row in rows), key=lambda row: (row.due, row.issue))


def fire(settings: Settings, row: Scheduled) -> Fired:
    """Run one claimed send to its end (the normal journaled send) and note the outcome."""
    report, error = None, None
    try:
        report = send_issue(Path(row.path), settings, row.path, confirm=None)
    except NewsletterError as e:
        error = e
    except driver_errors() as e:
        error = NewsletterError(f"{store_name(settings.subscribers)}: {e}")
    if error is not None:
        detail = f"stopped: {error.message}"
        db = connect(settings.subscribers)
        try:
            begun = db.execute("SELECT audience FROM sends WHERE issue = ?", (row.issue,)).fetchone()
            if not (begun and begun[0]):
                detail = NOT_SENT + error.message
        finally:
            db.close()
    else:
        c = report.counts
        detail = (f"{c['sent']} sent, {c['failed']} failed, {c['unknown']} unknown, {c['pending']} pending"
                  + (f"; stopped: {report.stopped.message}" if report.stopped else ""))
    _note(settings, row.issue, f"{row.detail}; {detail}")
    return Fired(row, report, error)


def run_due(settings: Settings) -> list[Fired]:
    """Claim and run, one after another, every send whose time has come (``send --due``)."""
    db = connect(settings.subscribers)
    try:
        rows = claim_due(db)
    finally:
        db.close()
    return [fire(settings, row) for row in rows]


def _note(settings: Settings, issue: int, detail: str) -> None:
    try:
        db = connect(settings.subscribers)
    except NewsletterError:
        return  # only a note; the journal has the truth
    try:
        db.execute("UPDATE schedules SET detail = ? WHERE issue = ?", (detail, issue))
    except db.Error:
        pass
    finally:
        db.close()


def _row(db: Database, issue: int) -> Scheduled | None:
    row = db.execute("SELECT issue, path, due, state, detail FROM schedules WHERE issue = ?", (issue,)).fetchone()
    return Scheduled(*row) if row else None


class Scheduler:
    """A thread of ``serve`` that looks for due sends every few seconds and runs each in
    a thread of its own (never inside a request)."""

    def __init__(self, settings: Settings, every: float = CHECK_EVERY):
        self.settings = settings
        self.every = every
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop looking; a send under way goes on until the process ends (the journal
        makes a rerun resume it)."""
        self.stopping.set()
        self.thread.join(timeout=1)

    def _loop(self) -> None:
        db: Database | None = None  # one connection (PostgreSQL: a pool) for every look
        try:
            while not self.stopping.wait(timeout=random.uniform(0.5, 1.0) * self.every):
                try:
                    db = db or connect(self.settings.subscribers)
                    rows = claim_due(db)
                except Exception as e:  # the thread must outlive any one failure: say it, go on
                    print(f"scheduler: {type(e).__name__}: {e}", file=sys.stderr)
                    continue
                for row in rows:
                    threading.Thread(target=self._fire, args=(row,), name=f"send-{row.issue}", daemon=True).start()
        finally:
            if db is not None:
                db.close()

    def _fire(self, row: Scheduled) -> None:
        print(f"scheduled send of issue {row.issue} starting", file=sys.stderr)
        try:
            fired = fire(self.settings, row)
        except Exception as e:
            print(f"scheduled send of issue {row.issue}: {type(e).__name__}: {e}", file=sys.stderr)
            return
        print(f"scheduled send of issue {row.issue}: "
              + (fired.error.message if fired.error else f"{fired.report.sent} sent, {fired.report.failed} failed"),
              file=sys.stderr)
