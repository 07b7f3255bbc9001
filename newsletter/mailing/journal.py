"""The send journal: one durable row per (issue, address) in the subscriber store.

    pending -> sending -> sent | failed
                      \\-> unknown   (found in `sending` after a crash)

A row is marked ``sending`` and committed before its message is handed to the server,
and ``sent`` after the server accepted it. A rerun sends only to ``pending`` rows (and
to new subscribers), so nobody is mailed twice; a row left in ``sending`` by a killed
process becomes ``unknown``, is reported, and is resent only when asked. Each connection
has at most one row in ``sending``, so a crash leaves at most that many unknowns.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import NamedTuple

from newsletter.mailing.personalize import Recipient
from newsletter.mailing.store import change_status, connect, now, transaction
from newsletter.mailing.transport import Delivery

STATES = ("pending", "sending", "sent", "failed", "unknown")


class Outcome(NamedTuple):
    email_key: str
    delivery: Delivery


class Entry(NamedTuple):
    """A row that needs a look: failed or unknown, with the server's reply."""

    email: str
    state: str
    code: int | None
    detail: str


class Journal:
    """The journal of one issue's send, on its own SQLite connection (one per thread)."""

    def __init__(self, path: Path, issue: int):
        self.path = path
        self.issue = issue
        self.db = connect(path)

    def close(self) -> None:
        self.db.close()

    def open_run(self, retry_unknown: bool = False) -> int:
        """Start a run: rows a killed run left in ``sending`` become ``unknown``; every
        subscriber not yet in the journal becomes ``pending``. Returns the unknowns found."""
        with transaction(self.db) as db:
            found = db.execute(
                "UPDATE deliveries SET state = 'unknown', detail = 'handed to the server when the send stopped;"
                " fate unknown', updated_at = ? WHERE issue = ? AND state = 'sending'",
                (now(), self.issue),
            ).rowcount
            if retry_unknown:
                db.execute("UPDATE deliveries SET state = 'pending', updated_at = ?"
                           " WHERE issue = ? AND state = 'unknown'", (now(), self.issue))
            db.execute(
                "INSERT OR IGNORE INTO deliveries (issue, email_key, state, updated_at)"
                " SELECT ?, email_key, 'pending', ? FROM subscribers WHERE status = 'subscribed'",
                (self.issue, now()),
            )
        return found

    def advance(self, done: Outcome | None, claim: bool = True) -> tuple[str, Recipient] | None:
        """Record ``done`` and claim the next pending recipient, in one transaction (one
        commit per message). The claimed row is ``sending`` once this returns."""
        with transaction(self.db) as db:
            if done is not None:
                self._record(db, done)
            if not claim:
                return None
            row = db.execute(
                "SELECT d.email_key, s.email, s.name, s.fields FROM deliveries d"
                " JOIN subscribers s ON s.email_key = d.email_key"
                " WHERE d.issue = ? AND d.state = 'pending' AND s.status = 'subscribed' LIMIT 1",
                (self.issue,),
            ).fetchone()
            if row is None:
                return None
            key, email, name, fields = row
            db.execute("UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ?"
                       " WHERE issue = ? AND email_key = ?", (now(), self.issue, key))
        return key, Recipient(email, name, json.loads(fields))

    def settle(self) -> int:
        """After a run's workers have stopped: any row still ``sending`` was handed to a
        server that never answered, so its fate is unknown."""
        with transaction(self.db) as db:
            return db.execute(
                "UPDATE deliveries SET state = 'unknown', detail = 'the connection was lost after the message"
                " was handed over', updated_at = ? WHERE issue = ? AND state = 'sending'", (now(), self.issue),
            ).rowcount

    def release(self, key: str) -> None:
        """Put back a claimed row whose message was never handed to the server."""
        with transaction(self.db) as db:
            db.execute("UPDATE deliveries SET state = 'pending', updated_at = ? WHERE issue = ? AND email_key = ?",
                       (now(), self.issue, key))

    def _record(self, db: sqlite3.Connection, done: Outcome) -> None:
        d = done.delivery
        state = "sent" if d.status == "sent" else "failed"
        db.execute("UPDATE deliveries SET state = ?, code = ?, detail = ?, updated_at = ?"
                   " WHERE issue = ? AND email_key = ?", (state, d.code, d.detail, now(), self.issue, done.email_key))
        if d.bounced:
            change_status(db, done.email_key, "bounced", f"send of issue {self.issue}", d.detail)

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, count(*) FROM deliveries WHERE issue = ? GROUP BY state", (self.issue,))
        return {state: 0 for state in STATES} | dict(rows.fetchall())

    def pending_count(self) -> int:
        return self.db.execute(
            "SELECT count(*) FROM deliveries d JOIN subscribers s ON s.email_key = d.email_key"
            " WHERE d.issue = ? AND d.state = 'pending' AND s.status = 'subscribed'", (self.issue,)
        ).fetchone()[0]

    def entries(self, *states: str) -> list[Entry]:
        """Rows in ``states``, with the address as the subscriber gave it."""
        marks = ",".join("?" * len(states))
        rows = self.db.execute(
            f"SELECT coalesce(s.email, d.email_key), d.state, d.code, d.detail FROM deliveries d"
            f" LEFT JOIN subscribers s ON s.email_key = d.email_key"
            f" WHERE d.issue = ? AND d.state IN ({marks}) ORDER BY d.updated_at",
            (self.issue, *states),
        )
        return [Entry(*row) for row in rows]
