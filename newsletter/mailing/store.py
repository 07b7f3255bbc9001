"""The subscriber store: subscribers, the consent record of every change to them, and
the send journal (see ``journal``). A SQLite file (WAL) by default; a PostgreSQL database
when ``subscribers:`` is a ``postgresql://`` URL, so that several hosts share it. Both
go through ``db``, with the same queries wherever the dialects agree.

An address is unique compared case-insensitively. Nobody is ever deleted: removing an
address keeps it as ``unsubscribed`` so it is never mailed again, even if re-imported,
unless it is added back explicitly.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from newsletter.errors import NewsletterError
from newsletter.mailing.db import Database
from newsletter.mailing.dialects import POSTGRES, SQLITE
from newsletter.mailing.schema import ORDER
from newsletter.mailing.storage import connect, disk_full, now, row_lock, store_error, stream, transaction  # noqa: F401 (re-exported: send, tracking and clicks import them from here)

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


class Store:
    """Subscribers and their consent record. Every change is one transaction; when the
    disk is full, it is rolled back whole and a NewsletterError says so."""

    def __init__(self, target: Path | str):
        self.target = target
        self.db = connect(target)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, email: str) -> Subscriber | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM subscribers WHERE email_key = ?",
                              (email.strip().lower(),)).fetchone()
        return _subscriber(row) if row else None

    def all(self) -> Iterator[Subscriber]:
        """Every subscriber in the order of ``list``, streamed: a million are never held."""
        query = f"SELECT {_COLUMNS} FROM subscribers ORDER BY created_at, email_key"
        if self.db.dialect == SQLITE or self.db.in_transaction:
            return map(_subscriber, stream(self.db, query))
        return self._all_in_snapshot(query)

    def _all_in_snapshot(self, query: str) -> Iterator[Subscriber]:
        with self.db.transaction(snapshot=True):  # PostgreSQL's server-side cursor needs one
            yield from map(_subscriber, stream(self.db, query))

    def field_names(self) -> list[str]:
        """Every personal field name in use, sorted."""
        if self.db.dialect == POSTGRES:
            query = "SELECT DISTINCT json_object_keys(fields::json) FROM subscribers WHERE fields != '{}'"
        else:
            query = "SELECT DISTINCT j.key FROM subscribers, json_each(subscribers.fields) AS j"
        return sorted(name for (name,) in self.db.execute(query))

    @contextmanager
    def listing(self) -> Iterator[tuple[list[str], bool, Iterator[Subscriber]]]:
        """Every field name in use, whether anyone has tags, and ``all()``, from one
        snapshot: they agree (writers go on meanwhile)."""
        with self.db.transaction(snapshot=True):
            tagged = self.db.execute("SELECT 1 FROM subscribers WHERE tags != '[]' LIMIT 1").fetchone() is not None
            yield self.field_names(), tagged, self.all()

    def retag(self, tags: tuple[str, ...], add: bool, emails: Iterable[str] = (), where=None) -> tuple[int, int]:
        """Add (or take off) ``tags`` for these addresses and, with a segment ``where``,
        everyone it matches; one transaction. Returns (changed, matched). An unknown
        address changes nothing and raises NewsletterError naming it."""
        keys, changed, matched = list(dict.fromkeys(e.strip().lower() for e in emails)), 0, 0
        folded = {t.casefold() for t in tags}
        # Read, then written back: on PostgreSQL, bulk writers (imports, retags) take turns.
        with self._writing("nothing was changed", lock="subscribers"):
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
        with self._writing("nothing was imported", lock="subscribers"):
            # Each row is stamped as read: created_at, the order of `list`, is the file's.
            while batch := [(r[0].strip().lower(), now(), r) for r in islice(rows, _BATCH)]:
                # In address order, SQLite's indexes find each address on a page just read: 1.8x
                # faster for a million. Stable: an address given twice is upserted in that order.
                batch.sort(key=itemgetter(0))
                new, known = self._insert_new(batch, source) if self.db.dialect == POSTGRES else ({}, {})
                for key, at, (email, name, fields, *more) in batch:
                    if key in new:
                        counts[new[key]] += 1
                    elif key in known:  # PostgreSQL: an address in the store, read with its batch
                        counts[self._update(key, known[key], name, fields, source, False, at, *more)] += 1
                    else:
                        counts[self._upsert(email, name, fields, source, False, at, *more)] += 1
                batch.clear()  # before the next one is read, not after
        return counts

    def set_status(self, email: str, status: str, source: str, detail: str = "", issue: int | None = None) -> bool:
        """Change an address's status; False if the address is unknown."""
        with self._writing("nothing was changed"):
            return change_status(self.db, email.strip().lower(), status, source, detail, issue)

    @contextmanager
    def _writing(self, unchanged: str, lock: str = "") -> Iterator[None]:
        """``transaction``, with a full disk (the database rolls back) told as a sentence
        that says the list is intact: the usual reflex with a broken file is to delete it."""
        try:
            with self.db.transaction(lock):
                yield
        except self.db.Error as e:
            if not disk_full(e):
                raise
            raise NewsletterError(f"{self.db.name}: the disk is full; {unchanged}", hint="free some space and run "
                                  "the same command again; the subscriber list is intact") from None

    def _insert_new(self, batch: list[tuple], source: str) -> tuple[dict[str, str], dict[str, tuple]]:
        """PostgreSQL: a batch's new addresses in a few statements of many rows, since each
        statement is a round trip (one a row made imports 5x slower), and the known ones read
        alike: (what happened to each new one, each known one's row for ``_update``). An
        address given twice is for ``_upsert``, row by row."""
        twice = {key for key, n in Counter(key for key, _, _ in batch).items() if n > 1}
        rows = [_new(email, name, fields, source, at, *more) for key, at, (email, name, fields, *more) in batch
                if key not in twice]
        added: set[str] = set()
        for start in range(0, len(rows), 1000):
            chunk = rows[start:start + 1000]
            added.update(key for (key,) in self.db.execute(
                f"{_INSERT} VALUES {', '.join(['(?, ?, ?, ?, ?, ?, ?, ?)'] * len(chunk))} ON CONFLICT (email_key)"
                " DO NOTHING RETURNING email_key", [value for row, _, _ in chunk for value in row]))
        self.db.executemany(_EVENT, [event for row, event, _ in rows if row[0] in added])
        others, known = [row[0] for row, _, _ in rows if row[0] not in added], {}
        for start in range(0, len(others), 1000):
            known.update((key, old) for key, *old in self.db.execute(
                f"SELECT email_key, {_OLD} FROM subscribers WHERE email_key = ANY(?) FOR UPDATE",
                (others[start:start + 1000],)))
        return {row[0]: outcome for row, _, outcome in rows if row[0] in added}, known

    def _upsert(self, email: str, name: str, fields: dict[str, str], source: str, explicit: bool, at: str | None = None,
                status: str = "subscribed", created: str | None = None, updated: str | None = None,
                tags: tuple[str, ...] = (), consent: str = "") -> str:
        key, at = email.strip().lower(), at or now()
        row, event, outcome = _new(email, name, fields, source, at, status, created, updated, tags, consent)
        # Insert first: a new address (most rows of an import) then costs one statement.
        if self.db.execute(f"{_INSERT} VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email_key) DO NOTHING",
                           row).rowcount:
            self.db.execute(_EVENT, event)
            return outcome
        old = self.db.execute(f"SELECT {_OLD} FROM subscribers WHERE email_key = ?" + row_lock(self.db),
                              (key,)).fetchone()
        return self._update(key, old, name, fields, source, explicit, at, status, created, updated, tags)

    def _update(self, key: str, old: tuple, name: str, fields: dict[str, str], source: str, explicit: bool, at: str,
                status: str = "subscribed", created: str | None = None, updated: str | None = None,
                tags: tuple[str, ...] = (), consent: str = "") -> str:
        """Apply a row to an address already in the store, whose columns ``_OLD`` were ``old``."""
        old_status, old_name, old_fields, old_created, old_tags = old
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


