"""Sending, judged by what a real SMTP server (aiosmtpd on 127.0.0.1) receives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.mailing.tokens import list_id, read_token

from support import smtp_config

pytestmark = pytest.mark.backends

PEOPLE = """\
email,name,company
ada@example.com,Ada Lovelace,Analytical Engines
zoe@example.com,Zoë Ünal,
li.wei@example.cn,李伟,清华大学
grace@example.net,"Hopper, Grace",US Navy
"""


@pytest.fixture
def sending(ws, smtp, secret):
    """A workspace with four subscribers and an issue, pointed at the test server."""
    ws.configure(extra=smtp_config(smtp.port))
    ws.issue("033.yaml", number=33)
    (ws.root / "people.csv").write_text(PEOPLE, "utf-8")
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    return ws


def addresses(smtp) -> list[str]:
    return sorted(rcpt for rcpt, _ in smtp.messages)


def test_each_subscriber_gets_one_message_of_their_own(sending, smtp, secret) -> None:
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    assert "This run: 4 sent, 0 failed." in result.stdout
    assert addresses(smtp) == ["ada@example.com", "grace@example.net", "li.wei@example.cn", "zoe@example.com"]
    names = {"ada@example.com": "Ada Lovelace", "zoe@example.com": "Zoë Ünal", "li.wei@example.cn": "李伟",
             "grace@example.net": "Hopper, Grace"}
    tokens, ids = set(), set()
    for rcpt, message in smtp.received():
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message["To"].addresses[0].addr_spec == rcpt
        assert message["To"].addresses[0].display_name == names[rcpt]
        assert len(message["To"].addresses) == 1 and message["Cc"] is None and message["Bcc"] is None
        assert message["From"] == "Editor <news@example.com>"
        assert message["Subject"] == "Test Weekly #33: Test issue"
        assert message["Date"].datetime is not None
        assert message["List-Id"] == f'"Test Weekly" <{list_id("Test Weekly", "news@example.com")}>'
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https, mailto = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
        assert mailto == "mailto:unsubscribe@example.com?subject=unsubscribe"
        token, issue = https.removeprefix("https://news.example.com/unsubscribe?token=").split("&issue=")
        assert issue == "33"  # the link says which issue the reader left after (`stats`)
        assert read_token(secret, list_id("Test Weekly", "news@example.com"), token) == rcpt
        tokens.add(token)
        ids.add(message["Message-ID"])
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        for part in (text, html):
            assert f"Sent to {rcpt}." in part
            assert "1 Example Street, Springfield" in part
            assert token in part
        assert not message.defects
    assert len(tokens) == 4 and len(ids) == 4


def test_wire_format_is_crlf_with_short_lines(sending, smtp) -> None:
    sending.run("send", "--yes", "issues/033.yaml")
    for _, raw in smtp.messages:
        assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998
        assert all(b >= 32 or b in (9, 10, 13) for b in raw) and max(raw) < 128


def test_a_rerun_sends_nothing_and_message_ids_are_stable(sending, smtp) -> None:
    sending.run("send", "--yes", "issues/033.yaml")
    first = {rcpt: m["Message-ID"] for rcpt, m in smtp.received()}
    again = sending.run("send", "--yes", "issues/033.yaml")
    assert again.exit_code == 0
    assert "This run: 0 sent, 0 failed. In all: 4 sent" in again.stdout
    assert len(smtp.messages) == 4
    sending.run("send", "--yes", "issues/033.yaml", "--dry-run", "eml")
    import email
    from email import policy

    for path in (sending.root / "eml").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert first[message["To"].addresses[0].addr_spec] == message["Message-ID"]


def test_the_first_run_fixes_the_audience_and_include_new_extends_it(sending, smtp) -> None:
    assert sending.run("send", "--yes", "issues/033.yaml", "--limit", "2").exit_code == 0
    assert sending.run("subscribers", "add", "new@example.com", "--name", "New Reader").exit_code == 0
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert "This run: 2 sent" in result.stdout  # the rest of the first audience only
    assert "new@example.com" not in addresses(smtp) and len(smtp.messages) == 4
    result = sending.run("send", "--yes", "issues/033.yaml", "--include-new")
    assert "This run: 1 sent" in result.stdout
    assert addresses(smtp).count("new@example.com") == 1 and len(smtp.messages) == 5


def test_unsubscribed_addresses_are_never_mailed_even_if_reimported(sending, smtp) -> None:
    assert sending.run("subscribers", "remove", "ZOE@example.com").exit_code == 0
    assert sending.run("subscribers", "import", "people.csv").exit_code == 0
    sending.run("send", "--yes", "issues/033.yaml")
    assert "zoe@example.com" not in addresses(smtp)
    assert sending.store().get("zoe@example.com").status == "unsubscribed"
    assert sending.run("subscribers", "add", "zoe@example.com").stdout == "zoe@example.com: resubscribed\n"
    sending.run("send", "--yes", "issues/033.yaml")
    assert "zoe@example.com" not in addresses(smtp)  # she was not subscribed when the send started
    sending.run("send", "--yes", "issues/033.yaml", "--include-new")
    assert addresses(smtp).count("zoe@example.com") == 1


def test_temporary_failures_are_retried_to_success(sending, smtp) -> None:
    smtp.misbehave("ada@example.com", "451 4.3.0 Try again later", "451 4.3.0 Try again later")
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    assert addresses(smtp).count("ada@example.com") == 1


def test_a_persistent_451_is_recorded_as_failed(sending, smtp) -> None:
    smtp.misbehave("ada@example.com", *["451 4.3.0 Try again later"] * 5)
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 3
    assert "ada@example.com  451 4.3.0 Try again later (gave up after 3 attempts)" in result.stdout
    assert len(smtp.messages) == 3


def test_550_is_permanent_exit_3_and_a_5_1_x_marks_the_address_bounced(sending, smtp) -> None:
    smtp.misbehave("ada@example.com", "550 5.1.1 No such user")
    smtp.misbehave("grace@example.net", "550 5.7.1 Message rejected as spam")
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 3
    assert "ada@example.com  550 5.1.1 No such user" in result.stdout
    assert "grace@example.net  550 5.7.1 Message rejected as spam" in result.stdout
    store = sending.store()
    assert store.get("ada@example.com").status == "bounced"
    assert store.get("grace@example.net").status == "subscribed"
    assert [e[1] for e in store.events("ada@example.com")] == ["subscribed", "bounced"]
    status = sending.run("status", "issues/033.yaml")
    assert "Issue 33: 0 pending, 0 sending, 2 sent, 2 failed, 0 unknown" in status.stdout
    sending.issue("034.yaml", number=34)
    sending.run("send", "--yes", "issues/034.yaml")
    assert addresses(smtp).count("ada@example.com") == 0  # bounced: not mailed again


def test_a_connection_dropped_before_the_message_is_reopened_and_the_send_resumes(sending, smtp) -> None:
    smtp.misbehave_at_rcpt("zoe@example.com", "drop")
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 0, result.output
    assert smtp.rcpt_script["zoe@example.com"] == []  # the drop happened
    assert addresses(smtp) == ["ada@example.com", "grace@example.net", "li.wei@example.cn", "zoe@example.com"]


def test_test_copy_goes_to_one_address_with_test_in_the_subject(sending, smtp) -> None:
    import email
    from email import policy

    result = sending.run("send", "--yes", "issues/033.yaml", "--test", "me@example.org")
    assert result.exit_code == 0, result.output
    ((rcpt, message),) = smtp.received()
    assert rcpt == "me@example.org"
    assert message["Subject"] == "[TEST] Test Weekly #33: Test issue"
    assert message["Date"].endswith("+0000")
    sending.run("send", "--yes", "issues/033.yaml", "--test", "me@example.org")
    sending.run("send", "--yes", "issues/033.yaml", "--dry-run", "eml")
    real = email.message_from_bytes(next((sending.root / "eml").glob("*.eml")).read_bytes(), policy=policy.default)
    ids = {m["Message-ID"] for _, m in smtp.received()} | {real["Message-ID"]}
    assert len(ids) == 3  # each test copy has its own, never the real one (inboxes drop a repeat)
    assert "0 sent" in sending.run("status", "issues/033.yaml").stdout  # not journaled
    assert sending.run("send", "--yes", "issues/033.yaml", "--test", "not an address").exit_code == 1


def test_dry_run_writes_eml_files_and_sends_nothing(sending, smtp) -> None:
    result = sending.run("send", "--yes", "issues/033.yaml", "--dry-run", "out")
    assert result.exit_code == 0
    assert len(list((sending.root / "out").glob("*.eml"))) == 4
    assert smtp.messages == []
    assert "Issue 33: 0 pending, 0 sending, 0 sent" in sending.run("status", "issues/033.yaml").stdout


def test_limit_sends_some_and_a_rerun_the_rest(sending, smtp) -> None:
    result = sending.run("send", "--yes", "issues/033.yaml", "--limit", "3")
    assert "This run: 3 sent" in result.stdout and "1 pending" in result.stdout
    assert "Run the same command again" in result.stdout
    sending.run("send", "--yes", "issues/033.yaml")
    assert len(set(addresses(smtp))) == 4 and len(smtp.messages) == 4


def test_missing_secret_is_a_clear_error_before_anything_is_sent(sending, smtp, monkeypatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET")
    monkeypatch.setenv("HOME", str(sending.root))  # no keyring secret either
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith("no signing key for unsubscribe links: set NEWSLETTER_SECRET")
    assert smtp.messages == []


def test_missing_postal_address_is_a_clear_error(sending, smtp) -> None:
    config = sending.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("postal_address: 1 Example Street, Springfield\n", ""))
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1
    assert "'postal_address' is required to send" in result.stderr
    assert smtp.messages == []


def test_no_server_is_a_clear_error_and_nothing_is_lost(sending, smtp) -> None:
    from support import free_port

    sending.configure(extra=smtp_config(free_port()))
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1
    assert "cannot connect" in result.stderr and "Traceback" not in result.stderr
    assert "Issue 33: 4 pending, 0 sending, 0 sent" in sending.run("status", "issues/033.yaml").stdout


def test_local_images_without_base_url_go_inline_by_content_id(ws, smtp, secret) -> None:
    ws.configure(extra=smtp_config(smtp.port))
    config = ws.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("base_url: https://news.example.com\n", ""))
    body = ("sections:\n  featured:\n    - title: T\n      url: https://ml.test/t\n      summary: S\n"
            "      image: {src: img/figure.png, alt: A figure}\n")
    ws.issue("001.yaml", body=body)
    ws.run("subscribers", "add", "ada@example.com")
    assert ws.run("send", "--yes", "issues/001.yaml").exit_code == 0
    ((_, message),) = smtp.received()
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert image.get_content() == (ws.issues / "img" / "figure.png").read_bytes()
    html = message.get_body(("html",)).get_content()
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html


def test_with_base_url_images_are_linked_from_the_archive(sending, smtp) -> None:
    body = ("sections:\n  featured:\n    - title: T\n      url: https://ml.test/t\n      summary: S\n"
            "      image: {src: img/figure.png, alt: A figure}\n")
    sending.issue("040.yaml", number=40, body=body)
    sending.run("send", "--yes", "issues/040.yaml")
    html = smtp.received()[0][1].get_body(("html",)).get_content()
    assert 'src="https://news.example.com/40/img/figure.png"' in html


def test_a_csv_column_is_a_personal_field_in_layouts(sending, smtp, tmp_path: Path) -> None:
    import shutil

    from support import LAYOUTS

    shutil.copytree(LAYOUTS, tmp_path / "layouts")
    layout = tmp_path / "layouts" / "email.txt"
    layout.write_text("Hello {{ personal.name }} at {{ personal.company }}!\n" + layout.read_text())
    config = sending.root / "newsletter.yaml"
    config.write_text(config.read_text().replace(f"layouts: {LAYOUTS}", f"layouts: {tmp_path / 'layouts'}"))
    sending.run("send", "--yes", "issues/033.yaml")
    texts = {rcpt: m.get_body(("plain",)).get_content() for rcpt, m in smtp.received()}
    assert texts["li.wei@example.cn"].startswith("Hello 李伟 at 清华大学!")
    assert texts["zoe@example.com"].startswith("Hello Zoë Ünal at !")


def test_the_rate_limit_spaces_messages(sending, smtp) -> None:
    import time

    sending.configure(extra=smtp_config(smtp.port, rate=20, connections=4))
    start = time.monotonic()
    sending.run("send", "--yes", "issues/033.yaml")
    assert time.monotonic() - start >= 3 / 20 * 0.9  # four messages, three gaps of 1/20 s
    assert len(smtp.messages) == 4


def test_on_a_terminal_send_shows_a_progress_bar(sending, smtp) -> None:
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "newsletter", "send", "--yes", "issues/033.yaml"],
                               cwd=sending.root, stdout=subprocess.PIPE, stderr=slave, env={**os.environ})
    os.close(slave)
    out, _ = process.communicate(timeout=60)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert process.returncode == 0
    bar = shown.decode().strip().split("\r")[-1]
    assert re.search(r"\[#{30}\] 4/4  \d+/s  ETA 0:00", bar), shown
    assert "This run: 4 sent" in out.decode()


def test_an_http_unsubscribe_url_under_an_https_site_refuses_to_send(sending, smtp) -> None:
    config = sending.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("url: https://news.example.com/unsubscribe",
                                                 "url: http://news.example.com/unsubscribe"))
    result = sending.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 1 and "unsubscribe.url must be https, like base_url" in result.stderr
    assert smtp.messages == []
