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
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from newsletter.errors import NewsletterError
from newsletter.mailing.schema import MIGRATIONS

STATUSES = ("subscribed", "unsubscribed", "bounced")
_COLUMNS = "email, name, fields, status, created_at, updated_at, tags"


class Subscriber(NamedTuple):
    email: str
    name: str
    fields: dict[str, str]
    status: str
    created_at: str
    updated_at: str
    tags: list[str] = []  # a shared default, never mutated: retag and imports build new lists


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
        row = self.db.execute(f"SELECT {_COLUMNS} FROM subscribers WHERE email_key = ?",
                              (email.strip().lower(),)).fetchone()
        return _subscriber(row) if row else None

    def all(self) -> Iterator[Subscriber]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM subscribers ORDER BY created_at, email_key")
        return map(_subscriber, rows)

    def field_names(self) -> list[str]:
        """Every personal field name in use, sorted."""
        names = self.db.execute("SELECT DISTINCT j.key FROM subscribers, json_each(subscribers.fields) AS j")
        return sorted(name for (name,) in names)

    @contextmanager
    def listing(self) -> Iterator[tuple[list[str], bool, Iterator[Subscriber]]]:
        """Every field name in use, whether anyone has tags, and ``all()``, from one
        snapshot: they agree."""
        self.db.execute("BEGIN")  # a read transaction: in WAL mode writers go on meanwhile
        try:
            tagged = self.db.execute("SELECT 1 FROM subscribers WHERE tags != '[]' LIMIT 1").fetchone() is not None
            yield self.field_names(), tagged, self.all()
        finally:
            self.db.execute("ROLLBACK")

    def retag(self, tags: tuple[str, ...], add: bool, emails: Iterable[str] = (), where=None) -> tuple[int, int]:
        """Add (or take off) ``tags`` for these addresses and, with a segment ``where``,
        everyone it matches; one transaction. Returns (changed, matched). An unknown
        address changes nothing and raises NewsletterError naming it."""
        keys, changed, matched = list(dict.fromkeys(e.strip().lower() for e in emails)), 0, 0
        folded = {t.casefold() for t in tags}
        with self._writing("nothing was changed"):
            found = {k: json.loads(t) for k in keys for (t,) in
                     self.db.execute("SELECT tags FROM subscribers WHERE email_key = ?", (k,))}
            if unknown := [k for k in keys if k not in found]:
                raise NewsletterError(f"not in the subscriber list: {', '.join(unknown)}; nothing was changed")
            pages = subscriber_pages(self.db) if where is not None else ()
            # Page by page (each read whole before the next write): a million matches are never held.
            for key, old in chain(found.items(), ((k, s.tags) for page in pages for k, s in page
                                                  if k not in found and where.matches(s))):
                new = merge_tags(old, tags) if add else [t for t in old if t.casefold() not in folded]
                matched, changed = matched + 1, changed + (new != old)
                if new != old:
                    self.db.execute("UPDATE subscribers SET tags = ?, updated_at = ? WHERE email_key = ?",
                                    (_json(new), now(), key))
        return changed, matched

    def count(self, status: str = "subscribed") -> int:
        return self.db.execute("SELECT count(*) FROM subscribers WHERE status = ?", (status,)).fetchone()[0]

    def add(self, email: str, name: str = "", fields: dict[str, str] | None = None, source: str = "cli") -> str:
        """Subscribe ``email`` explicitly (this brings back an unsubscribed or bounced
        address). Returns what happened: added, resubscribed or updated."""
        with self._writing("nothing was changed"):
            return self._upsert(email, name, fields or {}, source, explicit=True)

    def add_many(self, rows: Iterable[tuple], source: str) -> dict[str, int]:
        """Import rows, (email, name, fields[, status, created_at, updated_at, tags, consent]),
        in one transaction: all or none. No import subscribes an unsubscribed or bounced address;
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
                status: str = "subscribed", created: str | None = None, updated: str | None = None,
                tags: tuple[str, ...] = (), consent: str = "") -> str:
        key, at = email.strip().lower(), at or now()
        # Insert first: a new address (most rows of an import) then costs one statement.
        if self.db.execute(
            "INSERT INTO subscribers (email_key, email, name, fields, status, created_at, updated_at, tags)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email_key) DO NOTHING",
            (key, email.strip(), name, _json(fields), status, created or at, updated or at,
             _json(list(tags)) if tags else "[]"),
        ).rowcount:
            detail = f"created_at {created}" if created else ""
            record_event(self.db, key, at, status, source, f"{detail}; {consent}" if detail and consent else
                         detail or consent)
            return "added" if status == "subscribed" else f"added as {status}"
        old_status, old_name, old_fields, old_created, old_tags = self.db.execute(
            "SELECT status, name, fields, created_at, tags FROM subscribers WHERE email_key = ?", (key,)).fetchone()
        if old_status != "subscribed" and not explicit:
            return f"kept {old_status}"
        if status != "subscribed":  # the file says they left, or bounced, elsewhere
            change_status(self.db, key, status, source)
            return f"now {status}"
        merged = _json({**json.loads(old_fields), **fields})
        new_name, new_created = name or old_name, min(old_created, created or old_created)
        new_tags = _json(merge_tags(json.loads(old_tags), tags)) if tags else old_tags  # an import only adds tags
        if old_status == "subscribed" and (new_name, merged, new_created, new_tags) == (
                old_name, old_fields, old_created, old_tags):
            return "unchanged"
        self.db.execute(
            "UPDATE subscribers SET name = ?, fields = ?, status = 'subscribed', created_at = ?, updated_at = ?,"
            " tags = ? WHERE email_key = ?", (new_name, merged, new_created, at, new_tags, key))
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


def merge_tags(old: list[str], new: Iterable[str]) -> list[str]:
    """``old`` and then those of ``new`` it lacks, compared without case."""
    have = {t.casefold() for t in old}
    return old + [t for t in new if t.casefold() not in have and not have.add(t.casefold())]


def subscriber_pages(db: sqlite3.Connection, condition: str = "1", params: tuple = (),
                     size: int = 5000) -> Iterator[list[tuple[str, Subscriber]]]:
    """Every subscriber meeting ``condition`` (SQL written here, never user text), as pages
    of (email_key, Subscriber) in rowid order: a keyset page costs the same anywhere, and
    no cursor stays open while the caller writes."""
    after = 0
    while rows := db.execute(f"SELECT rowid, email_key, {_COLUMNS} FROM subscribers s WHERE rowid > ? AND"
                             f" ({condition}) ORDER BY rowid LIMIT ?", (after, *params, size)).fetchall():
        after = rows[-1][0]
        yield [(row[1], _subscriber(row[2:])) for row in rows]


def _subscriber(row: tuple) -> Subscriber:
    email, name, fields, status, created, updated, tags = row
    return Subscriber(email, name, json.loads(fields), status, created, updated, json.loads(tags))
