"""Click tracking against the real thing: a send to aiosmtpd, `newsletter serve` over
HTTP, the clicks read back from the SQLite store that serve writes."""

from __future__ import annotations

import datetime as dt
import http.client
import re
import time

import pytest

from newsletter.mailing.storage import connect
from newsletter.mailing.tokens import list_id, make_token
from newsletter.mailing.tracking import link_id

from support import Web, free_port, items_block, smtp_config

pytestmark = pytest.mark.backends

LIST = list_id("Test Weekly", "news@example.com")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
TRACKED = re.compile(r"https://news\.example\.com(/c/[A-Za-z0-9._/-]+)")
MORE = 'more:\n  - title: A post\n    url: "https://blog.test/post?ref=feed"\n'


def start(ws, smtp, per_subscriber: bool = False) -> Web:
    """serve, with tracking.clicks on, for a workspace whose issue 1 has 6 links."""
    tracking = f"tracking: {{clicks: true, per_subscriber: {str(per_subscriber).lower()}}}\n"
    ws.configure(extra=smtp_config(smtp.port) + tracking)
    ws.issue("001.yaml", number=1, body=items_block("featured", 5) + MORE)
    for address in ("ada@example.com", "bob@example.com"):
        ws.run("subscribers", "add", address)
    return Web(ws, free_port())


@pytest.fixture
def serve(ws, smtp, secret):
    server = start(ws, smtp)
    yield server
    server.stop()


@pytest.fixture
def serve_per_subscriber(ws, smtp, secret):
    server = start(ws, smtp, per_subscriber=True)
    yield server
    server.stop()


def send(ws, smtp) -> dict[str, tuple[str, str]]:
    """Send issue 1; each reader's (HTML, text) parts."""
    assert ws.run("send", "--yes", "issues/001.yaml").exit_code == 0
    return {rcpt: (m.get_body(("html",)).get_content(), m.get_body(("plain",)).get_content())
            for rcpt, m in smtp.received()}


def age_send(ws, seconds: float = 60) -> None:
    """As if the send had happened ``seconds`` ago: the journal's times moved back (the
    one thing changed behind serve's back; waiting out the timing rule would do the same)."""
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat()
    with connect(ws.settings.subscribers) as db:
        db.execute("UPDATE sends SET started_at = ?", (past,))
        db.execute("UPDATE deliveries SET updated_at = ?", (past,))


def get(web: Web, path: str, method: str = "GET", agent: str | None = BROWSER) -> tuple[int, dict[str, str], str]:
    """One request, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    try:
        connection.request(method, path, headers={"User-Agent": agent} if agent is not None else {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


def clicks(ws, count: int) -> list[tuple]:
    """(link, verdict, email_key) of every click, once serve's writer has ``count`` of them."""
    deadline = time.monotonic() + 10
    while True:
        with connect(ws.settings.subscribers) as db:
            rows = db.execute("SELECT link, verdict, email_key FROM clicks ORDER BY id").fetchall()
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"{len(rows)} click(s) recorded, waited for {count}"
        time.sleep(0.02)


def links_of(part: str) -> list[str]:
    return list(dict.fromkeys(TRACKED.findall(part)))


def test_a_click_through_the_redirect_counts_once(serve, ws, smtp) -> None:
    html, text = send(ws, smtp)["bob@example.com"]
    age_send(ws)
    first = links_of(html)[1]  # [0] is the canary
    assert first in links_of(text), "the text part's links are tracked too"
    assert "/c/1.0." in html and "/c/1.0." not in text  # the canary: in the HTML only
    for _ in range(2):
        code, headers, body = get(serve, first)
        assert code == 302 and body == ""
        assert headers["location"] == ("https://ml.test/0?utm_source=newsletter&utm_medium=email"
                                       "&utm_campaign=Test%20Weekly%20%231")
        assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert clicks(ws, 2) == [(1, "counted", None), (1, "repeat", None)]
    with connect(ws.settings.subscribers) as db:
        assert db.execute("SELECT section, title FROM links WHERE issue = 1 AND id = 1").fetchone() == (
            "featured", "Item number 0")
        client = db.execute("SELECT client FROM clicks").fetchone()[0]
    assert "127.0.0.1" not in client and re.fullmatch(r"[0-9a-f]{32}", client)


