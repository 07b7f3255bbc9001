"""`newsletter subscribers`: CSV import with every edge case, add, remove, list; on a
real SQLite file."""

from __future__ import annotations

import json

from newsletter.mailing.store import Store

GOOD = "email,name\nada@example.com,Ada\n"


def write(ws, name: str, content: str | bytes):
    path = ws.root / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return name


def emails(ws) -> list[str]:
    return [s.email for s in Store(ws.settings.subscribers).all()]


def test_import_accepts_a_bom_quotes_and_extra_columns(ws) -> None:
    csv = '\ufeffEmail,Name,company\nada@example.com,"Lovelace, Ada","Engines ""Inc"""\nzoe@example.com,Zoë,\n'
    result = ws.run("subscribers", "import", write(ws, "a.csv", csv))
    assert result.exit_code == 0, result.output
    assert result.stdout == "a.csv: 2 added\n"
    ada = Store(ws.settings.subscribers).get("ADA@example.com")
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
    before = Store(ws.settings.subscribers).get("ada@example.com")
    csv = "email,name\nada@example.com,Renamed\nnew@example.com,New\nbroken,Row\n"
    result = ws.run("subscribers", "import", write(ws, "c.csv", csv), "--strict")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "c.csv: 1 bad row(s); nothing imported (--strict)"
    assert emails(ws) == ["ada@example.com"]
    assert Store(ws.settings.subscribers).get("ada@example.com") == before


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
    store = Store(ws.settings.subscribers)
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


def test_the_store_is_sqlite_in_wal_mode(ws) -> None:
    import sqlite3

    ws.run("subscribers", "add", "ada@example.com")
    db = sqlite3.connect(ws.settings.subscribers)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT email, status FROM subscribers").fetchall() == [("ada@example.com", "subscribed")]
