"""`subscribers list` then `subscribers import` keeps consent: statuses, sign-up dates and
fields come back as they were, in a new store or the same one; no import ever subscribes
an address that left."""

from __future__ import annotations

import csv
import io
import json

import pytest

from newsletter.mailing.db import connect

pytestmark = pytest.mark.backends


def write(ws, name: str, content: str) -> str:
    (ws.root / name).write_text(content, "utf-8")
    return name


def rows_of(target) -> list[tuple]:
    with connect(target) as db:
        return db.execute("SELECT email, name, fields, status, created_at, updated_at FROM subscribers"
                          " ORDER BY email_key").fetchall()


def use_store(ws, name: str):
    """Point newsletter.yaml at a new store (a file, or another database); its target."""
    target = ws.new_store(name)
    ws.configure(extra=f"subscribers: {target}\n")
    return target


def test_export_then_import_into_a_new_store_keeps_status_dates_and_fields(ws) -> None:
    ws.run("subscribers", "import", write(ws, "people.csv", "email,name,company,city\n"
                                          "ada@example.com,Ada,=Engines,-London\n"
                                          "bob@example.com,\"Bob, B\",'=quoted,\n"
                                          "carol@example.com,@carol,,Oslo\n"
                                          "dan@example.com,Dan,'plain,\n"))
    ws.run("subscribers", "remove", "bob@example.com")
    ws.store().set_status("carol@example.com", "bounced", source="test")
    before = rows_of(ws.settings.subscribers)
    exported = ws.run("subscribers", "list").stdout
    assert exported.splitlines()[0] == "email,name,status,created_at,updated_at,city,company"

    new = use_store(ws, "new.db")
    result = ws.run("subscribers", "import", write(ws, "export.csv", exported))
    assert result.exit_code == 0, result.output
    assert result.stdout == "export.csv: 2 added, 1 added as unsubscribed, 1 added as bounced\n"
    assert rows_of(new) == before
    assert ws.run("subscribers", "list").stdout == exported  # and round again, byte for byte

    # Importing the same export into the store it came from changes nothing.
    ws.configure()
    result = ws.run("subscribers", "import", "export.csv")
    assert result.stdout == "export.csv: 2 unchanged, 1 kept unsubscribed, 1 kept bounced\n"
    assert rows_of(ws.settings.subscribers) == before


def test_the_consent_record_says_what_the_import_did_and_keeps_the_original_date(ws) -> None:
    csv_text = ("email,status,created_at\nada@example.com,subscribed,2020-05-12 09:29:45.207979\n"
                "bob@example.com,unsubscribed,2019-01-01T00:00:00Z\n")
    ws.run("subscribers", "import", write(ws, "old.csv", csv_text))
    store = ws.store()
    ada, bob = store.get("ada@example.com"), store.get("bob@example.com")
    assert ada.created_at == "2020-05-12T09:29:45.207979+00:00" and ada.status == "subscribed"
    assert bob.created_at == "2019-01-01T00:00:00.000000+00:00" and bob.status == "unsubscribed"
    assert ada.updated_at > ada.created_at  # when it changed here: now
    ((at, change, source, detail),) = store.events("bob@example.com")
    assert (change, source, detail) == ("unsubscribed", "import old.csv", "created_at 2019-01-01T00:00:00.000000+00:00")
    assert at == bob.updated_at  # the record says when this store learnt it


def test_a_revue_export_keeps_its_sign_up_dates_and_columns(ws) -> None:
    revue = ("email,first_name,last_name,created_at\n"
             "ada@example.com,Ada,Lovelace,2021-03-04 10:11:12.123456\n"
             "bob@example.com,Bob,,2022-11-30 08:00:00 UTC\n")
    result = ws.run("subscribers", "import", write(ws, "revue.csv", revue))
    assert result.stdout == "revue.csv: 2 added\n"
    listed = json.loads(ws.run("subscribers", "list", "--format", "json").stdout)
    assert [(p["email"], p["created_at"], p["fields"]) for p in listed] == [
        ("ada@example.com", "2021-03-04T10:11:12.123456+00:00", {"first_name": "Ada", "last_name": "Lovelace"}),
        ("bob@example.com", "2022-11-30T08:00:00.000000+00:00", {"first_name": "Bob", "last_name": ""}),
    ]


