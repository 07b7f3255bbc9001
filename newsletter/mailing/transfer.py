"""``newsletter migrate``: copy a whole subscriber store to another database, SQLite to
PostgreSQL or back (a backup), every table, column and id, then check the copy.

Both ends are opened as every command opens a store (``storage``), so the target gets
the same schema by the same migrations. The copy is one transaction on the target, fed
in batches from one snapshot of the source, and checked (row counts and per-column
sums, against the snapshot and then against the source as it is now, which a writer
meanwhile would have changed) before it commits: the target ends up with the whole
store or with nothing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import suppress
from graphlib import TopologicalSorter
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from newsletter.errors import NewsletterError
from newsletter.mailing import db as database
from newsletter.mailing.db import Database
from newsletter.mailing.dialects import POSTGRES, SQLITE, conninfo, is_url
from newsletter.mailing.journal import STALE_AFTER
from newsletter.mailing.schema import ORDER
from newsletter.mailing.storage import connect, disk_full, open_existing, store_error, store_name, stream

BATCH = 5000  # rows per executemany: a million-row store is never held at once
BOOKKEEPING = {"schema_version"}  # PostgreSQL's migration record: each end keeps its own


class Column(NamedTuple):
    name: str
    kind: str  # text | int | real: what its checksum adds up
    generated: bool = False  # PostgreSQL's GENERATED ALWAYS (seq): the target numbers it itself
    identity: bool = False  # PostgreSQL's id BY DEFAULT: its sequence must move past the copied ids


class Copied(NamedTuple):
    """What ``copy_store`` did: each table with its rows, in the order copied."""

    source: str
    target: str
    version: int
    tables: list[tuple[str, int]]
    skipped: list[str]  # tables in the source that are no part of the store's schema
    seconds: float


def copy_store(source: Path | str, target: Path | str, batch: int = BATCH) -> Copied:
    """Copy the store at ``source`` into ``target`` (a file or a URL), which must hold no
    rows; verify it; return what was copied. Any problem is a NewsletterError, and then
    the target holds no row of the store (a file this made is removed)."""
    began, made = time.monotonic(), not is_url(target) and not Path(target).exists()
    _check_target(source, target)
    src = open_existing(source)
    if src is None:
        raise NewsletterError(f"{store_name(source)}: no subscriber store there yet, so nothing to copy")
    dst: Database | None = None
    try:
        _refuse_running_send(src)
        _refuse_filled(target)
        dst = connect(target)
        try:
            tables, skipped = _copy(src, dst, batch)
        except (src.Error, dst.Error) as e:
            raise _failed(src, dst, e) from None
        return Copied(src.name, dst.name, dst.version(), tables, skipped, time.monotonic() - began)
    except BaseException:
        if dst is not None:
            dst.close()
        if made:  # a file this made holds no store: leave nothing behind
            for suffix in ("", "-wal", "-shm"):
                with suppress(OSError):
                    Path(f"{target}{suffix}").unlink()
        raise
    finally:
        src.close()
        if dst is not None:
            dst.close()


def _check_target(source: Path | str, target: Path | str) -> None:
    """Refuse the store itself, and a URL the adapter would refuse (a password in it,
    no database), naming it as --to."""
    if is_url(target):
        try:
            conninfo(str(target))
        except NewsletterError as e:
            raise NewsletterError(f"--to: {e.message.removeprefix('subscribers: ')}", hint=e.hint) from None
    same = (str(source) == str(target) if is_url(source) or is_url(target)
            else Path(source).resolve() == Path(target).resolve())
    if same:
        raise NewsletterError(f"--to: {store_name(target)} is the store itself; name another database or file")


def _refuse_running_send(db: Database) -> None:
    """A send running now would go on writing to the source: the copy would miss it."""
    for issue, owner, heartbeat in db.execute("SELECT issue, owner, heartbeat FROM sends WHERE owner != ''"):
        if time.time() - heartbeat < STALE_AFTER:
            pid, _, host = owner.partition("@")
            raise NewsletterError(f"{db.name}: a send is running (issue {issue}, process {pid} on {host}), so a"
                                  " copy would be stale at once; nothing was copied",
                                  hint="let it finish, stop `serve` and cron, then run migrate again")


def _refuse_filled(target: Path | str) -> None:
    """Refuse a target that holds rows, before its schema is made or migrated: a refused
    target is left exactly as it was."""
    if not is_url(target) and not Path(target).exists():
        return
    try:
        db = database.connect(target)
    except sqlite3.Error as e:
        raise store_error(target, e) from None
    with db:
        filled = _filled(db) if db.version() else []
    if filled:
        raise NewsletterError(f"--to: {db.name} already holds a subscriber store ({', '.join(filled)} not empty);"
                              " nothing was copied", hint="give an empty database or a new file")


def _filled(db: Database) -> list[str]:
    return [t for t in _tables(db) if db.execute(f"SELECT 1 FROM {_quote(t)} LIMIT 1").fetchone()]


def _copy(src: Database, dst: Database, batch: int) -> tuple[list[tuple[str, int]], list[str]]:
    """Every table in one target transaction from one source snapshot, checked before COMMIT."""
    with dst.transaction():
        with src.transaction(snapshot=True):
            if filled := _filled(dst):  # written to since it was looked at
                raise NewsletterError(f"--to: {dst.name} was written to meanwhile ({', '.join(filled)});"
                                      " nothing was copied")
            ours = set(_tables(dst))
            names = [t for t in _ordered(src) if t in ours]
            mine = {t: _columns(src, t) for t in names}
            plan = {t: _common(mine[t], {c.name: c for c in _columns(dst, t)}) for t in names}
            # In the order rows came (SQLite's rowid, PostgreSQL's seq): the target's own
            # numbering of that order (rowid, seq) then follows the source's.
            order = {t: ORDER[src.dialect] if src.dialect == SQLITE or ORDER[POSTGRES] in {c.name for c in mine[t]}
                     else "" for t in names}
            counts = [(t, _copy_table(src, dst, t, cols, order[t], batch)) for t, cols in plan.items()]
            expected = {t: _checksum(src, t, cols) for t, cols in plan.items()}
        for t, cols in plan.items():
            if (got := _checksum(dst, t, cols)) != expected[t]:
                raise NewsletterError(f"{dst.name}: the copy of {t} does not match the original (source"
                                      f" {expected[t]}, copy {got}); nothing was copied")
        # The snapshot is a moment; a writer since (serve, a send, an import) would be
        # lost on switching: the copy commits only if it is the store as it is now.
        if changed := [t for t, cols in plan.items() if _checksum(src, t, cols) != expected[t]]:
            raise NewsletterError(f"{src.name}: the store changed while it was copied ({', '.join(changed)});"
                                  " nothing was copied", hint="stop `serve`, sends and cron jobs, then run again")
    return counts, [t for t in _tables(src) if t not in ours]


def _common(cols: list[Column], theirs: dict[str, Column]) -> list[Column]:
    """The source's columns that the target takes as given (not its own numbering), each
    marked ``identity`` as the target has it."""
    missing = [c.name for c in cols if c.name not in theirs and not c.generated]
    if missing:
        raise NewsletterError(f"the target's schema has no column {', '.join(missing)}; nothing was copied")
    return [c._replace(identity=theirs[c.name].identity) for c in cols
            if not c.generated and not theirs[c.name].generated]


def _copy_table(src: Database, dst: Database, table: str, common: list[Column], order: str, batch: int) -> int:
    names = ", ".join(_quote(c.name) for c in common)
    query = f"SELECT {names} FROM {_quote(table)}" + (f" ORDER BY {order}" if order else "")
    insert = f"INSERT INTO {_quote(table)} ({names}) VALUES ({', '.join('?' * len(common))})"
    rows, total = stream(src, query, batch), 0
    while chunk := list(islice(rows, batch)):
        dst.executemany(insert, chunk)
        total += len(chunk)
    for column in (c for c in common if c.identity):  # the next new id follows the copied ones
        dst.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), max({_quote(column.name)})) FROM {_quote(table)}"
                    f" HAVING max({_quote(column.name)}) IS NOT NULL", (table, column.name))
    return total


def _checksum(db: Database, table: str, cols: list[Column]) -> tuple:
    """Row count, and per column what both dialects compute exactly: the total length of
    a text, the sum of an integer, the least and greatest of a real."""
    parts = ["count(*)"]
    for c in cols:
        name = _quote(c.name)
        parts += ([f"sum(length({name}))"] if c.kind == "text" else [f"sum({name})"] if c.kind == "int"
                  else [f"min({name})", f"max({name})"])
    return tuple(db.execute(f"SELECT {', '.join(parts)} FROM {_quote(table)}").fetchone())


def _tables(db: Database) -> list[str]:
    if db.dialect == SQLITE:
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'"
    else:
        query = ("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                 " AND table_type = 'BASE TABLE'")
    return sorted(name for (name,) in db.execute(query) if name not in BOOKKEEPING)


def _ordered(db: Database) -> Iterator[str]:
    """The tables, each after those its foreign keys name (the schema has none today)."""
    if db.dialect == SQLITE:
        refs = [(t, r) for t in _tables(db) for (r,) in db.execute('SELECT "table" FROM pragma_foreign_key_list(?)',
                                                                    (t,))]
    else:
        refs = db.execute("SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
                          " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace").fetchall()
    graph: dict[str, set[str]] = {t: set() for t in _tables(db)}
    for table, parent in refs:
        if table != parent and parent in graph:
            graph[table].add(parent)
    return TopologicalSorter(graph).static_order()


def _columns(db: Database, table: str) -> list[Column]:
    if db.dialect == SQLITE:
        rows = [(n, t, False, False) for n, t in db.execute("SELECT name, type FROM pragma_table_info(?)", (table,))]
    else:
        rows = db.execute("SELECT column_name, data_type, is_identity = 'YES' AND identity_generation = 'ALWAYS'"
                          " OR is_generated = 'ALWAYS', is_identity = 'YES' AND identity_generation = 'BY DEFAULT'"
                          " FROM information_schema.columns WHERE table_schema = current_schema()"
                          " AND table_name = ? ORDER BY ordinal_position", (table,)).fetchall()
    return [Column(name, _kind(kind), bool(generated), bool(identity)) for name, kind, generated, identity in rows]


def _kind(declared: str) -> str:
    declared = declared.lower()
    return "int" if "int" in declared else "text" if "text" in declared or "char" in declared else "real"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _failed(src: Database, dst: Database, error: Exception) -> NewsletterError:
    """A driver's error during the copy, as one sentence; the target's transaction was rolled back."""
    if disk_full(error):
        return NewsletterError(f"{dst.name}: the disk is full; nothing was copied",
                               hint="free some space and run the same command again")
    text = " ".join(str(error).split()) or type(error).__name__
    return NewsletterError(f"copying {src.name} to {dst.name} failed ({text}); nothing was copied")
