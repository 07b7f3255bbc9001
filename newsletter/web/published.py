"""Which issues the archive lists: those published, per the store's ``published`` table
(an issue's send started, or ``newsletter publish`` said it went out elsewhere). A draft
is never listed; with no store yet nothing is published."""

from __future__ import annotations

import contextlib
import sqlite3

from newsletter.config import Settings
from newsletter.mailing.db import Database
from newsletter.mailing.dialects import is_url
from newsletter.mailing.storage import connect, now, open_existing, store_error


def published_issues(settings: Settings, db: Database | None = None) -> set[int]:
    """The numbers of the published issues; read only, never creates the store. ``db``:
    an open connection to the store to read them with (``serve`` keeps one)."""
    target = settings.subscribers
    if db is not None:
        return {n for (n,) in db.execute("SELECT issue FROM published")}
    if is_url(target):  # one that cannot be reached says so: an empty archive would unlist every issue
        db = open_existing(target)
        if db is None:
            return set()
        with contextlib.closing(db):
            return published_issues(settings, db)
    if not target.is_file():
        return set()
    try:
        file = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return set()
    with contextlib.closing(file):
        try:
            return {n for (n,) in file.execute("SELECT issue FROM published")}
        except sqlite3.OperationalError:  # a store from before the table: its sends are published
            with contextlib.suppress(sqlite3.OperationalError):
                return {n for (n,) in file.execute("SELECT issue FROM sends WHERE audience = 1")}
            return set()


def publish(settings: Settings, number: int) -> bool:
    """Mark issue ``number`` published (sent elsewhere); False if it already was."""
    db = connect(settings.subscribers)
    try:
        return bool(db.execute("INSERT INTO published (issue, at, how) VALUES (?, ?, 'publish')"
                               " ON CONFLICT DO NOTHING", (number, now())).rowcount)
    except db.Error as e:
        raise store_error(settings.subscribers, e) from None
    finally:
        db.close()
