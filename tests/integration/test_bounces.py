"""VERP envelope senders on a real send, and `newsletter bounces` over hand-written
DSNs (Postfix, Exim, Gmail, Outlook), an ARF complaint, a mailto unsubscribe and a
bounce that names nobody but its VERP address, from a Maildir and an mbox."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

import pytest

from newsletter.mailing.bounces import verp_token
from newsletter.mailing.inbound import classify
from newsletter.mailing.store import Store
from newsletter.mailing.tokens import list_id

from support import smtp_config

pytest.importorskip("flufl.bounce")

INBOUND = Path(__file__).resolve().parent.parent / "data" / "inbound"
PEOPLE = ("ada@example.com", "bob@example.org", "carol@example.com", "dave@example.net", "erin@example.com",
          "frank@example.com", "gina@example.com", "hank@example.com")
LIST = list_id("Test Weekly", "news@example.com")


@pytest.fixture
def readers(ws, smtp, secret):
    ws.configure(extra=smtp_config(smtp.port) + "bounces:\n  address: bounces@example.com\n  soft_limit: 2\n")
    ws.issue("033.yaml", number=33)
    for address in PEOPLE:
        assert ws.run("subscribers", "add", address).exit_code == 0
    return ws


def statuses(ws) -> dict[str, str]:
    store = Store(ws.settings.subscribers)
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


def test_bounces_from_a_maildir_change_each_subscriber_once(readers, tmp_path) -> None:
    folder = maildir(tmp_path, *sorted(p.name for p in INBOUND.glob("*.eml")))
    result = readers.run("bounces", "--maildir", str(folder))
    assert result.exit_code == 0, result.output
    assert "Read 8 message(s): 4 hard bounce(s), 1 soft, 1 complaint(s), 1 unsubscribe request(s), 1 other" \
        in result.output
    assert statuses(readers) == {"ada@example.com": "bounced", "bob@example.org": "bounced",
                                 "carol@example.com": "subscribed", "dave@example.net": "bounced",
                                 "erin@example.com": "unsubscribed", "frank@example.com": "unsubscribed",
                                 "gina@example.com": "bounced", "hank@example.com": "subscribed"}
    assert "gina@example.com: bounced (5.2.1)" in result.output  # named by its VERP address alone
    assert "carol@example.com: soft bounce 1 of 2" in result.output
    store = Store(readers.settings.subscribers)
    try:
        assert store.events("erin@example.com")[-1][1:3] == ("unsubscribed", "complaint")
        assert store.events("frank@example.com")[-1][1:3] == ("unsubscribed", "mailto")
        assert store.events("ada@example.com")[-1][1:3] == ("bounced", "bounce")
    finally:
        store.close()

    again = readers.run("bounces", "--maildir", str(folder))  # rerun: nothing processed twice
    assert again.exit_code == 0 and "8 seen before" in again.output and "No subscriber changed." in again.output


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


def test_a_bounce_for_a_stranger_is_noted_not_acted_on(readers, tmp_path) -> None:
    raw = (INBOUND / "postfix-hard.eml").read_bytes().replace(b"ada@example.com", b"nobody@example.com")
    raw = raw.replace(b"mtbm3xwo7hhot2bi", b"aaaaaaaaaaaaaaaa")
    result = readers.run("bounces", "--maildir", str(maildir(tmp_path, extra={"x": raw})))
    assert result.exit_code == 0 and "names no subscriber: nobody@example.com" in result.output
    assert set(statuses(readers).values()) == {"subscribed"}


def test_exactly_one_source(readers) -> None:
    assert readers.run("bounces").exit_code == 2
