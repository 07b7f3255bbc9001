"""The database adapter on both backends: a SQLite file, and a real PostgreSQL server
that the tests start themselves (tests/pg.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.errors import NewsletterError
from newsletter.mailing.db import POSTGRES, Database, connect

from pg import PASSWORD, PASSWORD_ROLE, Server

TABLE = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL DEFAULT 0,
    fields TEXT NOT NULL DEFAULT '{}'   -- JSON stays TEXT on both
);
"""
# The claim of a batch that concurrent `send` processes will make: rows nobody holds, or
# whose holder's lease ran out, become this claimer's until its own lease ends.
# PostgreSQL skips the rows another claimer has locked; SQLite's writers take turns.
CLAIM = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE state = 'pending' OR (state = 'sending' AND lease_until < ?)
    ORDER BY id LIMIT ? {skip_locked}
)
UPDATE jobs SET state = 'sending', owner = ?, lease_until = ?
FROM picked WHERE jobs.id = picked.id
RETURNING jobs.id
"""
JOBS = "CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',"\
       " lease_until REAL NOT NULL DEFAULT 0)"


@pytest.fixture
def db(store_target: Path | str) -> Iterator[Database]:
    database = connect(store_target)
    database.migrate([TABLE])
    yield database
    database.close()


def test_placeholders_beside_literals_and_percent_signs(db: Database) -> None:
    row = db.execute("SELECT '?', ?, 'a%b', ? || '%', 7 % 4 -- what?\n", ("x", "y")).fetchone()
    assert tuple(row) == ("?", "x", "a%b", "y%", 3)
    db.execute("INSERT INTO items (name) VALUES (?), (?), (?)", ("a%", "ab", "why?"))
    assert db.execute("SELECT count(*) FROM items WHERE name LIKE 'a%' AND name != ?", ("ab",)).fetchone()[0] == 1
    assert db.execute("SELECT name FROM items WHERE name = 'why?'").fetchall() == [("why?",)]


def test_values_read_back_as_in_sqlite(db: Database) -> None:
    at = 1_767_225_600.123456  # a unix time to the microsecond: needs 8 bytes (DOUBLE PRECISION)
    big = 2 ** 40  # past a 4-byte INTEGER
    db.execute("INSERT INTO items (name, size, at, fields) VALUES (?, ?, ?, ?)", ("a", big, at, '{"k": "v"}'))
    db.execute("INSERT INTO items (name, size) VALUES (?, ?)", ("b", True))  # a flag as 0/1
    assert db.execute("SELECT size, at, fields FROM items WHERE name = 'a'").fetchone() == (big, at, '{"k": "v"}')
    total, mean = db.execute("SELECT sum(size), avg(size) FROM items").fetchone()
    assert (total, type(total), type(mean)) == (big + 1, int, float)  # not PostgreSQL's Decimal
    assert db.execute("SELECT size FROM items WHERE name = 'b'").fetchone() == (1,)


def test_transaction_commits_or_rolls_back_whole(db: Database) -> None:
    with db.transaction():
        db.execute("INSERT INTO items (name) VALUES ('kept')")
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO items (name) VALUES ('lost')")
        raise RuntimeError("midway")
    with pytest.raises(db.IntegrityError), db.transaction():
        db.execute("INSERT INTO items (name) VALUES ('lost too')")
        db.execute("INSERT INTO items (name) VALUES ('kept')")
    assert not db.in_transaction
    assert db.execute("SELECT name FROM items").fetchall() == [("kept",)]


def test_executemany_is_all_or_nothing(db: Database) -> None:
    with pytest.raises(db.IntegrityError):
        db.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",), ("a",)])
    assert db.execute("SELECT count(*) FROM items").fetchone() == (0,)
    db.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",)])
    assert db.execute("SELECT count(*) FROM items").fetchone() == (2,)


def test_upsert_returning_and_identity_ids(db: Database) -> None:
    insert = "INSERT INTO items (name) VALUES (?) ON CONFLICT (name) DO NOTHING RETURNING id"
    assert db.execute(insert, ("a",)).fetchall() == [(1,)]
    assert db.execute(insert, ("b",)).fetchall() == [(2,)]
    assert db.execute(insert, ("a",)).fetchall() == []  # already there: no row, no error
    db.execute("INSERT INTO items (id, name) VALUES (?, ?)", (10, "given"))  # an id may be named
    update = "INSERT INTO items (name, size) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET size = excluded.size"
    assert db.execute(update, ("a", 5)).rowcount == 1
    assert db.execute("SELECT id, size FROM items WHERE name = 'a'").fetchone() == (1, 5)


def test_snapshot_sees_one_moment(db: Database, store_target: Path | str) -> None:
    with connect(store_target) as other, db.transaction(snapshot=True):
        assert db.execute("SELECT count(*) FROM items").fetchone() == (0,)
        other.execute("INSERT INTO items (name) VALUES ('meanwhile')")
        assert db.execute("SELECT count(*) FROM items").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM items").fetchone() == (1,)


def test_a_named_lock_makes_read_then_write_take_turns(db: Database, store_target: Path | str) -> None:
    """At most three rows, however many writers count and then insert at once."""
    def writer(number: int) -> None:
        with connect(store_target) as mine:
            with mine.transaction(lock="items"):
                if mine.execute("SELECT count(*) FROM items").fetchone()[0] < 3:
                    time.sleep(0.02)  # where a writer without the lock would be overtaken
                    mine.execute("INSERT INTO items (name) VALUES (?)", (f"w{number}",))
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert db.execute("SELECT count(*) FROM items").fetchone() == (3,)


def test_migrations_are_versioned_idempotent_and_whole(store_target: Path | str) -> None:
    first = [TABLE, {"sqlite": "CREATE INDEX items_by_size ON items (size);",
                     "postgresql": "CREATE INDEX items_by_size ON items USING btree (size);"}]
    with connect(store_target) as db:
        assert db.version() == 0
        assert db.migrate(first) == 2
        assert db.migrate(first) == 2  # nothing left to run
        broken = [*first, "CREATE TABLE later (x TEXT); INSERT INTO nowhere VALUES (1);"]
        with pytest.raises(db.Error):
            db.migrate(broken)
        assert db.version() == 2
        db.execute("CREATE TABLE later (y TEXT)")  # the failed migration left nothing behind
        db.execute("DROP TABLE later")
        assert db.migrate([*first, "ALTER TABLE items ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';"]) == 3
        db.execute("INSERT INTO items (name) VALUES ('x')")
        assert db.execute("SELECT tags FROM items").fetchone() == ("[]",)
        with pytest.raises(NewsletterError, match="newer version of newsletter"):
            db.migrate(first)


MIGRATE = """
import json, sys
from newsletter.mailing.db import connect
with connect(sys.argv[1]) as db:
    print(db.migrate(json.loads(sys.argv[2])))
