"""Opening the subscriber store, a SQLite file or a PostgreSQL database (``db``), with
its schema up to date (``schema``); and what its errors mean to the author."""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from itertools import count
from pathlib import Path

from newsletter.errors import NewsletterError
from newsletter.mailing import db as database
from newsletter.mailing.db import Database
from newsletter.mailing.dialects import POSTGRES, SQLITE, is_url, redact
from newsletter.mailing.schema import MIGRATIONS

DISK_FULL = "53100"  # PostgreSQL's SQLSTATE for a full disk (SQLite's is SQLITE_FULL)


def now() -> str:
    """UTC time as ISO 8601 text, to the microsecond (orders events within a second)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def store_name(target: Path | str) -> str:
    """The store as messages name it: the file, or the URL (any password hidden)."""
    return redact(target) if is_url(target) else str(target)


def connect(target: Path | str) -> Database:
    """Open (and create or migrate) the store at ``target``, a SQLite file or a PostgreSQL
    URL. SQLite: WAL lets readers run beside one writer; synchronous=NORMAL keeps every
    commit safe from a killed process, which is the crash the send journal must survive.
    Each migration runs whole or not at all, one process at a time."""
    db = _open(target)
    _migrate(db, target)
    return db


def open_existing(target: Path | str) -> Database | None:
    """The store (migrated) if there is one, else None: never creates one."""
    if not is_url(target) and not Path(target).is_file():
        return None
    db = _open(target)
    if db.dialect == POSTGRES and db.version() == 0:  # an empty database: no store in it yet
        db.close()
        return None
    _migrate(db, target)
    return db


def store_exists(target: Path | str) -> bool:
    """Whether the store has been made (a file, or the tables in the database)."""
    db = open_existing(target)
    if db is not None:
        db.close()
    return db is not None


def _open(target: Path | str) -> Database:
    try:  # a PostgreSQL that cannot be reached is a NewsletterError already
        return database.connect(target)
    except sqlite3.Error as e:  # SQLite reads the file at once (WAL): not a database, not writable
        raise store_error(target, e) from None


def _migrate(db: Database, target: Path | str) -> None:
    try:
        db.migrate(MIGRATIONS)
    except BaseException as e:
        db.close()
        if isinstance(e, db.Error):  # the failed migration was rolled back
            raise store_error(target, e) from None
        raise


def driver_errors() -> tuple[type[Exception], ...]:
    """The error classes of the drivers in use, for an ``except`` with no Database at hand
    (psycopg's only once it is loaded: until then none of its errors can be raised)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error, psycopg.Error) if psycopg is not None else (sqlite3.Error,)


def disk_full(error: BaseException) -> bool:
    """Whether a driver's error means the disk (of SQLite's file, or PostgreSQL's server) is full."""
    return (getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or getattr(error, "sqlstate", None) == DISK_FULL
            or (isinstance(error, sqlite3.Error) and "full" in str(error)))


def store_error(target: Path | str, error: BaseException) -> NewsletterError:
    """What the database's complaint means to the author. Only a file that is not SQLite
    is called "not a subscriber store": a full disk or a locked file must never read as
    an invitation to delete the store."""
    name, text = store_name(target), " ".join(str(error).split()) or type(error).__name__
    if disk_full(error):
        return NewsletterError(f"{name}: the disk is full; nothing was changed",
                               hint="free some space and run the same command again")
    if is_url(target):
        return NewsletterError(f"{name}: cannot use the subscriber store ({text})",
                               hint="check that the database's user may create and write tables in it")
    if "not a database" in text or "malformed" in text:
        return NewsletterError(f"{name}: not a subscriber store ({text})")
    return NewsletterError(f"{name}: cannot use the subscriber store ({text})",
                           hint="check that the file and its folder are writable and not in use")


def transaction(db: Database, lock: str = "") -> AbstractContextManager[Database]:
    """``db.transaction``: all or nothing (``lock``: see ``Database.transaction``)."""
    return db.transaction(lock)


def row_lock(db: Database) -> str:
    """What a read that is about to be written back ends with: PostgreSQL locks the row
    against a concurrent writer; SQLite's writers take turns anyway."""
    return " FOR UPDATE" if db.dialect == POSTGRES else ""


_cursors = count(1)


def stream(db: Database, query: str, size: int = 2000) -> Iterator[tuple]:
    """The rows of ``query`` as they come, for reads too large to hold: SQLite's cursor
    reads them lazily; PostgreSQL's would arrive whole, so a server-side cursor fetches
    ``size`` at a time (inside the caller's transaction, which it needs)."""
    return iter(db.execute(query)) if db.dialect == SQLITE else _fetched(db, query, size)


def _fetched(db: Database, query: str, size: int) -> Iterator[tuple]:
    name = f"stream_{next(_cursors)}"
    db.execute(f"DECLARE {name} NO SCROLL CURSOR FOR {query}")
    while rows := db.execute(f"FETCH FORWARD {size} FROM {name}").fetchall():
        yield from rows
    db.execute(f"CLOSE {name}")
