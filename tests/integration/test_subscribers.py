"""`newsletter subscribers`: CSV import with every edge case, add, remove, list; on a
real SQLite file and on a real PostgreSQL database."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.backends

GOOD = "email,name\nada@example.com,Ada\n"


def write(ws, name: str, content: str | bytes):
    path = ws.root / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return name


def emails(ws) -> list[str]:
    return [s.email for s in ws.store().all()]


def test_import_accepts_a_bom_quotes_and_extra_columns(ws) -> None:
    csv = '\ufeffEmail,Name,company\nada@example.com,"Lovelace, Ada","Engines ""Inc"""\nzoe@example.com,Zoë,\n'
    result = ws.run("subscribers", "import", write(ws, "a.csv", csv))
    assert result.exit_code == 0, result.output
    assert result.stdout == "a.csv: 2 added\n"
    ada = ws.store().get("ADA@example.com")
    assert (ada.name, ada.fields, ada.status) == ("Lovelace, Ada", {"company": 'Engines "Inc"'}, "subscribed")


def test_bad_rows_are_reported_by_line_and_skipped(ws) -> None:
    csv = ("email,name\n"
           "ada@example.com,Ada\n"
           "not-an-address,Bob\n"
           "ADA@example.com,Ada again\n"
           'eve@example.com,"Eve\nBcc: all@example.com"\n'
           "mallory@example.com,Mal\x07lory\n"
           "carol@example.com,Carol,extra\n"
           "\n"
           "dan@example.com,Dan\n")
    result = ws.run("subscribers", "import", write(ws, "b.csv", csv))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("b.csv:3: 'not-an-address' is not a valid email address")
    assert lines[1] == "b.csv:4: ADA@example.com is already on line 2 (row skipped)"
    assert lines[2] == "b.csv:5: the name holds a line break or control character (row skipped)"
    assert lines[3] == "b.csv:7: the name holds a line break or control character (row skipped)"
    assert lines[4] == "b.csv:8: 3 values for 2 columns (row skipped)"
    assert result.stdout == "b.csv: 2 added; 5 row(s) skipped\n"
    assert emails(ws) == ["ada@example.com", "dan@example.com"]


def test_strict_rejects_the_whole_file_and_changes_nothing(ws) -> None:
    ws.run("subscribers", "import", write(ws, "good.csv", GOOD))
    before = ws.store().get("ada@example.com")
    csv = "email,name\nada@example.com,Renamed\nnew@example.com,New\nbroken,Row\n"
    result = ws.run("subscribers", "import", write(ws, "c.csv", csv), "--strict")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "c.csv: 1 bad row(s); nothing imported (--strict)"
    assert emails(ws) == ["ada@example.com"]
    assert ws.store().get("ada@example.com") == before


def test_a_file_without_an_email_column_or_not_utf8_is_refused(ws) -> None:
    result = ws.run("subscribers", "import", write(ws, "d.csv", "mail,name\na@example.com,A\n"))
    assert result.exit_code == 1
    assert result.stderr == "d.csv:1: the header row has no 'email' column (it has: mail, name)\n"
    result = ws.run("subscribers", "import", write(ws, "e.csv", "email,name\nz@example.com,Zo\xeb\n".encode("latin-1")))
    assert result.exit_code == 1
    assert result.stderr.startswith("e.csv: is not UTF-8 text")
    result = ws.run("subscribers", "import", write(ws, "f.csv", ""))
    assert result.exit_code == 1 and "empty" in result.stderr
    assert emails(ws) == []


def test_reimport_changes_nothing_and_keeps_unsubscribed(ws) -> None:
    name = write(ws, "g.csv", "email,name\nada@example.com,Ada\nbob@example.com,Bob\n")
    ws.run("subscribers", "import", name)
    ws.run("subscribers", "remove", "bob@example.com")
    result = ws.run("subscribers", "import", name)
    assert result.stdout == "g.csv: 1 unchanged, 1 kept unsubscribed\n"
    store = ws.store()
    assert store.get("bob@example.com").status == "unsubscribed"
    changes = [(change, source) for _, change, source, _ in store.events("bob@example.com")]
    assert changes == [("subscribed", "import g.csv"), ("unsubscribed", "cli remove")]


def test_add_remove_and_list(ws) -> None:
    assert ws.run("subscribers", "add", "Ada@Example.COM", "--name", "Ada").stdout == "Ada@example.com: added\n"
    assert ws.run("subscribers", "add", "x@", "--name", "X").exit_code == 1
    assert ws.run("subscribers", "add", "y@example.com", "--name", "Y\r\nBcc: z").exit_code == 1
    assert ws.run("subscribers", "remove", "nobody@example.com").exit_code == 1
    ws.run("subscribers", "add", "eve@example.com", "--name", "=HYPERLINK(\"http://x\")")
    ws.run("subscribers", "remove", "ADA@example.com")
    listed = json.loads(ws.run("subscribers", "list", "--format", "json").stdout)
    assert [(p["email"], p["status"]) for p in listed] == [("Ada@example.com", "unsubscribed"),
                                                           ("eve@example.com", "subscribed")]
    csv = ws.run("subscribers", "list").stdout.splitlines()
    assert csv[0] == "email,name,status,created_at,updated_at"
    assert csv[2].startswith('eve@example.com,"\'=HYPERLINK(""http://x"")",subscribed,')