def test_no_import_resubscribes_and_a_file_can_only_unsubscribe(ws) -> None:
    for address in ("ada@example.com", "bob@example.com", "carol@example.com"):
        ws.run("subscribers", "add", address)
    ws.run("subscribers", "remove", "bob@example.com")
    ws.store().set_status("carol@example.com", "bounced", source="test")
    csv_text = ("email,status\nada@example.com,Unsubscribed\nbob@example.com,subscribed\n"
                "carol@example.com,\ndan@example.com,bounced\neve@example.com,\n")
    result = ws.run("subscribers", "import", write(ws, "mixed.csv", csv_text))
    assert result.exit_code == 0, result.output
    assert result.stdout == ("mixed.csv: 1 added, 1 added as bounced, 1 now unsubscribed, 1 kept unsubscribed, "
                             "1 kept bounced\n")
    store = ws.store()
    assert {p.email: p.status for p in store.all()} == {
        "ada@example.com": "unsubscribed", "bob@example.com": "unsubscribed", "carol@example.com": "bounced",
        "dan@example.com": "bounced", "eve@example.com": "subscribed"}
    assert [c for _, c, s, _ in store.events("ada@example.com") if s == "import mixed.csv"] == ["unsubscribed"]
    assert store.count() == 1  # a send would mail eve alone


def test_reserved_columns_are_never_personal_fields(ws) -> None:
    csv_text = ("Email,NAME,Status,created_at,updated_at,tags,company\n"
                "ada@example.com,Ada,subscribed,2021-01-01,2021-06-01T12:00:00+02:00,\"vip,beta\",Engines\n")
    assert ws.run("subscribers", "import", write(ws, "r.csv", csv_text)).exit_code == 0
    ada = ws.store().get("ada@example.com")
    assert (ada.name, ada.fields, ada.status) == ("Ada", {"company": "Engines"}, "subscribed")
    assert (ada.created_at, ada.updated_at) == ("2021-01-01T00:00:00.000000+00:00", "2021-06-01T10:00:00.000000+00:00")


def test_list_never_prints_a_column_twice(ws) -> None:
    # A store filled by an older import, which kept `status` and `created_at` as fields.
    ws.store().add("ada@example.com", "Ada", {"status": "unsubscribed", "Created_At": "x",
                                                                  "company": "Engines"})
    header, row = list(csv.reader(io.StringIO(ws.run("subscribers", "list").stdout)))
    assert header == ["email", "name", "status", "created_at", "updated_at", "company"]
    assert row[2] == "subscribed" and row[5] == "Engines"
    (listed,) = json.loads(ws.run("subscribers", "list", "--format", "json").stdout)
    assert listed["fields"] == {"company": "Engines"}


def test_bad_status_and_dates_are_reported_by_line(ws) -> None:
    csv_text = ("email,status,created_at\nada@example.com,pending,\nbob@example.com,,last tuesday\n"
                "carol@example.com,bounced,2021-02-30\ndan@example.com,,\n")
    result = ws.run("subscribers", "import", write(ws, "bad.csv", csv_text))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "bad.csv:2: the status 'pending' is not one of subscribed, unsubscribed, bounced (row skipped)",
        "bad.csv:3: the created_at value 'last tuesday' is not a date and time (like 2021-10-10 or "
        "2021-10-10T09:30:00+00:00) (row skipped)",
        "bad.csv:4: the created_at value '2021-02-30' is not a date and time (like 2021-10-10 or "
        "2021-10-10T09:30:00+00:00) (row skipped)",
    ]
    assert [p.email for p in ws.store().all()] == ["dan@example.com"]


def test_cells_defused_for_spreadsheets_come_back_as_they_were(ws) -> None:
    from newsletter.mailing.importing import defuse, undefuse

    for value in ["=1+2", "+1", "-Oslo", "@carol", "'=x", "''-y", "'plain", "plain", "", "'", "=", "a=b"]:
        shown = defuse(value)
        assert undefuse(shown) == value, value
        assert shown[:1] not in ("=", "+", "-", "@"), value  # a spreadsheet never runs it