_OLD = "status, name, fields, created_at, tags"  # what ``_update`` compares a row with
_INSERT = "INSERT INTO subscribers (email_key, email, name, fields, status, created_at, updated_at, tags)"
_EVENT = "INSERT INTO events (email_key, at, change, source, detail) VALUES (?, ?, ?, ?, ?)"


def _new(email: str, name: str, fields: dict[str, str], source: str, at: str, status: str = "subscribed",
         created: str | None = None, updated: str | None = None, tags: tuple[str, ...] = (),
         consent: str = "") -> tuple[tuple, tuple, str]:
    """A new address's row, its consent record, and what an import calls it."""
    key = email.strip().lower()
    detail = f"created_at {created}" if created else ""
    return ((key, email.strip(), name, _json(fields), status, created or at, updated or at,
             _json(list(tags)) if tags else "[]"),
            (key, at, status, source, f"{detail}; {consent}" if detail and consent else detail or consent),
            "added" if status == "subscribed" else f"added as {status}")


def record_event(db: Database, key: str, at: str, change: str, source: str, detail: str = "",
                 issue: int | None = None) -> None:
    """Add to the consent record (inside the caller's transaction); ``issue``: the one
    whose link or message led to the change."""
    db.execute("INSERT INTO events (email_key, at, change, source, detail, issue) VALUES (?, ?, ?, ?, ?, ?)",
               (key, at, change, source, detail, issue))


def change_status(db: Database, key: str, status: str, source: str, detail: str = "",
                  issue: int | None = None) -> bool:
    """Set an address's status and record the change (inside the caller's transaction)."""
    row = db.execute("SELECT status FROM subscribers WHERE email_key = ?" + row_lock(db), (key,)).fetchone()
    if row is None:
        return False
    if row[0] != status:
        at = now()
        db.execute("UPDATE subscribers SET status = ?, updated_at = ? WHERE email_key = ?", (status, at, key))
        record_event(db, key, at, status, source, detail, issue)
    return True


_BATCH = 20_000  # rows an import sorts at a time: about 15 MB

# One encoder for every row: json.dumps with options builds a new one each call.
_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def merge_tags(old: list[str], new: Iterable[str]) -> list[str]:
    """``old`` and then those of ``new`` it lacks, compared without case."""
    have = {t.casefold() for t in old}
    return old + [t for t in new if t.casefold() not in have and not have.add(t.casefold())]


def subscriber_pages(db: Database, condition: str = "true", params: tuple = (),
                     size: int = 5000) -> Iterator[list[tuple[str, Subscriber]]]:
    """Every subscriber meeting ``condition`` (SQL written here, never user text), as pages
    of (email_key, Subscriber) in the order they came (``ORDER``): a keyset page costs
    the same anywhere, and no cursor stays open while the caller writes."""
    after, order = 0, ORDER[db.dialect]
    while rows := db.execute(f"SELECT s.{order}, email_key, {_COLUMNS} FROM subscribers s WHERE s.{order} > ? AND"
                             f" ({condition}) ORDER BY s.{order} LIMIT ?", (after, *params, size)).fetchall():
        after = rows[-1][0]
        yield [(row[1], _subscriber(row[2:])) for row in rows]


def _subscriber(row: tuple) -> Subscriber:
    email, name, fields, status, created, updated, tags = row
    return Subscriber(email, name, json.loads(fields), status, created, updated, json.loads(tags))
