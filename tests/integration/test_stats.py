"""`newsletter stats`: its JSON against the journal of a real send (aiosmtpd), bounce
reports read by `newsletter bounces`, unsubscribes and clicks; the table, the HTML file,
the overview, and serve's password-protected /stats routes over real HTTP."""

from __future__ import annotations

import base64
import json
import mailbox
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from newsletter.mailing.journal import Journal
from newsletter.mailing.storage import store_exists
from newsletter.mailing.store import change_status, connect, transaction

from support import free_port, smtp_config, wait_for_port

pytestmark = pytest.mark.backends

INBOUND = Path(__file__).resolve().parent.parent / "data" / "inbound"
READERS = ("ada@example.com", "carol@example.com", "erin@example.com", "bob@example.org", "dora@example.com",
           "eve@example.com", "fay@example.com", "gone@example.com")
# link: (section, title, [verdicts of its clicks, each from its own client])
CLICKS = {1: ("featured", "First item", ["counted"] * 3 + ["repeat", "scanner", "scanner"]),
          2: ("papers", "A paper", ["counted"] * 5 + ["scanner"]),
          3: ("more", "A post with a $5 title", [])}


@pytest.fixture
def sent(ws, smtp, secret):
    """Issue 33 sent for real to eight readers (one address refused at RCPT), then what
    comes back: a hard and a soft bounce and a complaint (`newsletter bounces`), two
    unsubscribes through its link and one through issue 34's, and clicks on its links."""
    ws.configure(extra=smtp_config(smtp.port) + "bounces:\n  address: bounces@example.com\n")
    ws.issue("033.yaml", number=33)
    for address in READERS:
        assert ws.run("subscribers", "add", address).exit_code == 0
    smtp.misbehave_at_rcpt("gone@example.com", "550 5.1.1 <gone@example.com>: no such user")
    result = ws.run("send", "--yes", "issues/033.yaml")
    assert result.exit_code == 3, result.output  # one failed recipient
    box = mailbox.Maildir(str(ws.root / "Maildir"), create=True)
    for name in ("postfix-hard.eml", "gmail-soft.eml", "arf-complaint.eml"):  # ada, carol, erin; issue 33
        box.add((INBOUND / name).read_bytes())
    assert ws.run("bounces", "--maildir", str(ws.root / "Maildir")).exit_code == 0
    db = connect(ws.settings.subscribers)
    with transaction(db):
        # As serve records an unsubscribe whose link carried the issue.
        for address, source, issue in (("bob@example.org", "one-click (RFC 8058)", 33),
                                       ("dora@example.com", "unsubscribe page", 33),
                                       ("eve@example.com", "one-click (RFC 8058)", 34)):
            change_status(db, address, "unsubscribed", source)
            db.execute("UPDATE events SET issue = ? WHERE id = (SELECT max(id) FROM events WHERE email_key = ?)",
                       (issue, address))
        # As the send stores the tracked links and serve's click thread judges each click.
        for link, (section, title, verdicts) in CLICKS.items():
            db.execute("INSERT INTO links (issue, id, url, section, title) VALUES (33, ?, ?, ?, ?)",
                       (link, f"https://ml.test/{link}?utm_source=newsletter", section, title))
            db.executemany("INSERT INTO clicks (issue, link, at, client, verdict) VALUES (33, ?, ?, ?, ?)",
                           [(link, time.time(), f"client{n % 4}", verdict) for n, verdict in enumerate(verdicts)])
        db.execute("INSERT INTO clicks (issue, link, at, client, verdict) VALUES (33, 0, ?, 'scanner9', 'scanner')",
                   (time.time(),))  # the canary
    db.close()
    return ws