@pytest.mark.sqlite_only
def test_the_store_is_sqlite_in_wal_mode(ws) -> None:
    import sqlite3

    ws.run("subscribers", "add", "ada@example.com")
    db = sqlite3.connect(ws.settings.subscribers)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT email, status FROM subscribers").fetchall() == [("ada@example.com", "subscribed")]


def reference(address: str) -> str:
    """check_address as it was before its fast path: email_validator for every address."""
    from email_validator import EmailNotValidError, validate_email

    from newsletter.mailing.importing import _CONTROL

    if _CONTROL.search(address):
        return "control"
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as e:
        return f"error: {e}"


TRICKY = [
    "ada@example.com", "Ada.Lovelace@Example.COM", "  ada@example.com ", "a@b.co", "a@b.c", "a@b.c1", "a@b.1c",
    "a@b.123", "a@b", "a@localhost", "a@.example.com", "a@example.com.", "a@example..com", "a..b@example.com",
    ".a@example.com", "a.@example.com", "a@-example.com", "a@example-.com", "a@ex-ample.com", "a@ex--ample.com",
    "a@xn--bcher-kva.ch", "a@XN--BCHER-KVA.CH", "a@xn--example.com", "a@ab--cd.com", "INFO@example.com",
    "Abuse@example.com", "postmaster@example.com", "information@example.com", "a@example.local", "a@x.LOCAL",
    "a@example.arpa", "a@home.arpa", "a@example.invalid", "a@example.test", "a@x.onion", "a@localhost.localhost",
    "a@example.com@example.com", '"a b"@example.com', '"ab"@example.com', "a b@example.com", "a@exa mple.com",
    "a@[127.0.0.1]", "Ada <ada@example.com>", "a@example.com>", "<a@example.com>", "a+tag@example.com",
    "!#$%&'*+/=?^_`{|}~-@example.com", "a@example_com.com", "a@exam_ple.com", "a@1.2.3.4", "a@example.c-m",
    "a@example.co-m", "a@e.x.a.m.p.l.e.com", "ünal@example.com", "a@bücher.ch", "a@example.com\u200b",
    "a\u0301@example.com", "a@example\uff0ecom", "a@EXAMPLE.COM", "a@Example.Com", "@example.com", "a@", "",
    "a" * 64 + "@example.com", "a" * 65 + "@example.com", "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com",
    "a" * 243 + "@example.com", "a" * 242 + "@example.com", "a@" + ".".join(["b" * 60] * 4) + ".com",
    "a@" + ".".join(["b" * 61] * 4) + ".co", "a@example." + "b" * 63, "a@example." + "b" * 64,
    "a@k\u212a.com", "a@\u0130.com", "a\x00@example.com",
]


