"""VERP envelope senders on a real send, and `newsletter bounces` over DSNs written in the
formats of Postfix, Exim, Gmail and Outlook, real ones a Postfix made (tools/
make_postfix_dsn.py: an unknown local user, an unknown virtual one, a delay notice, a
success notice), an ARF complaint, a mailto unsubscribe and a bounce that names nobody
but its VERP address, from a Maildir and an mbox. IMAP: test_bounces_imap.py; a live
Postfix bounce: test_bounces_postfix.py."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

import pytest

from newsletter.mailing.bounces import verp_token
from newsletter.mailing.inbound import classify
from newsletter.mailing.tokens import list_id

from support import smtp_config

pytestmark = pytest.mark.backends

pytest.importorskip("flufl.bounce")

INBOUND = Path(__file__).resolve().parent.parent / "data" / "inbound"
PEOPLE = ("ada@example.com", "bob@example.org", "carol@example.com", "dave@example.net", "erin@example.com",
          "frank@example.com", "gina@example.com", "hank@example.com", "ivan@example.net", "judy@example.org",
          "kate@example.com")
REAL = {"postfix-real-hard.eml": ("hard", "ivan@example.net", "5.1.1"),  # name: kind, reader, status
        "postfix-real-virtual.eml": ("hard", "kate@example.com", "5.1.1"),
        "postfix-real-delayed.eml": ("soft", "judy@example.org", "4.4.1"),
        "postfix-real-delivered.eml": ("ignored", "hank@example.com", "")}
LIST = list_id("Test Weekly", "news@example.com")


@pytest.fixture
def readers(ws, smtp, secret):
    ws.configure(extra=smtp_config(smtp.port) + "bounces:\n  address: bounces@example.com\n  soft_limit: 2\n")
    ws.issue("033.yaml", number=33)
    for address in PEOPLE:
        assert ws.run("subscribers", "add", address).exit_code == 0
    return ws


def statuses(ws) -> dict[str, str]:
    store = ws.store()
    try:
        return {s.email: s.status for s in store.all()}
    finally:
        store.close()


def maildir(root: Path, *names: str, extra: dict[str, bytes] | None = None) -> Path:
    box = mailbox.Maildir(str(root / "Maildir"), create=True)
    for name in names:
        box.add((INBOUND / name).read_bytes())
    for raw in (extra or {}).values():
        box.add(raw)
    return root / "Maildir"


def test_each_message_goes_out_with_its_own_verp_return_path(readers, smtp) -> None:
    senders: dict[str, str] = {}
    handle_data = smtp.handle_DATA

    async def record(server, session, envelope):
        senders[envelope.rcpt_tos[0]] = envelope.mail_from
        return await handle_data(server, session, envelope)

    smtp.handle_DATA = record
    assert readers.run("send", "--yes", "issues/033.yaml").exit_code == 0
    assert set(senders) == set(PEOPLE)
    for address, sender in senders.items():
        assert re.fullmatch(r"bounces\+[a-z2-7]{16}@example\.com", sender)
        assert sender == f"bounces+{verp_token(b'test-secret-do-not-use', LIST, address)}@example.com"
    assert len(set(senders.values())) == len(PEOPLE)


@pytest.mark.parametrize(("name", "kind", "address"), [
    ("postfix-hard.eml", "hard", "ada@example.com"), ("exim-hard.eml", "hard", "bob@example.org"),
    ("gmail-soft.eml", "soft", "carol@example.com"), ("outlook-hard.eml", "hard", "dave@example.net"),
    ("arf-complaint.eml", "complaint", "erin@example.com"),
    ("mailto-unsubscribe.eml", "unsubscribe", "frank@example.com"),
    ("verp-only.eml", "hard", None), ("out-of-office.eml", "ignored", None)])
def test_each_fixture_is_understood(name, kind, address) -> None:
    found = classify((INBOUND / name).read_bytes(), "bounces@example.com", "unsubscribe@example.com")
    assert found.kind == kind
    assert found.addresses == ((address,) if address else ())
    if name == "verp-only.eml":
        assert found.verp == (verp_token(b"test-secret-do-not-use", LIST, "gina@example.com"),)
    if name in ("postfix-hard.eml", "gmail-soft.eml", "outlook-hard.eml", "arf-complaint.eml"):
        assert found.issue == 33


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_postfix_reports_name_the_reader_the_status_and_the_verp_address(name) -> None:
    kind, reader, status = REAL[name]
    found = classify((INBOUND / name).read_bytes(), "bounces@example.com", "unsubscribe@example.com")
    assert found.kind == kind
    assert found.addresses == ((reader,) if kind != "ignored" else ())  # a success notice names nobody to act on
    assert found.verp == (verp_token(b"test-secret-do-not-use", LIST, reader),)  # its Delivered-To: bounces+<token>@
    assert found.issue == 33
    assert found.detail == (status or "delivery report (delivered)")  # from the DSN's Status field

def test_bounces_from_a_maildir_change_each_subscriber_once(readers, tmp_path) -> None:
    folder = maildir(tmp_path, *sorted(p.name for p in INBOUND.glob("*.eml")))
    result = readers.run("bounces", "--maildir", str(folder))
    assert result.exit_code == 0, result.output
    assert "Read 12 message(s): 6 hard bounce(s), 2 soft, 1 complaint(s), 1 unsubscribe request(s), 2 other" \
        in result.output
    assert statuses(readers) == {"ada@example.com": "bounced", "bob@example.org": "bounced",
                                 "carol@example.com": "subscribed", "dave@example.net": "bounced",
                                 "erin@example.com": "unsubscribed", "frank@example.com": "unsubscribed",
                                 "gina@example.com": "bounced", "hank@example.com": "subscribed",
                                 "ivan@example.net": "bounced", "judy@example.org": "subscribed",
                                 "kate@example.com": "bounced"}
    assert "gina@example.com: bounced (5.2.1)" in result.output  # named by its VERP address alone
    assert "ivan@example.net: bounced (5.1.1)" in result.output  # a real Postfix DSN
    assert "carol@example.com: soft bounce 1 of 2" in result.output
    assert "judy@example.org: soft bounce 1 of 2" in result.output
    assert "hank@example.com" not in result.output  # delivered: a success notice changes nothing
    store = readers.store()
    try:
        assert store.events("erin@example.com")[-1][1:3] == ("unsubscribed", "complaint")
        assert store.events("frank@example.com")[-1][1:3] == ("unsubscribed", "mailto")
        assert store.events("ada@example.com")[-1][1:3] == ("bounced", "bounce")
    finally:
        store.close()

    again = readers.run("bounces", "--maildir", str(folder))  # rerun: nothing processed twice
    assert again.exit_code == 0 and "12 seen before" in again.output and "No subscriber changed." in again.output


def test_soft_bounces_count_across_issues_not_within_one(readers, tmp_path) -> None:
    gmail = (INBOUND / "gmail-soft.eml").read_bytes()
    same_issue = gmail.replace(b"GMR@mx.google.com", b"GMR2@mx.google.com")  # a second delay notice, issue 33
    other_issue = same_issue.replace(b"GMR2@", b"GMR3@").replace(b"<33.8e68", b"<34.8e68")
    folder = maildir(tmp_path, "gmail-soft.eml", extra={"a": same_issue})
    readers.run("bounces", "--maildir", str(folder))
    assert statuses(readers)["carol@example.com"] == "subscribed"
    folder = maildir(tmp_path, extra={"b": other_issue})
    result = readers.run("bounces", "--maildir", str(folder))
    assert "carol@example.com: bounced after 2 soft bounces" in result.output
    assert statuses(readers)["carol@example.com"] == "bounced"


def test_bounces_from_an_mbox(readers, tmp_path) -> None:
    box = mailbox.mbox(str(tmp_path / "bounces.mbox"))
    for name in ("postfix-hard.eml", "arf-complaint.eml"):
        box.add((INBOUND / name).read_bytes())
    box.flush()
    result = readers.run("bounces", "--mbox", str(tmp_path / "bounces.mbox"))
    assert result.exit_code == 0, result.output
    assert statuses(readers)["ada@example.com"] == "bounced"
    assert statuses(readers)["erin@example.com"] == "unsubscribed"


def test_a_message_without_message_id_is_the_same_message_whatever_its_line_ends(readers, tmp_path) -> None:
    delayed = (INBOUND / "postfix-real-delayed.eml").read_bytes()
    raw = b"".join(line for line in delayed.splitlines(keepends=True) if not line.startswith(b"Message-Id:"))
    lf, crlf = (classify(r, "bounces@example.com") for r in (raw, raw.replace(b"\n", b"\r\n")))
    assert lf.id == crlf.id and lf.id.startswith("sha256:")
    box = mailbox.mbox(str(tmp_path / "bounces.mbox"))  # read back with CRLF
    box.add(raw)
    box.flush()
    first = readers.run("bounces", "--mbox", str(tmp_path / "bounces.mbox"))
    assert "judy@example.org: soft bounce 1 of 2" in first.output
    again = readers.run("bounces", "--maildir", str(maildir(tmp_path, extra={"x": raw})))  # LF, as written
    assert "1 seen before" in again.output and "No subscriber changed." in again.output


def test_a_complaint_to_a_plain_address_with_the_reader_redacted_is_matched_by_verp(readers, tmp_path) -> None:
    # Feedback loops send reports to a fixed address and may redact the reader: the
    # original's Return-Path (and the report's Original-Mail-From) still hold the VERP token.
    raw = (INBOUND / "arf-complaint.eml").read_bytes()
    raw = raw.replace(b"Delivered-To: bounces+gf4xemecgiir3hwc@", b"Delivered-To: fbl@")
    raw = raw.replace(b"To: bounces+gf4xemecgiir3hwc@", b"To: fbl@").replace(b"Erin <erin@example.com>", b"redacted")
    assert b"erin@example.com" not in raw
    result = readers.run("bounces", "--maildir", str(maildir(tmp_path, extra={"x": raw})))
    assert result.exit_code == 0, result.output
    assert "erin@example.com: unsubscribed (feedback report (abuse)" in result.output
    assert statuses(readers)["erin@example.com"] == "unsubscribed"


def test_a_bounce_for_a_stranger_is_noted_not_acted_on(readers, tmp_path) -> None:
    raw = (INBOUND / "postfix-hard.eml").read_bytes().replace(b"ada@example.com", b"nobody@example.com")
    raw = raw.replace(b"mtbm3xwo7hhot2bi", b"aaaaaaaaaaaaaaaa")
    result = readers.run("bounces", "--maildir", str(maildir(tmp_path, extra={"x": raw})))
    assert result.exit_code == 0 and "names no subscriber: nobody@example.com" in result.output
    assert set(statuses(readers).values()) == {"subscribed"}


def test_exactly_one_source(readers) -> None:
    assert readers.run("bounces").exit_code == 2
