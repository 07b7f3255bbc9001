"""`newsletter migrate --to`: a SQLite store filled through the real commands (an import
with fields and tags, a real send with a refused address, bounces, publish, a schedule,
the outbox, links and clicks) copied to a real PostgreSQL and back, every command reading
the copy as the original; and the refusals that leave the target as it was."""

from __future__ import annotations

import mailbox
import re
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from newsletter.mailing.db import connect as open_database
from newsletter.mailing.store import Store

from pg import Server
from support import free_port, smtp_config

INBOUND = Path(__file__).resolve().parent.parent / "data" / "inbound"
PEOPLE = """\
email,name,lang,tags
ada@example.com,Ada Lovelace,en,"ml,papers"
carol@example.com,Carol,de,ml
erin@example.com,Erin,en,
li.wei@example.cn,李伟,zh,ml
gone@example.com,Gone,en,papers
"""
TABLES = ("subscribers", "events", "deliveries", "sends", "outbox", "published", "schedules", "inbound", "links",
          "clicks")
# What the workspace's commands print, to be the same on the original and on the copy.
READS = (("status", "issues/033.yaml"), ("subscribers", "list"), ("subscribers", "list", "--format", "json"),
         ("stats", "--format", "json"), ("stats", "33", "--format", "json"), ("schedule",))


@pytest.fixture
def filled(ws, smtp, secret):
    """A SQLite store with a row in every table, each written as the commands write it."""
    ws.extra = smtp_config(smtp.port) + "bounces:\n  address: bounces@example.com\n"
    ws.configure(extra=ws.extra)
    (ws.root / "people.csv").write_text(PEOPLE, "utf-8")
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    assert ws.run("subscribers", "add", "dora@example.com").exit_code == 0
    assert ws.run("subscribers", "add", "frank@example.com").exit_code == 0
    assert ws.run("subscribers", "remove", "frank@example.com").exit_code == 0
    ws.issue("033.yaml", number=33)
    smtp.misbehave_at_rcpt("gone@example.com", "550 5.1.1 <gone@example.com>: no such user")
    result = ws.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 3, result.output  # one refused address
    box = mailbox.Maildir(str(ws.root / "Maildir"), create=True)
    for name in ("postfix-hard.eml", "gmail-soft.eml", "arf-complaint.eml"):  # ada, carol, erin; issue 33
        box.add((INBOUND / name).read_bytes())
    assert ws.run("bounces", "--maildir", str(ws.root / "Maildir")).exit_code == 0
    ws.issue("032.yaml", number=32)
    assert ws.run("publish", "32").exit_code == 0
    ws.issue("034.yaml", number=34)
    assert ws.run("send", "issues/034.yaml", "--at", "2099-01-01T09:00+00:00").exit_code == 0
    with open_database(ws.settings.subscribers) as db, db.transaction():  # as serve writes them
        db.execute("INSERT INTO outbox (email, mailbox, client, created_at, state) VALUES (?, ?, ?, ?, 'queued')",
                   ("new@example.com", "new@example.com", "client1", time.time()))
        db.execute("INSERT INTO links (issue, id, url, section, title) VALUES (33, 1, ?, 'featured', 'First item')",
                   ("https://ml.test/first?utm_source=newsletter",))
        db.executemany("INSERT INTO clicks (issue, link, at, client, verdict) VALUES (33, 1, ?, ?, ?)",
                       [(time.time() + n / 7, f"client{n}", verdict)
                        for n, verdict in enumerate(("counted", "counted", "repeat", "scanner"))])
        db.execute("UPDATE events SET issue = 33 WHERE id = (SELECT max(id) FROM events)")
    assert all(counts(ws.settings.subscribers))
    return ws


def outputs(ws) -> list[str]:
    results = [ws.run(*command) for command in READS]
    assert [r.exit_code for r in results] == [0] * len(READS), [r.output for r in results]
    return [r.stdout for r in results]


def problems(result) -> list[str]:
    """What a command said on stderr, less the line saying what it copies."""
    return [line for line in result.stderr.splitlines() if not line.startswith("Copying ")]


def sql(path: Path, statement: str, *params: object) -> None:
    """One statement on a SQLite store, committed, as another process would run it."""
    with closing(sqlite3.connect(path, timeout=30)) as db, db:
        db.execute(statement, params)


def counts(store: Path | str) -> list[int]:
    with open_database(store) as db:
        return [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES]


def rows(path: Path, table: str, ordered: bool = False) -> list[tuple]:
    """A SQLite store's rows of ``table``: in the order they came (rowid), or sorted."""
    with closing(sqlite3.connect(path)) as db:
        found = db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    return found if ordered else sorted(found, key=repr)