"""


def test_two_processes_migrate_at_once(store_target: Path | str) -> None:
    slow = {"sqlite": "CREATE TABLE filler (x INTEGER); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL"
                      " SELECT x + 1 FROM c WHERE x < 300000) INSERT INTO filler SELECT x FROM c;",
            "postgresql": "CREATE TABLE filler (x INTEGER); SELECT pg_sleep(0.5);"}
    migrations = [slow, "CREATE TABLE runs (n INTEGER); INSERT INTO runs VALUES (2);",
                  "INSERT INTO runs VALUES (3);"]
    args = [sys.executable, "-c", MIGRATE, str(store_target), json.dumps(migrations)]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    assert [out.strip() for out, _ in results] == ["3", "3"]
    with connect(store_target) as db:
        assert db.execute("SELECT n FROM runs ORDER BY n").fetchall() == [(2,), (3,)]  # each ran once
        if db.dialect == POSTGRES:
            assert db.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [(1,), (2,), (3,)]


def claim(db: Database, owner: str, now: float, batch: int = 5, lease: float = 60) -> list[int]:
    rows = db.execute(CLAIM.format(skip_locked=db.skip_locked), (now, batch, owner, now + lease)).fetchall()
    return sorted(row[0] for row in rows)


def test_two_claimers_never_get_the_same_row(store_target: Path | str) -> None:
    with connect(store_target) as db:
        db.migrate([JOBS])
        db.executemany("INSERT INTO jobs (state) VALUES (?)", [("pending",)] * 60)
    got: dict[str, list[int]] = {"a": [], "b": []}
    ready = threading.Barrier(len(got))

    def claimer(owner: str) -> None:
        with connect(store_target) as mine:
            ready.wait()  # both connected: neither is done before the other starts
            while True:
                with mine.transaction():
                    ids = claim(mine, owner, time.time())
                    time.sleep(0.01)  # still holding them while the other claims
                if not ids:
                    return
                got[owner] += ids
                time.sleep(0.005)  # sending them
                mine.executemany("UPDATE jobs SET state = 'sent' WHERE id = ?", [(i,) for i in ids])
    threads = [threading.Thread(target=claimer, args=(owner,)) for owner in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == list(range(1, 61))
    if isinstance(store_target, str):  # SQLite's waiting writer may lose every race: no turns promised
        assert got["a"] and got["b"]  # both took part


def test_an_expired_lease_is_claimed_again(store_target: Path | str) -> None:
    with connect(store_target) as db:
        db.migrate([JOBS])
        db.executemany("INSERT INTO jobs (state) VALUES (?)", [("pending",)] * 4)
        with db.transaction():
            assert claim(db, "dead", now=1000, batch=2, lease=30) == [1, 2]
        with db.transaction():
            assert claim(db, "alive", now=1010, batch=10, lease=30) == [3, 4]
        with db.transaction():  # "dead" never renewed its lease; "alive"'s still runs
            assert claim(db, "next", now=1035, batch=10, lease=30) == [1, 2]
        assert db.execute("SELECT owner FROM jobs ORDER BY id").fetchall() == [("next",)] * 2 + [("alive",)] * 2


def test_where_the_password_comes_from(pg_server: Server, pg_url: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_url.replace("postgres@", f"{PASSWORD_ROLE}@")
    for name in ("NEWSLETTER_PGPASSWORD", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(NewsletterError, match="cannot connect to PostgreSQL") as caught:
        connect(url)
    assert "NEWSLETTER_PGPASSWORD" in caught.value.hint
    monkeypatch.setenv("NEWSLETTER_PGPASSWORD", PASSWORD)
    connect(url).close()
    monkeypatch.delenv("NEWSLETTER_PGPASSWORD")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)  # libpq's own
    connect(url).close()
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_server.port}:*:{PASSWORD_ROLE}:{PASSWORD}\n")
    os.chmod(pgpass, 0o600)  # libpq ignores a .pgpass others can read
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    connect(url).close()
    with pytest.raises(NewsletterError, match="has a password in it"):
        connect(url.replace(f"{PASSWORD_ROLE}@", f"{PASSWORD_ROLE}:{PASSWORD}@"))
