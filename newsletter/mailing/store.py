"""The subscriber store: one SQLite file (WAL) holding subscribers, the consent record
of every change to them, and the send journal (see ``journal``).

An address is unique compared case-insensitively. Nobody is ever deleted: removing an
address keeps it as ``unsubscribed`` so it is never mailed again, even if re-imported,
unless it is added back explicitly.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from newsletter.errors import NewsletterError
from newsletter.mailing.schema import MIGRATIONS

STATUSES = ("subscribed", "unsubscribed", "bounced")



class Subscriber(NamedTuple):
    email: str
    name: str
    fields: dict[str, str]
    status: str
    created_at: str
    updated_at: str


def now() -> str:
    """UTC time as ISO 8601 text, to the microsecond (orders events within a second)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def connect(path: Path) -> sqlite3.Connection:
    """Open (and create or migrate) the store. WAL lets readers run beside one writer;
    synchronous=NORMAL keeps every commit safe from a killed process, which is the
    crash the send journal must survive."""
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise store_error(path, e) from None
    if version > len(MIGRATIONS):
        raise NewsletterError(f"{path}: made by a newer version of newsletter (schema {version})")
    for number in range(version, len(MIGRATIONS)):
        try:  # one script, one transaction: a migration happens whole or not at all
            db.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]}\nPRAGMA user_version = {number + 1};\nCOMMIT;")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return db


def store_error(path: Path, error: sqlite3.Error) -> NewsletterError:
    """What SQLite's complaint means to the author. Only a file that is not SQLite is
    called "not a subscriber store": a full disk or a locked file must never read as an
    invitation to delete the store."""
    text = str(error)
    if "full" in text:
        return NewsletterError(f"{path}: the disk is full; nothing was changed",
                               hint="free some space and run the same command again")
    if "not a database" in text or "malformed" in text:
        return NewsletterError(f"{path}: not a subscriber store ({text})")
    return NewsletterError(f"{path}: cannot use the subscriber store ({text})",
                           hint="check that the file and its folder are writable and not in use")


class transaction:  # noqa: N801 (used like a function: `with transaction(db):`)
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: all or nothing."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:  # a failed COMMIT (a full disk) may leave the transaction open
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")


