"""One way to talk to the store's database, SQLite or PostgreSQL (psycopg 3, pooled).

Store code writes each query once, with ``?`` placeholders, in the SQL both dialects
agree on (``INSERT ... ON CONFLICT DO NOTHING``, ``RETURNING``, ``UPDATE ... FROM``),
and asks ``Database.dialect`` or ``dialects`` only where they differ. A PostgreSQL
store is named by a URL, ``postgresql://user@host:port/db``; its password never is.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from newsletter.errors import NewsletterError
from newsletter.mailing.dialects import (
    PASSWORD_VARIABLE,
    POSTGRES,
    SQLITE,
    Migration,
    configure,
    conninfo,
    ddl,
    is_url,
    lock_key,
    redact,
    to_pyformat,
)

SCHEMA_LOCK = "newsletter.schema"  # the advisory lock (see lock_key) that migrations take in turn


class Rows:
    """A finished statement's rows, read like a sqlite3 cursor (PostgreSQL's results are
    fetched whole, so that the connection can go back to the pool at once)."""

    def __init__(self, rows: list[tuple], rowcount: int):
        self._rows = iter(rows)
        self.rowcount = rowcount

    def fetchone(self) -> tuple | None:
        return next(self._rows, None)

    def fetchall(self) -> list[tuple]:
        return list(self._rows)

    def __iter__(self) -> Iterator[tuple]:
        return self._rows


def connect(target: Path | str, *, pool_size: int = 4) -> Database:
    """Open the database at ``target``: a SQLite file (created when missing) or a
    ``postgresql://`` URL (a pool of up to ``pool_size`` connections)."""
    return Postgres(target, pool_size) if is_url(target) else Sqlite(Path(target))


class Database:
    """A connection (SQLite) or a pool (PostgreSQL) that runs ``?``-style SQL.

    Outside ``transaction()`` each statement commits by itself. ``Error`` and
    ``IntegrityError`` are the driver's exception classes, for ``except`` clauses."""

    dialect: str
    name: str  # what messages call it: the path, or the URL without a password
    skip_locked: str  # appended to a claim's SELECT: SQLite's writers never overlap anyway
    Error: type[Exception]
    IntegrityError: type[Exception]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; the result has ``fetchone``, ``fetchall``, iteration and
        ``rowcount``. No ``lastrowid``: use ``RETURNING id``."""
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per row, all in one transaction (the current one, if any)."""
        raise NotImplementedError

    def executescript(self, script: str) -> None:
        """Run statements without parameters, in the current transaction (unlike
        ``sqlite3.executescript``, which commits first)."""
        raise NotImplementedError

    def transaction(self, lock: str = "", snapshot: bool = False) -> AbstractContextManager[Database]:
        """BEGIN ... COMMIT, or ROLLBACK on any error. SQLite's BEGIN IMMEDIATE makes
        writers take turns; a PostgreSQL writer that reads before it writes (a count,
        then an insert) names a ``lock`` to take turns with the others that name it.
        ``snapshot``: a read-only transaction whose statements all see one moment."""
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside ``transaction()``."""
        raise NotImplementedError

    def version(self) -> int:
        """The schema version: how many migrations have run."""
        raise NotImplementedError

    def migrate(self, migrations: Sequence[Migration]) -> int:
        """Run the migrations past ``version()``, each in its own transaction, one
        process at a time; return the new version."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def script(self, migration: Migration) -> str:
        """A migration's text for this dialect."""
        return ddl(migration, self.dialect) if isinstance(migration, str) else migration[self.dialect]

    def newer(self, version: int, migrations: Sequence[Migration]) -> None:
        if version > len(migrations):
            raise NewsletterError(f"{self.name}: made by a newer version of newsletter (schema {version})")

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Sqlite(Database):
    """One sqlite3 connection in autocommit mode, WAL, shared by the process's threads."""

    dialect, skip_locked = SQLITE, ""
    Error, IntegrityError = sqlite3.Error, sqlite3.IntegrityError

    def __init__(self, path: Path):
        self.name = str(path)
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        for wait in itertools.chain(itertools.repeat(0.05, 600), [None]):  # readers go on beside one writer
            try:  # a new file's first switch to WAL fails at once, without waiting, while another
                self.conn.execute("PRAGMA journal_mode=WAL")  # process holds it (two opening a new store)
                break
            except sqlite3.OperationalError as e:
                if wait is None or "locked" not in str(e):
                    raise
                time.sleep(wait)
        self.conn.execute("PRAGMA synchronous=NORMAL")  # still safe from a killed process

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with nullcontext() if self.conn.in_transaction else self.transaction():
            self.conn.executemany(sql, rows)

    def executescript(self, script: str) -> None:
        statement = ""
        for piece in script.split(";"):  # complete_statement knows literals, comments, triggers
            statement += piece + ";"
            if sqlite3.complete_statement(statement):
                self.conn.execute(statement)
                statement = ""
        if statement.strip(" \t\n;"):
            self.conn.execute(statement)

    @contextmanager
    def transaction(self, lock: str = "", snapshot: bool = False) -> Iterator[Database]:
        self.conn.execute("BEGIN" if snapshot else "BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        if snapshot:
            self.conn.execute("ROLLBACK")
            return
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error:  # a failed COMMIT (a full disk) may leave the transaction open
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self, migrations: Sequence[Migration]) -> int:
        self.newer(self.version(), migrations)
        for number in range(self.version(), len(migrations)):
            with self.transaction():
                if self.version() != number:  # another process ran it while this one waited
                    continue
                self.executescript(self.script(migrations[number]))
                self.conn.execute(f"PRAGMA user_version = {number + 1}")
        return self.version()

    def close(self) -> None:
        self.conn.close()


