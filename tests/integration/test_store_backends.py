"""The subscriber store below the commands, on a SQLite file and on a real PostgreSQL:
the setting that names it, SQLite stores of every older schema, reads that stream,
pages in the order rows came in, outbox claims, and a server that cannot be reached."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings
from newsletter.errors import Invalid
from newsletter.mailing.journal import Journal
from newsletter.mailing.schema import MIGRATIONS
from newsletter.mailing.storage import store_exists, stream
from newsletter.mailing.store import Store, subscriber_pages
from newsletter.web.outbox import Outbox

from support import free_port

CONFIG = "name: X\nsubscribers: {}\n"


def settings_with(tmp_path: Path, subscribers: str) -> Settings:
    (tmp_path / "newsletter.yaml").write_text(CONFIG.format(subscribers))
    return load_settings(tmp_path / "newsletter.yaml")


def test_subscribers_names_a_file_or_a_postgresql_url(tmp_path: Path) -> None:
    url = "postgresql://news@db.example.com:5433/letters?sslmode=require"
    assert settings_with(tmp_path, url).subscribers == url  # a URL stays text
    assert settings_with(tmp_path, "postgres://db.example.com/letters").subscribers == "postgres://db.example.com/letters"
    assert settings_with(tmp_path, "data/subs.db").subscribers == tmp_path.resolve() / "data" / "subs.db"
    (tmp_path / "newsletter.yaml").write_text("name: X\n")
    assert load_settings(tmp_path / "newsletter.yaml").subscribers == tmp_path.resolve() / "subscribers.db"


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://news:hunter2@db.example.com/letters", "holds a password, which newsletter.yaml must not"),
    ("postgresql://news@db.example.com/letters?password=hunter2", "holds a password, which newsletter.yaml must not"),
    ("postgresql://news@db.example.com", "needs a host and a database"),
])
def test_a_url_with_a_password_or_without_a_database_is_refused_at_its_line(tmp_path: Path, url: str, message: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Invalid) as caught:
        settings_with(tmp_path, url)
    (problem,) = caught.value.problems
    assert str(problem).startswith("newsletter.yaml:2:14: subscribers: ") and message in str(problem)
    assert "hunter2" not in str(problem)


def test_a_postgresql_that_cannot_be_reached_is_one_sentence(ws) -> None:
    url = f"postgresql://news@127.0.0.1:{free_port()}/letters"
    ws.configure(extra=f"subscribers: {url}\n")
    ws.issue()
    for command in (("subscribers", "list"), ("stats",), ("archive",), ("status", "issues/001.yaml")):
        result = ws.run(*command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith(f"{url}: cannot connect to PostgreSQL ("), command
        assert "NEWSLETTER_PGPASSWORD" in result.stderr and "Traceback" not in result.stderr


def older_store(path: Path, version: int) -> None:
    """A SQLite store as a release whose schema was ``version`` left it: made by its
    migrations, with a subscriber and a failed delivery from the first schema's days."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(MIGRATIONS[0]["sqlite"])
    db.execute("INSERT INTO subscribers VALUES ('ada@example.com', 'Ada@example.com', 'Ada', '{\"lang\": \"en\"}',"
               " 'subscribed', '2021-10-10T09:00:00+00:00', '2021-10-10T09:00:00+00:00')")
    db.execute("INSERT INTO deliveries (issue, email_key, state, code, detail, updated_at) VALUES"
               " (1, 'ada@example.com', 'failed', 550, '550 5.1.1 no such user', '2021-10-10T10:00:00+00:00')")
    for migration in MIGRATIONS[1:version]:
        db.executescript(migration if isinstance(migration, str) else migration["sqlite"])
    db.execute(f"PRAGMA user_version = {version}")
    db.close()


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS) + 1))
def test_a_sqlite_store_of_every_older_schema_opens_and_migrates(tmp_path: Path, version: int) -> None:
    path = tmp_path / "subscribers.db"
    older_store(path, version)
    with Store(path) as store:
        assert store.db.version() == len(MIGRATIONS)
        ada = store.get("ADA@example.com")
        assert (ada.email, ada.fields, ada.status, ada.tags) == ("Ada@example.com", {"lang": "en"}, "subscribed", [])
        assert store.db.execute("SELECT state, kind FROM deliveries").fetchall() == [("failed", "address")]
        assert store.db.execute("SELECT issue, audience, segments FROM sends").fetchall() == [(1, 1, "[]")]
        assert store.db.execute("SELECT issue, how FROM published").fetchall() == [(1, "send")]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_stores_exist_once_made(store_target: Path | str) -> None:
    assert not store_exists(store_target)
    Store(store_target).close()
    assert store_exists(store_target)


