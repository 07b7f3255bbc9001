"""The send journal: one durable row per (issue, address) in the subscriber store, and
one row per issue's send (``sends``: who is sending it now, and since when).

    pending -> sending -> sent | failed | unknown
       \\-> failed (refused before the message was handed over)
       \\-> skipped (unsubscribed before it was handed over)

A row becomes ``sending`` on disk just before its message is handed to the relay (after
the relay accepted the recipient, before DATA), and ``sent`` once the relay took it.
So a row found ``sending`` after a crash may have been delivered: it becomes
``unknown``, is reported, and is resent only when asked; a row still ``pending`` was
never handed over. The first run fixes who the issue is for; reruns resume that
audience only, unless ``--include-new`` (everyone not in it yet) or ``--where`` (those
of a segment not in it yet: segments in turn, nobody twice), each noted in
``sends.segments``. On SQLite one process sends an issue at a time (``acquire``); on
PostgreSQL any number, on any host, each claiming its batches (``leases``). Reads
(``pending``, ``claim``) and writes (``commits``: marks, outcomes) are kept apart.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import NamedTuple

from newsletter.errors import NewsletterError
from newsletter.mailing import leases
from newsletter.mailing.db import Database
from newsletter.mailing.dialects import POSTGRES
from newsletter.mailing.personalize import Recipient
from newsletter.mailing.schema import ORDER
from newsletter.mailing.segments import Segment
from newsletter.mailing.store import change_status, connect, now, subscriber_pages
from newsletter.mailing.transport import Delivery

STATES = ("pending", "sending", "sent", "failed", "unknown", "skipped")
STALE_AFTER = 120.0  # seconds without a heartbeat after which another host's send is taken for dead
# A subscribed reader not in the issue's journal yet (s: subscribers; the issue is the one parameter).
_NEWCOMER = ("s.status = 'subscribed' AND NOT EXISTS"
             " (SELECT 1 FROM deliveries d WHERE d.issue = ? AND d.email_key = s.email_key)")


class Entry(NamedTuple):
    """A row that needs a look: failed or unknown, with the server's reply."""

    email: str
    state: str
    code: int | None
    detail: str


class Task(NamedTuple):
    """A pending row to send: its place in the journal and its reader."""

    rowid: int  # its place in the journal's order (SQLite's rowid, PostgreSQL's seq)
    key: str
    recipient: Recipient
    subscribed: bool = True  # False: the reader left after the run began (settle as skipped)


class SendRunning(NewsletterError):
    """Another process is sending this issue."""


def this_process() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