class Postgres(Database):
    """A psycopg pool. A statement outside a transaction borrows a connection for
    itself; ``transaction()`` lends one to its thread until COMMIT."""

    dialect, skip_locked = POSTGRES, "FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, pool_size: int):
        import psycopg
        from psycopg_pool import ConnectionPool

        self.name, self.Error, self.IntegrityError = redact(url), psycopg.Error, psycopg.IntegrityError
        info = conninfo(url)
        try:  # one connection first, so that a wrong host or password says why at once
            psycopg.connect(info, connect_timeout=10).close()
        except psycopg.OperationalError as e:
            reason = " ".join(str(e).split()) or type(e).__name__  # libpq's lines, as one
            raise NewsletterError(f"{self.name}: cannot connect to PostgreSQL ({reason})",
                                  hint=f"check the host, port and user; the password goes in {PASSWORD_VARIABLE}, "
                                       "PGPASSWORD or ~/.pgpass") from None
        self.local = threading.local()  # the connection of the thread's open transaction
        self.pool = ConnectionPool(info, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
                                   configure=configure, open=True, name=self.name)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self.in_transaction:
            yield self.local.conn
            return
        with self.pool.connection() as conn:
            yield conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        with self._connection() as conn, conn.cursor() as cursor:
            cursor.execute(to_pyformat(sql), tuple(params))
            return Rows(cursor.fetchall() if cursor.description else [], cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with nullcontext() if self.in_transaction else self.transaction():
            self.local.conn.cursor().executemany(to_pyformat(sql), rows)

    def executescript(self, script: str) -> None:
        with self._connection() as conn:
            conn.execute(script)  # no parameters: the simple protocol, which runs many statements

    @contextmanager
    def transaction(self, lock: str = "", snapshot: bool = False) -> Iterator[Database]:
        if self.in_transaction:
            raise RuntimeError("a transaction is already open in this thread")
        with self.pool.connection() as conn, self._transaction(conn, lock, snapshot):
            yield self

    @contextmanager
    def _transaction(self, conn: Any, lock: str = "", snapshot: bool = False) -> Iterator[None]:
        """A transaction on ``conn``, which this thread's statements use meanwhile."""
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if snapshot else "BEGIN")
        self.local.conn = conn
        try:
            if lock:  # released by COMMIT or ROLLBACK
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(lock),))
            yield
        except BaseException:
            with suppress(self.Error):  # a broken connection: the pool drops it
                conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("ROLLBACK" if snapshot else "COMMIT")
        finally:
            self.local.conn = None

    @property
    def in_transaction(self) -> bool:
        return getattr(self.local, "conn", None) is not None

    def version(self) -> int:
        if not self.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]:
            return 0
        return self.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def migrate(self, migrations: Sequence[Migration]) -> int:
        with self.pool.connection() as conn:
            # A session lock, held across the migrations' transactions on this connection;
            # a killed process loses its session, and so its lock.
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(SCHEMA_LOCK),))
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                             " applied_at TEXT NOT NULL)")
                with self._transaction(conn):
                    version = self.version()
                self.newer(version, migrations)
                for number in range(version, len(migrations)):
                    with self._transaction(conn):
                        self.executescript(self.script(migrations[number]))
                        self.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                                     (number + 1, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")))
            finally:
                with suppress(self.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(SCHEMA_LOCK),))
        return self.version()

    def close(self) -> None:
        self.pool.close()