def test_reads_stream_and_pages_follow_the_order_rows_came_in(store_target: Path | str) -> None:
    came = [f"reader{n:02d}@example.com" for n in (7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6)]
    with Store(store_target) as store:
        for address in came:
            store.add(address)
        pages = list(subscriber_pages(store.db, size=5))
        assert [len(page) for page in pages] == [5, 5, 2]
        assert [key for page in pages for key, _ in page] == came
        assert [s.email for s in store.all()] == came  # by sign-up time
        with store.db.transaction(snapshot=True):  # PostgreSQL: a server-side cursor, 5 rows a fetch
            assert [key for (key,) in stream(store.db, "SELECT email_key FROM subscribers ORDER BY email_key",
                                             size=5)] == sorted(came)


def test_the_journal_pages_in_its_own_order(store_target: Path | str) -> None:
    came = [f"reader{n}@example.com" for n in (4, 1, 6, 0, 3, 5, 2)]
    with Store(store_target) as store:
        for address in came:
            store.add(address)
        store.set_status("reader5@example.com", "unsubscribed", "test")
    journal = Journal(store_target, 1)
    try:
        journal.acquire()
        journal.begin()
        keys, after = [], 0
        while page := journal.pending(after, 2):
            assert len(page) <= 2
            keys += [task.key for task in page]
            after = page[-1].rowid
        assert keys == [a for a in came if a != "reader5@example.com"]  # the first run: those subscribed
    finally:
        journal.close()


def test_a_claim_that_ran_out_is_taken_over_and_the_stalled_worker_mails_nothing(store_target: Path | str,
                                                                                  tmp_path: Path) -> None:
    settings = Settings(file=tmp_path / "newsletter.yaml", name="X", subscribers=store_target)
    first, second = Outbox(settings, b"secret"), Outbox(settings, b"secret")
    with Store(store_target) as store:
        db = store.db
        db.executemany("INSERT INTO outbox (email, mailbox, client, created_at, state) VALUES (?, ?, '1', ?, 'queued')",
                       [(f"r{n}@example.com", f"r{n}@example.com", time.time()) for n in range(7)])
        now = time.time()
        mark, rows = first.claim(db, now)
        assert [row[1] for row in rows] == [f"r{n}@example.com" for n in range(5)]  # a batch, in order
        assert [row[1] for row in second.claim(db, now)[1]] == ["r5@example.com", "r6@example.com"]
        assert second.claim(db, now)[1] == []  # nothing else is due: the claimed rows are not
        later, taken = second.claim(db, now + first.lease + 1)  # the first worker stalled past its claim
        assert [row[0] for row in taken] == [row[0] for row in rows]
        assert not first.renew(db, rows[0][0], mark)  # so it mails none of them
        assert second.renew(db, rows[0][0], later)


def test_an_import_of_thousands_counts_each_row_as_one_at_a_time_would(store_target: Path | str) -> None:
    """PostgreSQL inserts a batch's new addresses many to a statement: the outcome, the
    consent record and the order must be what row by row gives (SQLite's way)."""
    with Store(store_target) as store:
        store.add("r0005@example.com", "Known")
        store.add("r0006@example.com")
        store.set_status("r0006@example.com", "unsubscribed", "test")
        rows = [(f"r{n:04d}@example.com", f"Reader {n}", {"n": str(n)}) for n in range(2500)]
        rows.append(("R0007@example.com", "", {"again": "yes"}))  # given twice: the second one updates
        counts = store.add_many(rows, "import")
        assert {k: n for k, n in counts.items() if n} == {"added": 2498, "updated": 2, "kept unsubscribed": 1}
        assert store.get("r0005@example.com")[1:3] == ("Reader 5", {"n": "5"})
        assert store.get("r0007@example.com")[1:3] == ("Reader 7", {"n": "7", "again": "yes"})
        assert [e[1:3] for e in store.events("r0006@example.com")] == [("subscribed", "cli"),
                                                                        ("unsubscribed", "test")]
        assert store.db.execute("SELECT count(*) FROM events").fetchone() == (3 + 2498,)
        assert [s.email for s in store.all()][2:5] == ["r0000@example.com", "r0001@example.com", "r0002@example.com"]