class Store:
    """Subscribers and their consent record. Every change is one transaction; when
    SQLite finds the disk full, it is rolled back whole and a NewsletterError says so."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = connect(path)
        except sqlite3.Error as e:  # a migration failed (connect rolled it back)
            raise store_error(path, e) from None

    def close(self) -> None:
        self.db.close()

    def get(self, email: str) -> Subscriber | None:
        row = self.db.execute(
            "SELECT email, name, fields, status, created_at, updated_at FROM subscribers WHERE email_key = ?",
            (email.strip().lower(),),
        ).fetchone()
        return _subscriber(row) if row else None

    def all(self) -> Iterator[Subscriber]:
        rows = self.db.execute(
            "SELECT email, name, fields, status, created_at, updated_at FROM subscribers ORDER BY created_at, email_key"
        )
        return map(_subscriber, rows)

    @contextmanager
    def listing(self) -> Iterator[tuple[list[str], Iterator[Subscriber]]]:
        """Every field name in use, sorted, and ``all()``, from one snapshot: they agree."""
        self.db.execute("BEGIN")  # a read transaction: in WAL mode writers go on meanwhile
        try:
            names = self.db.execute("SELECT DISTINCT j.key FROM subscribers, json_each(subscribers.fields) AS j")
            yield sorted(name for (name,) in names), self.all()
        finally:
            self.db.execute("ROLLBACK")

    def count(self, status: str = "subscribed") -> int:
        return self.db.execute("SELECT count(*) FROM subscribers WHERE status = ?", (status,)).fetchone()[0]

    def add(self, email: str, name: str = "", fields: dict[str, str] | None = None, source: str = "cli") -> str:
        """Subscribe ``email`` explicitly (this brings back an unsubscribed or bounced
        address). Returns what happened: added, resubscribed or updated."""
        with self._writing("nothing was changed"):
            return self._upsert(email, name, fields or {}, source, explicit=True)

    def add_many(self, rows: Iterable[tuple], source: str) -> dict[str, int]:
        """Import rows, (email, name, fields[, status, created_at, updated_at]), in one
        transaction: all or none. No import subscribes an unsubscribed or bounced address;
        such a row unsubscribes a subscribed one. ``rows`` may be a stream: a batch is held."""
        counts = dict.fromkeys(("added", "added as unsubscribed", "added as bounced", "updated", "unchanged",
                                "now unsubscribed", "now bounced", "kept unsubscribed", "kept bounced"), 0)
        rows = iter(rows)
        with self._writing("nothing was imported"):
            # Each row is stamped as read: created_at, the order of `list`, is the file's.
            while batch := [(r[0].strip().lower(), now(), r) for r in islice(rows, _BATCH)]:
                # In address order, SQLite's indexes find each address on a page just read: 1.8x
                # faster for a million. Stable: an address given twice is upserted in that order.
                batch.sort(key=itemgetter(0))
                for _, at, (email, name, fields, *more) in batch:
                    counts[self._upsert(email, name, fields, source, False, at, *more)] += 1
                batch.clear()  # before the next one is read, not after
        return counts

    def set_status(self, email: str, status: str, source: str, detail: str = "") -> bool:
        """Change an address's status; False if the address is unknown."""
        with self._writing("nothing was changed"):
            return change_status(self.db, email.strip().lower(), status, source, detail)

    @contextmanager
    def _writing(self, unchanged: str) -> Iterator[None]:
        """``transaction``, with SQLITE_FULL (SQLite rolls back) told as a sentence that
        says the list is intact: the usual reflex with a broken file is to delete it."""
        try:
            with transaction(self.db):
                yield
        except sqlite3.Error as e:
            if getattr(e, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
                raise
            raise NewsletterError(f"{self.path}: the disk is full; {unchanged}", hint="free some space and run "
                                  "the same command again; the subscriber list is intact") from None

    def _upsert(self, email: str, name: str, fields: dict[str, str], source: str, explicit: bool, at: str | None = None,
                status: str = "subscribed", created: str | None = None, updated: str | None = None) -> str:
        key, at = email.strip().lower(), at or now()
        # Insert first: a new address (most rows of an import) then costs one statement.
        if self.db.execute(
            "INSERT INTO subscribers (email_key, email, name, fields, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email_key) DO NOTHING",
            (key, email.strip(), name, _json(fields), status, created or at, updated or at),
        ).rowcount:
            record_event(self.db, key, at, status, source, f"created_at {created}" if created else "")
            return "added" if status == "subscribed" else f"added as {status}"
        old_status, old_name, old_fields, old_created = self.db.execute(
            "SELECT status, name, fields, created_at FROM subscribers WHERE email_key = ?", (key,)).fetchone()
        if old_status != "subscribed" and not explicit:
            return f"kept {old_status}"
        if status != "subscribed":  # the file says they left, or bounced, elsewhere
            change_status(self.db, key, status, source)
            return f"now {status}"
        merged = _json({**json.loads(old_fields), **fields})
        new_name, new_created = name or old_name, min(old_created, created or old_created)
        if old_status == "subscribed" and (new_name, merged, new_created) == (old_name, old_fields, old_created):
            return "unchanged"
        self.db.execute(
            "UPDATE subscribers SET name = ?, fields = ?, status = 'subscribed', created_at = ?, updated_at = ?"
            " WHERE email_key = ?", (new_name, merged, new_created, at, key))
        if old_status != "subscribed":
            record_event(self.db, key, at, "subscribed", source, f"was {old_status}")
            return "resubscribed"
        return "updated"

    def events(self, email: str) -> list[tuple[str, str, str, str]]:
        """The consent record of an address: (at, change, source, detail), oldest first."""
        return self.db.execute(
            "SELECT at, change, source, detail FROM events WHERE email_key = ? ORDER BY id",
            (email.strip().lower(),),
        ).fetchall()


def record_event(db: sqlite3.Connection, key: str, at: str, change: str, source: str, detail: str = "") -> None:
    """Add to the consent record (inside the caller's transaction)."""
    db.execute("INSERT INTO events (email_key, at, change, source, detail) VALUES (?, ?, ?, ?, ?)",
               (key, at, change, source, detail))


def change_status(db: sqlite3.Connection, key: str, status: str, source: str, detail: str = "") -> bool:
    """Set an address's status and record the change (inside the caller's transaction)."""
    row = db.execute("SELECT status FROM subscribers WHERE email_key = ?", (key,)).fetchone()
    if row is None:
        return False
    if row[0] != status:
        at = now()
        db.execute("UPDATE subscribers SET status = ?, updated_at = ? WHERE email_key = ?", (status, at, key))
        record_event(db, key, at, status, source, detail)
    return True


_BATCH = 20_000  # rows an import sorts at a time: about 15 MB

# One encoder for every row: json.dumps with options builds a new one each call.
_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _subscriber(row: tuple) -> Subscriber:
    email, name, fields, status, created, updated = row
    return Subscriber(email, name, json.loads(fields), status, created, updated)
