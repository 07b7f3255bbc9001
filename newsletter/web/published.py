"""Which issues the archive lists: those published, per the store's ``published`` table
(an issue's send started, or ``newsletter publish`` said it went out elsewhere). A draft
is never listed; with no store file nothing is published."""

from __future__ import annotations

import contextlib
import sqlite3

from newsletter.config import Settings
from newsletter.mailing.store import connect, now, store_error, transaction


def published_issues(settings: Settings) -> set[int]:
    """The numbers of the published issues; read only, never creates the store."""
    path = settings.subscribers
    if not path.is_file():
        return set()
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return set()
    with contextlib.closing(db):
        try:
            return {n for (n,) in db.execute("SELECT issue FROM published")}
        except sqlite3.OperationalError:  # a store from before the table: its sends are published
            with contextlib.suppress(sqlite3.OperationalError):
                return {n for (n,) in db.execute("SELECT issue FROM sends WHERE audience = 1")}
            return set()


def publish(settings: Settings, number: int) -> bool:
    """Mark issue ``number`` published (sent elsewhere); False if it already was."""
    db = connect(settings.subscribers)
    try:
        with transaction(db) as t:
            return bool(t.execute("INSERT OR IGNORE INTO published (issue, at, how) VALUES (?, ?, 'publish')",
                                  (number, now())).rowcount)
    except sqlite3.Error as e:
        raise store_error(settings.subscribers, e) from None
    finally:
        db.close()