def test_sqlite_to_postgresql_and_back_keeps_every_row(filled, pg_url: str, pg_server: Server) -> None:
    original, before = filled.settings.subscribers, outputs(filled)
    result = filled.run("migrate", "--to", pg_url)
    assert result.exit_code == 0, result.output
    assert f"subscribers: {pg_url}\n" in result.stdout and "row counts and checksums match" in result.stdout
    for table in TABLES:  # a line per table, with its rows
        assert re.search(rf"^  {table} +{len(rows(original, table))}$", result.stdout, re.M), table
    filled.configure(extra=filled.extra + f"subscribers: {pg_url}\n")
    assert outputs(filled) == before

    backup = filled.root / "backup" / "subscribers.db"
    backup.parent.mkdir()
    result = filled.run("migrate", "--to", str(backup))
    assert result.exit_code == 0, result.output
    assert f"subscribers: {backup}\n" in result.stdout
    for table in TABLES:
        assert rows(backup, table) == rows(original, table), table
    for table in ("subscribers", "deliveries"):  # in the order they came, which pages and sends follow
        assert rows(backup, table, ordered=True) == rows(original, table, ordered=True), table
    filled.configure(extra=filled.extra + f"subscribers: {backup}\n")
    assert outputs(filled) == before

    filled.configure(extra=filled.extra + f"subscribers: {pg_url}\n")
    another = pg_server.url(f"{pg_url.rsplit('/', 1)[1]}_copy")
    pg_server.create_database(another.rsplit("/", 1)[1])
    try:  # and from one PostgreSQL to another
        assert filled.run("migrate", "--to", another).exit_code == 0
        filled.configure(extra=filled.extra + f"subscribers: {another}\n")
        assert outputs(filled) == before
    finally:
        pg_server.drop_database(another.rsplit("/", 1)[1])

    filled.configure(extra=filled.extra + f"subscribers: {pg_url}\n")  # new ids go past the copied ones
    assert filled.run("subscribers", "add", "later@example.com").exit_code == 0
    with open_database(pg_url) as db:
        assert db.execute("SELECT max(id) FROM events").fetchone() == (len(rows(original, "events")) + 1,)


@pytest.mark.parametrize("target", ["sqlite", "postgresql"])
def test_a_target_that_holds_rows_is_refused_and_left_as_it_was(filled, target: str,
                                                                request: pytest.FixtureRequest) -> None:
    where = filled.root / "other.db" if target == "sqlite" else request.getfixturevalue("pg_url")
    with Store(where) as other:
        other.add("someone@example.org", name="Someone")
    before = counts(where)
    result = filled.run("migrate", "--to", str(where))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(f"--to: {where} already holds a subscriber store (events,"
                                                     " subscribers not empty); nothing was copied")
    assert "Traceback" not in result.output
    assert counts(where) == before


def test_a_copy_that_fails_midway_leaves_the_target_empty(filled, pg_url: str) -> None:
    """PostgreSQL's text takes no NUL character, which SQLite's does: the copy stops at it."""
    sql(filled.settings.subscribers, "UPDATE subscribers SET name = ? WHERE email_key = 'li.wei@example.cn'",
        "Nul\x00Name")
    result = filled.run("migrate", "--to", pg_url)
    assert result.exit_code == 1
    (line,) = problems(result)
    assert line.startswith(f"copying {filled.settings.subscribers} to {pg_url} failed (") and line.endswith(
        "; nothing was copied")
    assert counts(pg_url) == [0] * len(TABLES)


def test_a_password_in_the_url_is_refused_in_one_sentence(filled) -> None:
    result = filled.run("migrate", "--to", "postgresql://news:hunter2@127.0.0.1:5432/letters")
    assert result.exit_code == 1
    assert problems(result) == [
        "--to: postgresql://news:***@127.0.0.1:5432/letters has a password in it; newsletter.yaml must not hold one"
        " (remove it and set NEWSLETTER_PGPASSWORD; PGPASSWORD and ~/.pgpass work too)"]


def test_a_postgresql_that_cannot_be_reached_is_one_sentence(filled) -> None:
    url = f"postgresql://news@127.0.0.1:{free_port()}/letters"
    result = filled.run("migrate", "--to", url)
    assert result.exit_code == 1
    (line,) = problems(result)
    assert line.startswith(f"{url}: cannot connect to PostgreSQL (") and "Traceback" not in result.output


def test_a_running_send_is_refused_and_nothing_is_made(filled) -> None:
    sql(filled.settings.subscribers, "UPDATE sends SET owner = '4242@elsewhere', heartbeat = ? WHERE issue = 33",
        time.time())  # another host's send, its heartbeat fresh
    copy = filled.root / "copy.db"
    result = filled.run("migrate", "--to", str(copy))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"{filled.settings.subscribers}: a send is running (issue 33, process 4242 on elsewhere)")
    assert not copy.exists()
    sql(filled.settings.subscribers, "UPDATE sends SET heartbeat = ? WHERE issue = 33",
        time.time() - 3600)  # a send dead for long is no obstacle
    assert filled.run("migrate", "--to", str(copy)).exit_code == 0
    assert rows(copy, "sends") == rows(filled.settings.subscribers, "sends")


def test_the_store_itself_and_a_missing_store_are_refused(ws) -> None:
    result = ws.run("migrate", "--to", "copy.db")
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        1, f"{ws.settings.subscribers}: no subscriber store there yet, so nothing to copy")
    assert ws.run("subscribers", "add", "ada@example.com").exit_code == 0
    result = ws.run("migrate", "--to", str(ws.settings.subscribers))
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (
        1, f"--to: {ws.settings.subscribers} is the store itself; name another database or file")


def test_a_store_written_to_while_it_is_copied_is_not_switched_to(ws) -> None:
    """A writer the author forgot (serve counting clicks) goes on during the copy: the copy
    is of one moment, then stale, so it is not kept."""
    (ws.root / "many.csv").write_text("email\n" + "".join(f"reader{n}@example.com\n" for n in range(20000)))
    assert ws.run("subscribers", "import", "many.csv").exit_code == 0
    stop = threading.Event()

    def clicks() -> None:
        while not stop.wait(0.002):
            sql(ws.settings.subscribers, "INSERT INTO clicks (issue, link, at, client) VALUES (1, 1, ?, 'c')",
                time.time())
    writer = threading.Thread(target=clicks)
    writer.start()
    try:
        result = ws.run("migrate", "--to", str(ws.root / "copy.db"))
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 1
    assert problems(result) == [f"{ws.settings.subscribers}: the store changed while it was copied (clicks); nothing"
                                " was copied (stop `serve`, sends and cron jobs, then run again)"]
    assert not (ws.root / "copy.db").exists()
