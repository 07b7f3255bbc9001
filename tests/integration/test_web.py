"""`newsletter serve` on a free port, driven over HTTP; `newsletter archive` and its feed."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import feedparser
import html5lib
import pytest

from newsletter.mailing.tokens import list_id, make_expiring_token, make_token

from support import REPO

pytestmark = pytest.mark.backends

LIST = list_id("Test Weekly", "news@example.com")


def status_of(ws, address: str) -> str:
    return ws.store().get(address).status


def test_one_click_post_unsubscribes_and_a_later_send_skips_the_address(web, ws, smtp, secret) -> None:
    token = make_token(secret, LIST, "ada@example.com")
    code, body = web.request("POST", f"/unsubscribe?token={token}", {"List-Unsubscribe": "One-Click"})
    assert code == 200
    assert "ada@example.com" in body and "unsubscribed" in body
    assert status_of(ws, "ada@example.com") == "unsubscribed"
    assert ws.store().events("ada@example.com")[-1][1:3] == ("unsubscribed",
                                                                               "one-click (RFC 8058)")
    assert web.request("POST", f"/unsubscribe?token={token}", {"List-Unsubscribe": "One-Click"})[0] == 200
    assert ws.run("send", "--yes", "issues/001.yaml").exit_code == 0
    assert sorted(rcpt for rcpt, _ in smtp.messages) == ["bob@example.com"]


def test_the_unsubscribe_link_in_a_sent_email_works(web, ws, smtp) -> None:
    ws.run("send", "--yes", "issues/001.yaml")
    message = dict(smtp.received())["bob@example.com"]
    link = re.search(r"<(https://[^>]+)>", message["List-Unsubscribe"]).group(1)
    path = urllib.parse.urlsplit(link)
    assert web.request("POST", f"{path.path}?{path.query}", {"List-Unsubscribe": "One-Click"})[0] == 200
    assert status_of(ws, "bob@example.com") == "unsubscribed"


def test_get_shows_a_button_and_changes_nothing(web, ws, secret) -> None:
    token = make_token(secret, LIST, "ada@example.com")
    code, body = web.request("GET", f"/unsubscribe?token={token}")
    assert code == 200
    assert '<form method="post" action="/unsubscribe">' in body and "Unsubscribe ada@example.com" in body
    assert status_of(ws, "ada@example.com") == "subscribed"
    code, _ = web.request("POST", "/unsubscribe", {"token": token})  # the button
    assert code == 200 and status_of(ws, "ada@example.com") == "unsubscribed"


@pytest.mark.parametrize("kind", ["tampered", "foreign key", "other list", "garbage", "missing"])
def test_bad_tokens_are_400_and_change_nothing(web, ws, secret, kind: str) -> None:
    good = make_token(secret, LIST, "ada@example.com")
    token = {
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "foreign key": make_token(b"another secret", LIST, "ada@example.com"),
        "other list": make_token(secret, "other-list.example.com", "ada@example.com"),
        "garbage": "not-a-token",
        "missing": "",
    }[kind]
    for method in ("GET", "POST"):
        code, body = web.request(method, f"/unsubscribe?token={urllib.parse.quote(token)}",
                                 {"List-Unsubscribe": "One-Click"} if method == "POST" else None)
        assert code == 400 and "Nothing was changed" in body
    assert status_of(ws, "ada@example.com") == "subscribed"


def test_sign_up_mails_a_confirmation_and_only_confirming_subscribes(web, ws, smtp) -> None:
    code, body = web.request("POST", "/subscribe", {"email": "new@example.com"})
    assert code == 200 and "confirmation link is on its way" in body
    assert ws.store().get("new@example.com") is None
    wait_for_mail(smtp, 1)
    ((rcpt, message),) = smtp.received()
    assert rcpt == "new@example.com" and message["Subject"] == "Confirm your subscription to Test Weekly"
    link = re.search(r"https://news\.example\.com(/confirm\?token=\S+)", message.get_content()).group(1)
    code, body = web.request("GET", link)
    assert code == 200 and "Yes, subscribe new@example.com" in body
    assert ws.store().get("new@example.com") is None  # a GET changes nothing
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["token"][0]
    code, body = web.request("POST", "/confirm", {"token": token})
    assert code == 200 and "new@example.com is subscribed" in body
    assert status_of(ws, "new@example.com") == "subscribed"
    changes = [(c, s) for _, c, s, _ in ws.store().events("new@example.com")]
    assert changes == [("confirmation sent", "web sign-up from 127.0.0.1"), ("subscribed", "web sign-up, confirmed")]


def test_expired_and_forged_confirmations_are_refused(web, ws, secret) -> None:
    old = make_expiring_token(secret, LIST, "late@example.com", int(time.time()) - 1)
    forged = make_expiring_token(b"wrong", LIST, "late@example.com", int(time.time()) + 3600)
    for token in (old, forged):
        assert web.request("GET", f"/confirm?token={token}")[0] == 400
        assert web.request("POST", "/confirm", {"token": token})[0] == 400
    assert ws.store().get("late@example.com") is None


def test_a_hundred_sign_ups_for_one_address_send_one_mail(web, smtp) -> None:
    answers = []

    def sign_up() -> None:
        answers.append(web.request("POST", "/subscribe", {"email": "target@example.com"}))

    threads = [threading.Thread(target=sign_up) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a for a in answers}) == 1 and answers[0][0] == 200
    wait_for_mail(smtp, 1)
    time.sleep(0.5)  # the outbox would have sent any second mail by now
    assert [rcpt for rcpt, _ in smtp.messages] == ["target@example.com"]


def test_answers_do_not_tell_subscribers_from_strangers(web, smtp) -> None:
    known = web.request("POST", "/subscribe", {"email": "ada@example.com"})
    stranger = web.request("POST", "/subscribe", {"email": "eve@example.com"})
    assert known[0] == stranger[0] == 200
    assert known[1].replace("ada@example.com", "X") == stranger[1].replace("eve@example.com", "X")
    wait_for_mail(smtp, 1)
    assert [rcpt for rcpt, _ in smtp.messages] == ["eve@example.com"]  # subscribers get no mail
    assert web.request("POST", "/subscribe", {"email": "not an address"})[0] == 400


def test_unsubscribed_and_bounced_come_back_only_by_confirming(web, ws, smtp, secret) -> None:
    ws.run("subscribers", "remove", "ada@example.com")
    ws.store().set_status("bob@example.com", "bounced", "test")
    for address in ("ada@example.com", "bob@example.com"):
        web.request("POST", "/subscribe", {"email": address})
        assert status_of(ws, address) != "subscribed"
    wait_for_mail(smtp, 2)
    assert sorted(rcpt for rcpt, _ in smtp.messages) == ["ada@example.com", "bob@example.com"]
    for address in ("ada@example.com", "bob@example.com"):
        token = make_expiring_token(secret, LIST, address, int(time.time()) + 60)
        assert web.request("POST", "/confirm", {"token": token})[0] == 200
        assert status_of(ws, address) == "subscribed"


def test_the_server_serves_the_archive(web) -> None:
    code, index = web.request("GET", "/")
    assert code == 200 and 'href="1/index.html"' in index
    code, page = web.request("GET", "/1/index.html")
    assert code == 200 and "<h1>Test issue</h1>" in page
    assert web.request("GET", "/nothing-here")[0] == 404


def sample_workspace(root: Path, publish: tuple[int, ...] = (33, 34)) -> Path:
    """The sample issues in a workspace of their own (a store in it), ``publish`` published."""
    import shutil

    shutil.copytree(REPO / "issues", root / "issues")
    config = (REPO / "newsletter.yaml").read_text().replace("subscribers: subscribers.db\n", "")
    (root / "newsletter.yaml").write_text(config + f"layouts: {REPO / 'layouts'}\nsubscribers: {root / 'subs.db'}\n")
    for number in publish:
        nl(root, "publish", str(number))
    return root


def nl(root: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=root, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def archive(tmp_path: Path) -> Path:
    root = sample_workspace(tmp_path / "ws")
    nl(root, "archive", "-o", str(tmp_path / "site"))
    return tmp_path / "site"


def test_archive_and_feed_list_every_sample_issue(tmp_path: Path) -> None:
    site = archive(tmp_path)
    samples = sorted(REPO.glob("issues/*.yaml"))
    feed = feedparser.parse((site / "feed.xml").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "Akira's Machine Learning News"
    assert len(feed.entries) == len(samples) == 2
    assert [e.link for e in feed.entries] == ["http://127.0.0.1:8000/34/", "http://127.0.0.1:8000/33/"]
    assert "Pre-training accuracy is not downstream accuracy" in [e.title for e in feed.entries]
    content = feed.entries[1].content[0].value
    assert "PatchCore keeps a compact" in content
    assert 'src="http://127.0.0.1:8000/33/img/scaling-curves.png"' in content
    index = (site / "index.html").read_text()
    assert index.index('href="34/index.html"') < index.index('href="33/index.html"')  # newest first
    assert (site / "33" / "img" / "scaling-curves.png").is_file()
    assert '<html lang="zh">' in (site / "34" / "index.html").read_text()


def test_archive_pages_are_valid_html(tmp_path: Path) -> None:
    site = archive(tmp_path)
    for page in [site / "index.html", *site.glob("*/index.html")]:
        parser = html5lib.HTMLParser(strict=True)
        parser.parse(page.read_text())
        assert parser.errors == [], (page, parser.errors[:3])


def test_adding_an_issue_rebuilds_only_what_must(tmp_path: Path) -> None:
    root = sample_workspace(tmp_path / "ws")

    def run() -> list[str]:
        return sorted(nl(root, "archive").stdout.split())

    assert len(run()) > 5
    assert run() == []  # nothing changed, nothing written
    text = (root / "issues" / "034.yaml").read_text().replace("number: 34", "number: 35")
    (root / "issues" / "035.yaml").write_text(text.replace("date: 2021-10-17", "date: 2021-10-24"))
    # A draft: its page and images (hosted before the send), not the index or the feed.
    assert run() == ["site/35/brand/logo.png", "site/35/img/scaling-curves.png", "site/35/index.html"]
    nl(root, "publish", "35")
    assert run() == ["site/feed.xml", "site/index.html"]
    assert run() == []


def test_a_relay_that_fails_for_now_gets_the_confirmation_later(web, smtp) -> None:
    smtp.misbehave("new@example.com", "451 4.3.0 Try again later")
    code, body = web.request("POST", "/subscribe", {"email": "new@example.com"})
    assert code == 200 and "confirmation link is on its way" in body  # the relay is not the visitor's business
    wait_for_mail(smtp, 1)
    assert [rcpt for rcpt, _ in smtp.messages] == ["new@example.com"] and smtp.started == 2


def wait_for_mail(smtp, count: int, seconds: float = 10) -> None:
    """The outbox thread mails after the answer: wait for it."""
    deadline = time.monotonic() + seconds
    while len(smtp.messages) < count:
        assert time.monotonic() < deadline, f"{len(smtp.messages)} of {count} mails after {seconds} s"
        time.sleep(0.02)