class Journal:
    """The journal of one issue's send, on its own connection to the store."""

    def __init__(self, target: Path | str, issue: int):
        self.target, self.issue, self.db = target, issue, connect(target)
        self.order = ORDER[self.db.dialect]  # the column of the journal's order
        self.lock = f"send of issue {issue}"  # PostgreSQL: who sends, and pruning, take turns
        self.me = this_process()
        self.shared = self.db.dialect == POSTGRES  # several senders, each writing only the rows it claimed
        mine = " AND owner = ?" if self.shared else ""
        self._mark = ("UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE issue = ?"
                      f" AND email_key = ? AND state = 'pending'{mine} AND EXISTS"
                      " (SELECT 1 FROM subscribers s WHERE s.email_key = ? AND s.status = 'subscribed')")
        self._record = ("UPDATE deliveries SET state = ?, code = ?, detail = ?, kind = ?, updated_at = ?"
                        f" WHERE issue = ? AND email_key = ? AND state IN ('pending', 'sending'){mine}")
        self._mine = (self.me,) if self.shared else ()

    def close(self) -> None:
        self.db.close()

    # -- who sends, and to whom -------------------------------------------------------

    def acquire(self) -> None:
        """Become the one process sending this issue, or say who already is; on
        PostgreSQL, one more sender of it (the audience is still fixed once, in ``begin``)."""
        me = self.me
        with self.db.transaction(self.lock) as db:
            row = db.execute("SELECT owner, heartbeat, started_at FROM sends WHERE issue = ?",
                             (self.issue,)).fetchone()
            if not self.shared and row and row[0] and row[0] != me and _alive(row[0], row[1]):
                pid, _, host = row[0].partition("@")
                raise SendRunning(f"issue {self.issue} is being sent already, by process {pid} on {host}",
                                  hint="wait for it to finish, or stop it; a rerun then resumes")
            # (a dead owner's rows left `sending` become unknown in `begin`)
            db.execute("INSERT INTO sends (issue, started_at, owner, heartbeat) VALUES (?, ?, ?, ?) ON CONFLICT"
                       " (issue) DO UPDATE SET owner = excluded.owner, heartbeat = excluded.heartbeat",
                       (self.issue, now(), me, time.time()))

    def running(self) -> str | None:
        """Who sends this issue now ("process 123 on host"), if anyone."""
        row = self.db.execute("SELECT owner, heartbeat FROM sends WHERE issue = ?", (self.issue,)).fetchone()
        if row and row[0] and _alive(row[0], row[1]):
            pid, _, host = row[0].partition("@")
            return f"process {pid} on {host}"
        return None

    def release(self) -> None:
        if self.shared:  # what this run claimed and never handed over goes back to the others
            leases.unclaim(self.db, self.issue, self.me)
        self.db.execute("UPDATE sends SET owner = '' WHERE issue = ? AND owner = ?", (self.issue, self.me))

    def started(self) -> bool:
        """Whether a send of this issue has fixed its audience already."""
        row = self.db.execute("SELECT audience FROM sends WHERE issue = ?", (self.issue,)).fetchone()
        return bool(row and row[0])

    def plan(self, include_new: bool = False, retry_unknown: bool = False, retry_failed: bool = False,
             where: Segment | None = None) -> int:
        """How many messages a run with these options would send (nothing is written)."""
        count = self.pending_count()
        if where is not None:
            pages = subscriber_pages(self.db, _NEWCOMER, (self.issue,))
            count += sum(where.matches(s) for page in pages for _, s in page)
        elif include_new or not self.started():
            count += self.db.execute(f"SELECT count(*) FROM subscribers s WHERE {_NEWCOMER}",
                                     (self.issue,)).fetchone()[0]
        states = ["'unknown'"] * retry_unknown + ["'failed'"] * retry_failed
        if states:
            count += self.db.execute(
                f"SELECT count(*) FROM deliveries d JOIN subscribers s USING (email_key) WHERE d.issue = ?"
                f" AND s.status = 'subscribed' AND d.state IN ({','.join(states)}) AND d.kind != 'address'",
                (self.issue,)).fetchone()[0]
        return count

    def begin(self, include_new: bool = False, retry_unknown: bool = False, retry_failed: bool = False,
              where: Segment | None = None) -> int:
        """Start a run (after ``acquire``): rows a killed run left ``sending`` become
        ``unknown``; the first run (or ``include_new``) adds the subscribers, ``where``
        only those it matches, in either case those not in the journal yet; rows whose
        reader has left are settled as skipped. Returns the unknowns found."""
        pruned = self.db.execute("SELECT pruned FROM sends WHERE issue = ?", (self.issue,)).fetchone()
        if pruned and pruned[0] and (include_new or where is not None):
            option = "--where" if where else "--include-new"
            raise NewsletterError(f"the journal of issue {self.issue} was pruned; {option} could mail readers it"
                                  " no longer remembers")
        at = now()
        with self.db.transaction(self.lock) as db:
            # on PostgreSQL, only the rows of senders that are gone (live ones are still sending theirs)
            found = leases.reap(db, self.issue, self.me)[0] if self.shared else 0
            found += db.execute(
                "UPDATE deliveries SET state = 'unknown', detail = 'handed to the server when the send stopped;"
                " fate unknown', updated_at = ? WHERE issue = ? AND state = 'sending'"
                + " AND (owner IS NULL OR owner = ?)" * self.shared, (at, self.issue, *self._mine)).rowcount
            first = not self.started()
            if where is not None or include_new or first:
                self._extend(db, at, where, "first run" if first else "--where" if where else "--include-new")
                db.execute("UPDATE sends SET audience = 1 WHERE issue = ?", (self.issue,))
                db.execute("INSERT INTO published (issue, at, how) VALUES (?, ?, 'send') ON CONFLICT DO NOTHING",
                           (self.issue, at))
            if retry_unknown:
                db.execute("UPDATE deliveries SET state = 'pending', owner = NULL, updated_at = ?"
                           " WHERE issue = ? AND state = 'unknown'", (at, self.issue))
            if retry_failed:
                db.execute("UPDATE deliveries SET state = 'pending', code = NULL, detail = '', kind = '', owner = NULL,"
                           " updated_at = ? WHERE issue = ? AND state = 'failed' AND kind != 'address'",
                           (at, self.issue))
            db.execute("UPDATE deliveries SET state = 'skipped', detail = 'not subscribed when the send reached it',"
                       " updated_at = ? WHERE issue = ? AND state = 'pending' AND email_key IN"
                       " (SELECT email_key FROM subscribers WHERE status != 'subscribed')", (at, self.issue))
        return found

    def _extend(self, db: Database, at: str, where: Segment | None, how: str) -> None:
        """Add subscribed readers not in the journal yet (``where``: in Python, never SQL); note it."""
        if where is None:  # in the order they came, which becomes the journal's
            added = db.execute("INSERT INTO deliveries (issue, email_key, state, updated_at) SELECT ?, email_key,"
                               f" 'pending', ? FROM subscribers WHERE status = 'subscribed' ORDER BY {self.order}"
                               " ON CONFLICT DO NOTHING", (self.issue, at)).rowcount
        else:
            added = 0
            for page in subscriber_pages(db, _NEWCOMER, (self.issue,)):
                rows = [(self.issue, key, at) for key, s in page if where.matches(s)]
                db.executemany("INSERT INTO deliveries (issue, email_key, state, updated_at)"
                               " VALUES (?, ?, 'pending', ?)", rows)
                added += len(rows)
        if added or how != "--include-new":  # an --include-new that found no one is no news
            entry = {"at": at, "how": how, "where": where.text if where else "", "added": added}
            row = db.execute("SELECT segments FROM sends WHERE issue = ?", (self.issue,)).fetchone()
            db.execute("UPDATE sends SET segments = ? WHERE issue = ?",
                       (json.dumps([*json.loads(row[0]), entry], ensure_ascii=False), self.issue))

    def audience(self) -> list[dict]:
        """How the audience was put together, oldest first: {at, how, where, added}."""
        row = self.db.execute("SELECT segments FROM sends WHERE issue = ?", (self.issue,)).fetchone()
        return json.loads(row[0]) if row else []

    def pending(self, after: int, limit: int) -> list[Task]:
        """The next pending rows after ``after`` (a Task's rowid), in journal order (a
        keyset page: each page costs the same however far the send has come)."""
        rows = self.db.execute(
            f"SELECT d.{self.order}, d.email_key, s.email, s.name, s.fields, s.status FROM deliveries d"
            " JOIN subscribers s ON s.email_key = d.email_key"
            f" WHERE d.issue = ? AND d.state = 'pending' AND d.{self.order} > ? ORDER BY d.{self.order} LIMIT ?",
            (self.issue, after, limit),
        ).fetchall()
        return [Task(rowid, key, Recipient(email, name, json.loads(fields)), status == "subscribed")
                for rowid, key, email, name, fields, status in rows]

    def claim(self, limit: int) -> list[Task]:
        """PostgreSQL: claim up to ``limit`` pending rows for this process. An empty
        claim first frees the rows of senders that are gone, then tries again."""
        tasks = [Task(*row) for row in leases.claim(self.db, self.issue, self.me, limit)]
        if not tasks:
            with self.db.transaction(self.lock) as db:
                leases.reap(db, self.issue, self.me)
            tasks = [Task(*row) for row in leases.claim(self.db, self.issue, self.me, limit)]
        return tasks

    # -- writes, made by the one writer thread (see ``commits``) ----------------------

    def mark_sending(self, db: Database, key: str, at: str) -> bool:
        """Mark a row ``sending``; False (and the row skipped) if its reader has left."""
        # PostgreSQL: only while this process holds the row's claim (a lost claim: do not send)
        changed = db.execute(self._mark, (at, self.issue, key, *self._mine, key)).rowcount
        if not changed:
            self.record(db, key, Delivery("skipped", None, "unsubscribed during the send"), at)
        return bool(changed)

    def record(self, db: Database, key: str, d: Delivery, at: str) -> None:
        """Record an outcome: sent, failed, unknown or skipped."""
        changed = db.execute(self._record, (d.status, d.code, d.detail, d.kind, at, self.issue, key, *self._mine))
        if d.bounced and (changed.rowcount or not self.shared):
            change_status(db, key, "bounced", f"send of issue {self.issue}", d.detail)

    def heartbeat(self, db: Database) -> None:
        db.execute("UPDATE sends SET heartbeat = ? WHERE issue = ?", (time.time(), self.issue))
        if self.shared:
            leases.renew(db, self.issue, self.me)

    def settle(self) -> int:
        """After a run's workers have stopped: any row still ``sending`` was handed to a
        server that never answered, so its fate is unknown."""
        with self.db.transaction() as db:
            return db.execute(
                "UPDATE deliveries SET state = 'unknown', detail = 'the connection was lost after the message"
                " was handed over', updated_at = ? WHERE issue = ? AND state = 'sending'"
                + " AND owner = ?" * self.shared, (now(), self.issue, *self._mine)).rowcount

    # -- what happened ----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows per state, the totals of pruned rows included."""
        rows = self.db.execute("SELECT state, count(*) FROM deliveries WHERE issue = ? GROUP BY state", (self.issue,))
        counts = {state: 0 for state in STATES} | dict(rows.fetchall())
        pruned = self.db.execute("SELECT pruned FROM sends WHERE issue = ?", (self.issue,)).fetchone()
        for state, n in json.loads(pruned[0] or "{}").items() if pruned else ():
            counts[state] += n
        return counts

    def pending_count(self) -> int:
        return self.db.execute(
            "SELECT count(*) FROM deliveries d JOIN subscribers s ON s.email_key = d.email_key"
            " WHERE d.issue = ? AND d.state = 'pending' AND s.status = 'subscribed'", (self.issue,)
        ).fetchone()[0]

    def entries(self, *states: str, most: int = 1000) -> list[Entry]:
        """Rows in ``states`` (at most ``most``), with the address as the subscriber gave it."""
        marks = ",".join("?" * len(states))
        rows = self.db.execute(
            f"SELECT coalesce(s.email, d.email_key), d.state, d.code, d.detail FROM deliveries d"
            f" LEFT JOIN subscribers s ON s.email_key = d.email_key"
            f" WHERE d.issue = ? AND d.state IN ({marks}) ORDER BY d.updated_at LIMIT ?",
            (self.issue, *states, most),
        )
        return [Entry(*row) for row in rows]

    def prune(self) -> dict[str, int]:
        """Drop the rows of a finished send that need no look (see ``pruning``)."""
        from newsletter.mailing.pruning import prune
        return prune(self)


def _alive(owner: str, heartbeat: float) -> bool:
    """Whether the process named ``pid@host`` still runs: asked of the system on this
    host, judged by its heartbeat on another."""
    gone = leases.gone(owner)
    return time.time() - heartbeat < STALE_AFTER if gone is None else not gone
