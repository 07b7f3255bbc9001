"""Several senders of one issue, on PostgreSQL: each claims batches of pending rows with
``FOR UPDATE SKIP LOCKED`` and a lease it renews with its heartbeat. A claimed row stays
``pending`` (so ``sending`` still means handed over); only its owner may mark it. A
sender that dies returns its unhanded rows when its lease runs out (at once when it ran
on this host and its pid is gone), and its rows left ``sending`` become ``unknown``.

The global ``smtp.rate`` is a budget in the database (``rates``): each sender reserves
a few slots at a time, so N senders together keep to the one rate.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from newsletter.mailing.db import Database
from newsletter.mailing.personalize import Recipient
from newsletter.mailing.store import now

LEASE = 60.0  # seconds a claim lasts unless its owner's heartbeat renews it (every 10 s)
_CLAIM = (
    "WITH picked AS (SELECT issue, email_key FROM deliveries WHERE issue = ? AND state = 'pending'"
    " AND (owner IS NULL OR lease_until < ?) ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED),"
    " claimed AS (UPDATE deliveries d SET owner = ?, lease_until = ? FROM picked p"
    " WHERE d.issue = p.issue AND d.email_key = p.email_key RETURNING d.seq, d.email_key)"
    " SELECT c.seq, c.email_key, s.email, s.name, s.fields, s.status FROM claimed c"
    " JOIN subscribers s ON s.email_key = c.email_key ORDER BY c.seq")


def claim(db: Database, issue: int, owner: str, limit: int) -> list[tuple[int, str, Recipient, bool]]:
    """Claim up to ``limit`` pending rows nobody holds (or whose lease ran out), in
    journal order: (seq, key, recipient, subscribed) each."""
    at = time.time()
    rows = db.execute(_CLAIM, (issue, at, limit, owner, at + LEASE)).fetchall()
    return [(seq, key, Recipient(email, name, json.loads(fields)), status == "subscribed")
            for seq, key, email, name, fields, status in rows]


def renew(db: Database, issue: int, owner: str) -> None:
    """Push back the lease of every row ``owner`` holds (with its heartbeat)."""
    db.execute("UPDATE deliveries SET lease_until = ? WHERE issue = ? AND owner = ? AND state IN"
               " ('pending', 'sending')", (time.time() + LEASE, issue, owner))


def unclaim(db: Database, issue: int, owner: str) -> None:
    """Give back the rows ``owner`` claimed and never handed over (a run that stops)."""
    db.execute("UPDATE deliveries SET owner = NULL, lease_until = NULL WHERE issue = ? AND owner = ?"
               " AND state = 'pending'", (issue, owner))


def reap(db: Database, issue: int, me: str) -> tuple[int, bool]:
    """Free the claims of senders that are gone: their ``sending`` rows become unknown,
    their pending rows free to claim. Returns (unknowns made, whether another live
    sender still holds pending rows)."""
    at, others = time.time(), False
    made = 0
    holders = db.execute("SELECT owner, max(lease_until) FROM deliveries WHERE issue = ? AND owner IS NOT NULL"
                         " AND owner != ? AND state IN ('pending', 'sending') GROUP BY owner", (issue, me)).fetchall()
    for owner, until in holders:
        if until >= at and not gone(owner):
            others = others or bool(db.execute("SELECT 1 FROM deliveries WHERE issue = ? AND owner = ? AND"
                                               " state = 'pending' LIMIT 1", (issue, owner)).fetchone())
            continue
        made += db.execute("UPDATE deliveries SET state = 'unknown', detail = 'handed to the server when its sender"
                           " stopped; fate unknown', updated_at = ? WHERE issue = ? AND owner = ? AND state ="
                           " 'sending'", (now(), issue, owner)).rowcount
        unclaim(db, issue, owner)
    return made, others


def held_elsewhere(db: Database, issue: int, me: str) -> int:
    """Pending rows other senders hold a live claim on (they will send them)."""
    return db.execute("SELECT count(*) FROM deliveries WHERE issue = ? AND state = 'pending' AND owner IS NOT NULL"
                      " AND owner != ? AND lease_until >= ?", (issue, me, time.time())).fetchone()[0]


def gone(owner: str) -> bool | None:
    """True when ``pid@host`` ran on this host and has exited; None when it ran
    elsewhere (only its lease can tell); False when it runs."""
    pid, _, host = owner.partition("@")
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


class SharedRate:
    """At most ``rate`` messages a second across every sender of the database: each
    reserves a quarter second's slots at a time (``rates``), then waits for each."""

    def __init__(self, db: Database, rate: float, name: str = "smtp"):
        self.db, self.name = db, name
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.batch = max(1, int(rate / 4))
        self.slots: list[float] = []
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            if not self.slots:
                span = self.batch * self.interval
                end = self.db.execute(
                    "INSERT INTO rates (name, next_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                    " SET next_at = GREATEST(rates.next_at, ?) + ? RETURNING next_at",
                    (self.name, time.time() + span, time.time(), span)).fetchone()[0]
                self.slots = [end - span + n * self.interval for n in range(self.batch)][::-1]
            slot = self.slots.pop()
        delay = slot - time.time()
        if delay > 0:
            time.sleep(delay)
