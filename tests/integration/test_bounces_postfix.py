"""A live Postfix bounce: `newsletter send` through a private Postfix (tools/
make_postfix_dsn.py: its own main.cf, master.cf and queue in a temp dir, a free
127.0.0.1 port, nothing sent off the machine), which bounces a reader who is an unknown
local user, sends a delay notice for one whose relay is down and delivers to one who
exists. The reports come back to each reader's VERP address, into a Maildir, and
`newsletter bounces` reads them. Skipped, saying why, where Postfix cannot start (it
needs root and Debian's postfix package, which `make test` installs)."""

from __future__ import annotations

import email
import importlib.util
from pathlib import Path

import pytest

from newsletter.mailing.bounces import verp_token
from newsletter.mailing.store import Store
from newsletter.mailing.tokens import list_id

from support import smtp_config

pytest.importorskip("flufl.bounce")

_spec = importlib.util.spec_from_file_location(
    "make_postfix_dsn", Path(__file__).resolve().parents[2] / "tools" / "make_postfix_dsn.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)
WHY_NOT = tool.cannot_run()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no private Postfix here: {WHY_NOT}")

LIST = list_id("Test Weekly", "news@example.com")
GONE, DELAYED, FINE = "ivan@example.net", "judy@example.org", "hank@example.com"


def test_a_real_postfix_bounce_marks_the_reader_bounced(ws, secret) -> None:
    with tool.Postfix() as postfix:
        ws.configure(extra=smtp_config(postfix.port) + "bounces:\n  address: bounces@example.com\n")
        ws.issue("033.yaml", number=33)
        for address in (GONE, DELAYED, FINE):
            assert ws.run("subscribers", "add", address).exit_code == 0
        sent = ws.run("send", "--yes", "issues/033.yaml")
        assert sent.exit_code == 0, sent.output  # Postfix takes all three; what befalls them comes later
        reports = postfix.wait_for_mail(2)  # the bounce and the delay notice
        (delivered,) = postfix.wait_for_mail(1, FINE)
        result = ws.run("bounces", "--maildir", str(postfix.maildir()))
        again = ws.run("bounces", "--maildir", str(postfix.maildir()))

    def token(address: str) -> str:
        return verp_token(secret, LIST, address)

    # The envelope sender Postfix saw is the reader's VERP address: the delivered copy
    # carries it as Return-Path, and each report went back to it.
    assert email.message_from_bytes(delivered)["Return-Path"] == f"<bounces+{token(FINE)}@example.com>"
    to = {email.message_from_bytes(raw)["Subject"]: email.message_from_bytes(raw)["Delivered-To"] for raw in reports}
    assert to == {"Undelivered Mail Returned to Sender": f"bounces+{token(GONE)}@example.com",
                  "Delayed Mail (still being retried)": f"bounces+{token(DELAYED)}@example.com"}

    assert result.exit_code == 0, result.output
    assert "Read 2 message(s): 1 hard bounce(s), 1 soft, 0 complaint(s), 0 unsubscribe request(s)" in result.output
    assert f"{GONE}: bounced (5.1.1)" in result.output
    assert f"{DELAYED}: soft bounce 1 of 3" in result.output
    assert "2 seen before" in again.output and "No subscriber changed." in again.output
    store = Store(ws.settings.subscribers)
    try:
        assert {s.email: s.status for s in store.all()} == {GONE: "bounced", DELAYED: "subscribed", FINE: "subscribed"}
        assert store.events(GONE)[-1][1:3] == ("bounced", "bounce")
    finally:
        store.close()