def test_the_more_posts_link_keeps_its_own_query_and_gets_utm(serve, ws, smtp) -> None:
    html, _ = send(ws, smtp)["ada@example.com"]
    with connect(ws.settings.subscribers) as db:
        (number,) = db.execute("SELECT id FROM links WHERE section = 'more' AND title = 'A post'").fetchone()
    (post,) = [link for link in links_of(html) if link.startswith(f"/c/1.{number}.")]
    assert get(serve, post)[1]["location"].startswith("https://blog.test/post?ref=feed&utm_source=newsletter")


def test_build_and_the_web_page_keep_direct_links(serve, ws, smtp) -> None:
    send(ws, smtp)
    assert ws.run("build", "issues/001.yaml", "-o", "out").exit_code == 0
    for name in ("email.html", "email.txt", "index.html"):
        built = (ws.root / "out" / "1" / name).read_text()
        assert "/c/" not in built and "https://ml.test/0" in built
    page = serve.wait_for("/1/", "Item number 0")
    assert "/c/" not in page and 'href="https://ml.test/0?utm_source=newsletter' in page


@pytest.mark.parametrize("pattern", ["canary after", "canary before", "HEAD", "a tool's user agent",
                                     "no user agent", "every link at once", "right after delivery"])
def test_a_scanner_pattern_is_not_counted(serve_per_subscriber, ws, smtp, pattern: str) -> None:
    web = serve_per_subscriber
    html, _ = send(ws, smtp)["bob@example.com"]
    if pattern != "right after delivery":
        age_send(ws)
    canary, *links = links_of(html)
    assert re.search(r'<a href="[^"]+/c/1\.0\.[^"]+" style="[^"]*display: none" aria-hidden="true" tabindex="-1">'
                     r"</a>", html), "the canary is hidden from sight, keyboard and screen readers"
    assert "/c/1.0." in canary and "/c/1.0." not in "".join(links)
    if pattern == "canary after":  # scanners follow every link, hidden or not, in any order
        get(web, links[0])
        get(web, canary)
        expected = [(1, "scanner"), (0, "scanner")]
    elif pattern == "canary before":
        get(web, canary)
        get(web, links[0])
        expected = [(0, "scanner"), (1, "scanner")]
    elif pattern == "every link at once":
        for link in links[:5]:
            get(web, link)
        expected = [(n, "scanner") for n in range(1, 6)]
    else:
        method, agent = {"HEAD": ("HEAD", BROWSER), "a tool's user agent": ("GET", "python-requests/2.32.3"),
                         "no user agent": ("GET", None), "right after delivery": ("GET", BROWSER)}[pattern]
        assert get(web, links[0], method, agent)[0] == 302  # a scanner is redirected like anyone
        expected = [(1, "scanner")]
    assert [row[:2] for row in clicks(ws, len(expected))] == expected
    # A person on another device still counts, once.
    get(web, links[0], agent="Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Safari/604.1")
    if pattern == "right after delivery":
        expected.append((1, "scanner"))  # still within seconds of the delivery
    else:
        expected.append((1, "counted"))
    assert [row[:2] for row in clicks(ws, len(expected))] == expected


def test_per_subscriber_records_the_reader_and_counts_them_once(serve_per_subscriber, ws, smtp) -> None:
    web = serve_per_subscriber
    parts = send(ws, smtp)
    age_send(ws)
    ada, bob = links_of(parts["ada@example.com"][0])[1], links_of(parts["bob@example.com"][0])[1]
    assert ada != bob and ada.split("/")[2] == bob.split("/")[2], "the same link id, each reader's own token"
    get(web, ada)
    get(web, ada, agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) Safari/605.1.15")  # Ada's other device
    get(web, bob)  # from the browser Ada used first: with per_subscriber, the reader's token decides
    assert clicks(ws, 3) == [(1, "counted", "ada@example.com"), (1, "repeat", "ada@example.com"),
                             (1, "counted", "bob@example.com")]