def corpus(count: int, seed: int) -> list[str]:
    """Random addresses near the edges of the rules: mostly plain characters, with dots,
    hyphens, reserved names, odd letters and long labels mixed in."""
    import random

    rng = random.Random(seed)
    odd = [".", "..", "-", "--", "xn--", "_", "+", "=", "'", "{", "@", " ", '"', "info", "ABUSE", "local", "arpa",
           "test", "1", "\u00fc", "\u212a", "\u0130", "\u3002"]

    def word(letters: str, most: int) -> str:
        text = "".join(rng.choice(letters) for _ in range(rng.randint(1, most)))
        while rng.random() < 0.3:
            spot = rng.randint(0, len(text))
            text = text[:spot] + rng.choice(odd) + text[spot:]
        return text

    addresses = []
    for _ in range(count):
        local = ".".join(word("abcXYZ019!#$%&'*+/=?^_`{|}~-", 6) for _ in range(rng.randint(1, 3)))
        labels = [word("abcdEFxyz0189-", 8) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.05:
            labels.insert(0, "b" * rng.choice([61, 62, 63, 64]))
        labels.append(rng.choice(["com", "ORG", "io", "c", "co1", "1co", "x-y", word("abZ0-", 4), "b" * 63, "b" * 64]))
        addresses.append(local + "@" + ".".join(labels))
    return addresses


def test_the_fast_path_for_plain_addresses_gives_what_email_validator_gives() -> None:
    from newsletter.errors import NewsletterError
    from newsletter.mailing.importing import _plain, check_address

    fast = 0
    for address in TRICKY + corpus(20_000, seed=33):
        expected = reference(address)
        try:
            got = check_address(address)
        except NewsletterError as e:
            got = "control" if "control character" in e.message else f"error: {e.message}"
        if expected.startswith("error: "):  # the message keeps email_validator's reason
            assert got.startswith("error: ") and got.endswith(f"({expected[7:]})"), address
        else:
            assert got == expected, address
        fast += _plain(address.strip()) is not None
    assert fast > 2_000  # the fast path is taken, not only declined
    assert _plain("INFO@example.com") is None and _plain("a@xn--bcher-kva.ch") is None


def snapshot(target) -> tuple[list, list]:
    from newsletter.mailing.db import connect
    from newsletter.mailing.dialects import SQLITE

    with connect(target) as db:
        if db.dialect == SQLITE:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return (db.execute("SELECT * FROM subscribers ORDER BY email_key").fetchall(),
                db.execute("SELECT * FROM events ORDER BY id").fetchall())


def full_disk(monkeypatch, pages: int = 2) -> None:
    """Every store opened from now on may grow by ``pages`` pages only: past them SQLite
    itself fails with SQLITE_FULL, "database or disk is full", as on a full disk."""
    from newsletter.mailing import store

    real = store.connect

    def connect(path):
        db = real(path)
        size = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {size + pages}")
        return db

    monkeypatch.setattr(store, "connect", connect)


@pytest.mark.sqlite_only
def test_a_full_disk_during_an_import_changes_nothing_and_says_so(ws, monkeypatch) -> None:
    ws.run("subscribers", "import", write(ws, "first.csv", "email,name\nada@example.com,Ada\nbob@example.com,Bob\n"))
    ws.run("subscribers", "remove", "bob@example.com")
    before = snapshot(ws.settings.subscribers)
    full_disk(monkeypatch)
    rows = "".join(f"reader{n}@example.com,Reader {n},Company {n}\n" for n in range(3000))
    big = write(ws, "big.csv", "email,name,company\nada@example.com,Ada L.,Engines\n" + rows)
    result = ws.run("subscribers", "import", big)  # catch_exceptions=False: a traceback would fail here
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (f"{ws.settings.subscribers}: the disk is full; nothing was imported (free some space "
                             "and run the same command again; the subscriber list is intact)\n")
    assert "not a subscriber store" not in result.stderr
    assert snapshot(ws.settings.subscribers) == before


@pytest.mark.sqlite_only
def test_a_full_disk_during_add_changes_nothing_and_says_so(ws, monkeypatch) -> None:
    ws.run("subscribers", "add", "ada@example.com", "--name", "Ada")
    before = snapshot(ws.settings.subscribers)
    full_disk(monkeypatch, pages=0)
    result = ws.run("subscribers", "add", "bob@example.com", "--name", "B" * 20_000)  # overflow pages
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{ws.settings.subscribers}: the disk is full; nothing was changed (")
    assert snapshot(ws.settings.subscribers) == before


def test_list_json_and_csv_parse_back_to_the_stored_rows(ws) -> None:
    import csv
    import io

    assert json.loads(ws.run("subscribers", "list", "--format", "json").stdout) == []
    assert ws.run("subscribers", "list").stdout == "email,name,status,created_at,updated_at\n"
    ws.run("subscribers", "import", write(ws, "a.csv", "email,name,company\nada@example.com,Ada,=SUM(A1)\n"
                                          'bob@example.com,"Bob, ""B""",Ünal & Co\ncarol@example.com,@carol,\n'))
    ws.run("subscribers", "import", write(ws, "b.csv", "email,city,zone\ndan@example.com,-Oslo,+1\n"
                                          "ada@example.com,London,\n"))
    ws.run("subscribers", "remove", "bob@example.com")
    stored = [s._asdict() for s in ws.store().all()]
    assert [s["email"] for s in stored] == ["ada@example.com", "bob@example.com", "carol@example.com",
                                            "dan@example.com"]

    assert json.loads(ws.run("subscribers", "list", "--format", "json").stdout) == stored

    rows = list(csv.reader(io.StringIO(ws.run("subscribers", "list").stdout, newline="")))
    assert rows[0] == ["email", "name", "status", "created_at", "updated_at", "city", "company", "zone"]
    columns = rows[0][5:]
    undone = [[v[1:] if v[:2] in ("'=", "'+", "'-", "'@") else v for v in row] for row in rows[1:]]
    assert undone == [[s["email"], s["name"], s["status"], s["created_at"], s["updated_at"],
                       *(s["fields"].get(c, "") for c in columns)] for s in stored]
    assert rows[3][1] == "'@carol" and rows[1][6] == "'=SUM(A1)" and rows[4][5] == "'-Oslo"


def test_a_full_temporary_folder_stops_the_import_cleanly(ws, monkeypatch) -> None:
    from newsletter.mailing import importing

    class TinySeen(importing._Seen):  # the index of addresses read may not grow past 3 pages
        def __init__(self):
            super().__init__()
            self.db.execute("PRAGMA max_page_count = 3")

    ws.run("subscribers", "add", "ada@example.com")
    before = snapshot(ws.settings.subscribers)
    monkeypatch.setattr(importing, "_Seen", TinySeen)
    rows = "".join(f"reader{n}@example.com\n" for n in range(2000))
    result = ws.run("subscribers", "import", write(ws, "big.csv", "email\n" + rows))
    assert result.exit_code == 1
    assert result.stderr == ("the temporary folder is full; nothing was imported "
                             "(free some space there, or set TMPDIR to a folder that has some)\n")
    assert snapshot(ws.settings.subscribers) == before