def stats_json(ws, *args: str) -> dict:
    result = ws.run("stats", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_issue_json_matches_the_journal_the_bounces_and_the_clicks(sent, smtp) -> None:
    data = stats_json(sent, "33")
    journal = Journal(sent.settings.subscribers, 33)
    try:
        counts = journal.counts()
    finally:
        journal.close()
    assert data["issue"] == 33 and data["pruned"] is False
    assert data["deliveries"] == {"audience": 8, "delivered": counts["sent"], "failed": 1, "unknown": 0,
                                  "pending": 0, "sending": 0, "skipped": 0}
    assert counts["sent"] == len(smtp.messages) == 7
    assert data["failed"] == {"address": 1, "refused": 0, "unsupported": 0, "temporary": 0, "other": 0}
    assert data["bounced"] == {"hard": 1, "soft": 1}  # ada (Postfix), carol (Gmail's delay notice)
    assert data["complaints"] == 1  # erin (ARF)
    assert data["unsubscribes"] == {"total": 2, "by_source": {"one-click (RFC 8058)": 1, "unsubscribe page": 1}}
    assert data["clicks"] == {"counted": 8, "readers": 4, "repeat": 1, "scanner": 3, "canary": 1}
    assert [(x["link"], x["section"], x["title"], x["counted"], x["repeat"], x["scanner"]) for x in data["links"]] \
        == [(2, "papers", "A paper", 5, 0, 1), (1, "featured", "First item", 3, 1, 2),
            (3, "more", "A post with a $5 title", 0, 0, 0)]  # top first; a link nobody clicked too
    assert data["links"][0]["url"] == "https://ml.test/2?utm_source=newsletter"
    assert stats_json(sent, "issues/033.yaml") == data  # an issue file names its number


def test_a_pruned_journal_keeps_its_numbers(sent) -> None:
    before = stats_json(sent, "33")
    assert sent.run("journal", "prune", "issues/033.yaml").exit_code == 0
    after = stats_json(sent, "33")
    assert after["pruned"] is True
    assert after["deliveries"] == before["deliveries"] and after["failed"] == before["failed"]
    assert stats_json(sent)["issues"][0]["delivered"] == 7


def test_overview_json_matches_the_store(sent) -> None:
    data = stats_json(sent)
    store = sent.store()
    assert data["subscribers"] == {s: store.count(s) for s in ("subscribed", "unsubscribed", "bounced")}
    assert data["subscribers"] == {"subscribed": 2, "unsubscribed": 4, "bounced": 2}  # gone@ bounced at send
    (day,) = data["growth"]  # everything happened today
    assert day == {"date": day["date"], "joined": 8, "unsubscribed": 4, "bounced": 2, "subscribed": 2}
    (row,) = data["issues"]
    assert row == {"issue": 33, "sent_at": row["sent_at"], "audience": 8, "delivered": 7, "failed": 1, "unknown": 0,
                   "bounced": 2, "unsubscribes": 2, "complaints": 1, "clicks": 8, "readers": 4, "scanner": 3}
    assert list(data) == ["subscribers", "growth", "issues"]


def test_leaving_twice_counts_once_and_coming_back_counts_again(ws) -> None:
    for address in ("ada@example.com", "bob@example.com"):
        ws.run("subscribers", "add", address)
    ws.run("subscribers", "remove", "ada@example.com")
    ws.store().set_status("ada@example.com", "bounced", "bounce")  # already gone: moves nothing
    ws.run("subscribers", "add", "ada@example.com")  # back
    (day,) = stats_json(ws)["growth"]
    assert (day["joined"], day["unsubscribed"], day["bounced"], day["subscribed"]) == (3, 1, 0, 2)


def test_an_imported_sign_up_date_places_the_join(ws) -> None:
    (ws.root / "people.csv").write_text("email,created_at\nold@example.com,2021-03-04 10:00\n"
                                        "new@example.com,\n", "utf-8")
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    growth = stats_json(ws)["growth"]
    assert growth[0] == {"date": "2021-03-04", "joined": 1, "unsubscribed": 0, "bounced": 0, "subscribed": 1}
    assert growth[-1]["subscribed"] == 2


def test_table_says_which_failure_is_which(sent) -> None:
    result = sent.run("stats", "33")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "failed        1  refused by the relay at send time: address 1" in out
    assert "bounced       2  bounce reports naming the issue, after delivery: 1 hard, 1 soft" in out
    assert "unsubscribed  2  through this issue: one-click (RFC 8058) 1, unsubscribe page 1" in out
    assert "clicks        8  by 4 reader(s); not counted: 1 repeat, 3 scanner, 1 on the hidden link" in out
    lines = out.splitlines()
    head = lines.index("Clicks per link, top first:")
    assert lines[head + 2].split()[:5] == ["2", "5", "0", "1", "papers"]
    overview = sent.run("stats").stdout
    assert "Subscribers: 2 subscribed, 4 unsubscribed, 2 bounced" in overview
    (row,) = [line.split() for line in overview.splitlines() if line.startswith("     33  ")]
    assert row[2:] == ["8", "7", "1", "0", "2", "2", "1", "8", "4"]  # after the date


def test_an_issue_never_sent_is_a_sentence(sent) -> None:
    result = sent.run("stats", "34")
    assert result.exit_code == 1
    assert result.output.strip() == "issue 34 was never sent from this subscriber store (sent: 33)"


def test_no_store_yet(ws) -> None:
    result = ws.run("stats")
    assert result.exit_code == 1 and "no subscriber store yet" in result.output
    assert not store_exists(ws.settings.subscribers)  # stats never creates one


def test_html_report_is_one_file_with_its_charts_inside(sent) -> None:
    result = sent.run("stats", "--format", "html")
    assert result.exit_code == 0, result.output
    page = (sent.root / "build" / "stats.html").read_text("utf-8")
    assert page.count('<img src="data:image/svg+xml;base64,') == 3  # growth, trend, the latest issue's clicks
    assert "<script" not in page and "<link" not in page and "url(http" not in page
    svg = base64.b64decode(page.split('data:image/svg+xml;base64,')[3].split('"')[0]).decode()
    assert "A post with a \\$5 title" not in svg and "A post with a $5 title" in svg  # shown as written
    assert sent.run("stats", "33", "--format", "html", "-o", "r.html").exit_code == 0
    assert (sent.root / "r.html").read_text("utf-8").count("data:image/svg+xml") == 1


# -- serve's /stats ----------------------------------------------------------------------

class Server:
    """The stats routes in a Starlette app with serve's security headers, under uvicorn."""

    def __init__(self, settings, password: str | None):
        import uvicorn
        from starlette.applications import Starlette
        from starlette.middleware import Middleware

        from newsletter.web.guard import SecurityHeaders
        from newsletter.web.stats import stats_routes

        app = Starlette(routes=stats_routes(settings, password), middleware=[Middleware(SecurityHeaders)])
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for_port(self.port, timeout=10)

    def get(self, path: str, password: str | None = None) -> tuple[int, dict, str]:
        headers = {}
        if password is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"me:{password}".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def served(sent):
    server = Server(sent.settings, "correct horse ∆ battery")
    yield server
    server.stop()


def test_stats_over_http_need_the_password(served) -> None:
    status, headers, _ = served.get("/stats")
    assert status == 401 and headers["www-authenticate"].startswith("Basic realm=")
    assert served.get("/stats", "wrong")[0] == 401
    status, headers, body = served.get("/stats", "correct horse ∆ battery")
    assert status == 200 and headers["cache-control"] == "no-store"
    assert "img-src 'self' https: data:" in headers["content-security-policy"]  # the charts may show
    assert body.count("data:image/svg+xml") == 3 and 'href="/stats/33"' in body
    status, _, body = served.get("/stats/33", "correct horse ∆ battery")
    assert status == 200 and "A paper" in body and 'href="/stats"' in body
    status, _, body = served.get("/stats/34", "correct horse ∆ battery")
    assert status == 404 and "issue 34 was never sent" in body


def test_guessing_is_cut_short(served) -> None:
    for _ in range(10):
        assert served.get("/stats", "guess")[0] == 401
    status, headers, _ = served.get("/stats", "correct horse ∆ battery")  # even the right one, for a minute
    assert status == 429 and headers["retry-after"] == "60"


def test_without_a_password_the_routes_do_not_exist(sent, monkeypatch) -> None:
    monkeypatch.delenv("NEWSLETTER_STATS_PASSWORD", raising=False)
    server = Server(sent.settings, None)
    try:
        assert server.get("/stats")[0] == 404
        assert server.get("/stats/33", "")[0] == 404
    finally:
        server.stop()