def test_without_per_subscriber_the_links_are_the_same_for_everyone(serve, ws, smtp) -> None:
    parts = send(ws, smtp)
    assert links_of(parts["ada@example.com"][0]) == links_of(parts["bob@example.com"][0])
    assert "ada@example.com" not in str(links_of(parts["ada@example.com"][1]))


@pytest.mark.parametrize("kind", ["tampered", "another issue", "another link", "foreign key", "another list",
                                  "unknown link", "padded", "garbage", "tampered reader"])
def test_a_forged_id_is_refused(serve_per_subscriber, ws, smtp, secret, kind: str) -> None:
    web = serve_per_subscriber
    html, _ = send(ws, smtp)["bob@example.com"]
    real = links_of(html)[1]  # /c/1.1.<mac>/<reader>
    good_id, reader = real.split("/")[2], real.split("/")[3]
    issue, link, mac = good_id.split(".")
    path = {
        "tampered": f"/c/1.1.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "another issue": f"/c/2.1.{mac}",
        "another link": f"/c/1.2.{mac}",
        "foreign key": "/c/" + link_id(b"another secret", LIST, 1, 1),
        "another list": "/c/" + link_id(secret, "other.example.com", 1, 1),
        "unknown link": "/c/" + link_id(secret, LIST, 1, 99),  # ours, but no such link was sent
        "padded": f"/c/01.1.{mac}",
        "garbage": "/c/https://evil.example/",
        "tampered reader": f"/c/{good_id}/" + make_token(b"another secret", LIST, "bob@example.com", "click"),
    }[kind]
    code, headers, body = get(web, path)
    assert code == 400 and "location" not in headers and "This link is not valid" in body
    assert get(web, f"/c/{good_id}/{reader}")[0] == 302  # the real one still works, and is the only click:
    assert [row[2] for row in clicks(ws, 1)] == ["bob@example.com"]  # clicks are written in the order they came


def test_a_link_keeps_its_number_when_the_issue_changes(serve, ws, smtp) -> None:
    html, _ = send(ws, smtp)["bob@example.com"]
    before = links_of(html)
    path = ws.issues / "001.yaml"
    path.write_text(path.read_text().replace("https://ml.test/0", "https://ml.test/new"))
    assert ws.run("send", "issues/001.yaml", "--test", "me@example.com").exit_code == 0
    test_copy = dict(smtp.received())["me@example.com"].get_body(("html",)).get_content()
    after = links_of(test_copy)
    assert after[1] not in before and after[2:] == before[2:], "a new URL, a new number; the others as they were"
    assert get(serve, before[1])[1]["location"].startswith("https://ml.test/0?")  # mailed links still go there
    assert get(serve, after[1])[1]["location"].startswith("https://ml.test/new?")


def test_a_send_refuses_when_serve_does_not_answer_the_redirect(ws, smtp, secret, monkeypatch) -> None:
    port = free_port()
    ws.configure(extra=smtp_config(smtp.port) + "tracking: {clicks: true}\nlinks: {check_hosted: true}\n")
    config = ws.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("https://news.example.com", f"http://127.0.0.1:{port}"))
    ws.issue("001.yaml", number=1)
    ws.run("subscribers", "add", "ada@example.com")
    monkeypatch.setenv("NEWSLETTER_SECRET", "not the sender's secret")
    web = Web(ws, port)  # serves the web version, but cannot read the sender's link ids
    monkeypatch.setenv("NEWSLETTER_SECRET", secret.decode())
    try:
        web.wait_for("/1/", "Test issue")
        result = ws.run("send", "--yes", "issues/001.yaml")
        assert result.exit_code == 1 and "every link in the email would be broken" in result.output
        assert smtp.messages == []
    finally:
        web.stop()
    web = Web(ws, port)
    try:
        web.wait_for("/1/", "Test issue")
        assert ws.run("send", "--yes", "issues/001.yaml").exit_code == 0
        assert [rcpt for rcpt, _ in smtp.messages] == ["ada@example.com"]
        assert set(clicks(ws, 1)) == {(0, "scanner", None)}  # the check asked for the canary: no count changed
    finally:
        web.stop()
