"""Moving in from another service: `subscribers import --from SERVICE` on realistic exports
(tests/data/exports/, fictional people) keeps names, sign-up dates, tags and the consent
record, and nobody who left or bounced there is ever mailed here."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from support import smtp_config

pytestmark = pytest.mark.backends

EXPORTS = Path(__file__).resolve().parent.parent / "data" / "exports"
MAILCHIMP = [EXPORTS / "mailchimp" / f"{kind}_members_export_4f1c2a9b3e.csv"
             for kind in ("subscribed", "unsubscribed", "cleaned")]


def people(ws) -> dict[str, dict]:
    return {p["email"]: p for p in json.loads(ws.run("subscribers", "list", "--format", "json").stdout)}


def test_a_revue_export_keeps_every_name_and_sign_up_date(ws) -> None:
    for option in ((), ("--from", "revue")):  # a plain import reads it the same way
        ws.configure(extra=f"subscribers: {ws.new_store(f'revue{len(option)}.db')}\n")
        result = ws.run("subscribers", "import", str(EXPORTS / "revue" / "subscribers.csv"), *option)
        assert result.exit_code == 0, result.output
        found = people(ws)
        assert {e: (p["name"], p["created_at"]) for e, p in found.items()} == {
            "ada.okafor@example.com": ("Ada Okafor", "2021-03-04T10:11:12.123456+00:00"),
            "bruno.salas@example.net": ("Bruno", "2022-11-30T08:00:00.000000+00:00"),
            "chen.yu@example.org": ("", "2020-07-15T21:45:03.500000+00:00")}
        assert found["ada.okafor@example.com"]["fields"] == {"first_name": "Ada", "last_name": "Okafor"}
        header = ws.run("subscribers", "list").stdout.splitlines()[0]
        assert header == "email,name,status,created_at,updated_at,first_name,last_name"  # created_at once


def test_mailchimp_exports_of_each_status(ws) -> None:
    for path in MAILCHIMP:
        assert ws.run("subscribers", "import", str(path), "--from", "mailchimp").exit_code == 0
    found = people(ws)
    assert {e: p["status"] for e, p in found.items()} == {
        "victor.gone@example.net": "bounced", "uma.patel@example.com": "unsubscribed",
        "sofia.marin@example.com": "subscribed", "li.wei@example.cn": "subscribed",
        "tomas.berg@example.se": "subscribed"}
    sofia, li = found["sofia.marin@example.com"], found["li.wei@example.cn"]
    assert (sofia["name"], sofia["tags"], sofia["created_at"], sofia["updated_at"]) == (
        "Sofia Marín", ["ML", "Papers"], "2019-02-11T08:14:55.000000+00:00", "2023-05-02T10:00:00.000000+00:00")
    assert sofia["fields"] == {"first_name": "Sofia", "last_name": "Marín", "phone_number": "+34 600 000 001",
                               "language": "es", "member_rating": "4", "timezone": "Europe/Madrid", "cc": "ES",
                               "region": "MD", "notes": ""}
    assert (li["name"], li["created_at"]) == ("李伟", "2020-09-01T02:03:04.000000+00:00")  # no OPTIN_TIME: CONFIRM_TIME
    # The consent record keeps what Mailchimp knew of the sign-up; IPs and ids are not fields.
    store = ws.store()
    ((_, change, source, detail),) = store.events("sofia.marin@example.com")
    assert (change, source) == ("subscribed", "import subscribed_members_export_4f1c2a9b3e.csv from mailchimp")
    assert detail == ("created_at 2019-02-11T08:14:55.000000+00:00; mailchimp: opted in 2019-02-11 08:14:55 from"
                      " 198.51.100.23, confirmed 2019-02-11 08:16:02 from 198.51.100.23")
    ((_, change, _, detail),) = store.events("uma.patel@example.com")
    assert change == "unsubscribed"
    assert detail.endswith("unsubscribed 2022-03-03 03:03:03 because I no longer want to receive these emails")


def test_a_mailchimp_export_without_from_says_what_it_looks_like(ws) -> None:
    result = ws.run("subscribers", "import", str(MAILCHIMP[0]))
    assert result.exit_code == 1
    assert result.stderr.endswith("; it looks like a Mailchimp export: add --from mailchimp\n")
    assert result.stderr.startswith(f"{MAILCHIMP[0]}:1: the header row has no 'email' column (it has: Email Address,")


def test_an_unsubscribed_export_suppresses_whatever_its_name(ws) -> None:
    renamed = ws.root / "audience-2.csv"  # the UNSUB_TIME column says it, not only the file's name
    shutil.copy(MAILCHIMP[1], renamed)
    ws.run("subscribers", "add", "uma.patel@example.com")
    assert ws.run("subscribers", "import", str(renamed), "--from", "mailchimp").stdout == (
        f"{renamed}: 1 now unsubscribed\n")
    assert people(ws)["uma.patel@example.com"]["status"] == "unsubscribed"


def test_substack_turned_off_mail_and_deletion_requests(ws) -> None:
    path = EXPORTS / "substack" / "email_list.gradient-notes.csv"
    result = ws.run("subscribers", "import", str(path), "--from", "substack")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: 2 added, 1 added as unsubscribed; 1 deletion request(s) left out\n"
    found = people(ws)
    assert {e: p["status"] for e, p in found.items()} == {
        "ines.duarte@example.com": "subscribed", "kofi.mensah@example.net": "subscribed",
        "lena.vogt@example.org": "unsubscribed"}
    assert found["kofi.mensah@example.net"]["fields"] == {
        "active_subscription": "true", "expiry": "2026-12-01T00:00:00.000Z", "plan": "yearly",
        "first_payment_at": "2023-02-01T10:00:00.000Z"}
    assert found["lena.vogt@example.org"]["created_at"] == "2023-03-09T18:22:41.337000+00:00"


def test_buttondown_types_metadata_tags_and_source(ws) -> None:
    result = ws.run("subscribers", "import", str(EXPORTS / "buttondown" / "subscribers.csv"), "--from", "buttondown")
    assert result.exit_code == 0, result.output
    found = people(ws)
    assert {e: p["status"] for e, p in found.items()} == {
        "rui.costa@example.com": "bounced", "mira.haddad@example.com": "subscribed",
        "omar.farouk@example.net": "subscribed", "pia.lind@example.org": "unsubscribed"}  # never confirmed
    mira = found["mira.haddad@example.com"]
    assert (mira["name"], mira["tags"], mira["fields"]) == (
        "Mira", ["ml", "papers"], {"first_name": "Mira", "lang": "fr", "notes": "met at PyCon"})
    assert found["omar.farouk@example.net"]["tags"] == ["ml"]
    ((_, _, source, detail),) = ws.store().events("mira.haddad@example.com")
    assert source == "import subscribers.csv from buttondown"
    assert detail.endswith("buttondown: source organic, referrer https://blog.example.com/post, utm_source"
                           " newsletter, utm_medium email, utm_campaign launch")


def test_listmonk_attributes_blocklist_and_go_times(ws) -> None:
    result = ws.run("subscribers", "import", str(EXPORTS / "listmonk" / "subscribers.csv"), "--from", "listmonk")
    assert result.exit_code == 0, result.output
    found = people(ws)
    assert {e: p["status"] for e, p in found.items()} == {
        "wanjiru.kamau@example.com": "subscribed", "yusuf.demir@example.org": "unsubscribed",
        "zara.ahmed@example.net": "unsubscribed"}
    wanjiru, yusuf = found["wanjiru.kamau@example.com"], found["yusuf.demir@example.org"]
    assert wanjiru["fields"] == {"city": "Nairobi", "lang": "sw", "projects": "3"}
    assert (wanjiru["created_at"], wanjiru["updated_at"]) == (
        "2023-03-15T10:20:30.123456+00:00", "2024-01-02T11:00:00.000000+00:00")
    assert yusuf["created_at"] == "2022-08-01T11:15:00.500000+00:00"  # +0530 IST, in UTC


def test_map_names_reads_and_leaves_out_columns(ws) -> None:
    (ws.root / "crm.csv").write_text(
        "Contact,Full Name,Organisation,Joined,Secret Score,Segments,Status\n"
        "ada@example.com,Ada Lovelace,Engines,2020-01-02,99,\"ml,vip\",active\n", "utf-8")
    result = ws.run("subscribers", "import", "crm.csv", "--map", "Contact=email", "--map", "Full Name=name",
                    "--map", "organisation=company", "--map", "Joined=created_at", "--map", "Secret Score=-",
                    "--map", "Segments=tags", "--map", "Status=-")
    assert (result.exit_code, result.stdout) == (0, "crm.csv: 1 added\n")
    ada = people(ws)["ada@example.com"]
    assert (ada["name"], ada["fields"], ada["tags"], ada["created_at"]) == (
        "Ada Lovelace", {"company": "Engines"}, ["ml", "vip"], "2020-01-02T00:00:00.000000+00:00")


def test_a_map_that_cannot_be_is_refused_before_anything_changes(ws) -> None:
    (ws.root / "a.csv").write_text("email,Team Name,greeting\nada@example.com,Core,Hello\n", "utf-8")
    cases = [
        (("--map", "Nope=company"), "a.csv:1: --map Nope=company: the header row has no column 'Nope' (it has:"
                                    " email, Team Name, greeting)"),
        (("--map", "Team Name=unsubscribe_url"), "a.csv:1: --map Team Name=unsubscribe_url: 'unsubscribe_url' is"
                                                 " reserved and never a personal field"),
        (("--map", "Team Name=team name"), "a.csv:1: --map Team Name=team name: a field name is letters, digits"
                                           " and _, like 'team_name'; or one of email, name, first_name, last_name,"
                                           " status, created_at, updated_at, tags, metadata, or - to leave the"
                                           " column out"),
        ((), "a.csv:1: column names must be letters, digits and _ (usable in layouts), not 'Team Name'"
             " (--map 'Team Name=FIELD' names it, or --map 'Team Name=-' leaves it out)"),
    ]
    for option, error in cases:
        result = ws.run("subscribers", "import", "a.csv", *option)
        assert (result.exit_code, result.stderr) == (1, error + "\n"), option
    assert ws.run("subscribers", "import", "a.csv", "--map", "bad").exit_code == 2  # not COLUMN=FIELD
    assert people(ws) == {}
    assert ws.run("subscribers", "import", "a.csv", "--map", "Team Name=team").exit_code == 0
    # Reserved names are never personal fields: `greeting` is what layouts already call the greeting.
    assert people(ws)["ada@example.com"]["fields"] == {"team": "Core"}


def test_nobody_who_left_anywhere_is_mailed(ws, smtp, secret) -> None:
    ws.configure(extra=smtp_config(smtp.port))
    ws.issue("033.yaml", number=33)
    imports = [(p, "mailchimp") for p in MAILCHIMP] + [
        (EXPORTS / "substack" / "email_list.gradient-notes.csv", "substack"),
        (EXPORTS / "buttondown" / "subscribers.csv", "buttondown"),
        (EXPORTS / "listmonk" / "subscribers.csv", "listmonk")]
    for path, service in imports:
        assert ws.run("subscribers", "import", str(path), "--from", service).exit_code == 0
    result = ws.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    assert sorted(rcpt for rcpt, _ in smtp.messages) == [
        "ines.duarte@example.com", "kofi.mensah@example.net", "li.wei@example.cn", "mira.haddad@example.com",
        "omar.farouk@example.net", "sofia.marin@example.com", "tomas.berg@example.se", "wanjiru.kamau@example.com"]
    names = {rcpt: m["To"].addresses[0].display_name for rcpt, m in smtp.received()}
    assert (names["li.wei@example.cn"], names["sofia.marin@example.com"]) == ("李伟", "Sofia Marín")
    # Importing the same exports again subscribes no one who left.
    for path, service in imports:
        ws.run("subscribers", "import", str(path), "--from", service)
    rows = list(csv.DictReader(io.StringIO(ws.run("subscribers", "list", "--where", "subscribed").stdout)))
    assert len(rows) == 8
