"""The stats report as the real `newsletter serve` shows it: behind the password from the
environment, absent without one, never cached."""

from __future__ import annotations

import base64

from support import Web, free_port, smtp_config

PASSWORD = "a long random password"


def sent_workspace(ws, smtp) -> None:
    ws.configure(extra=smtp_config(smtp.port))
    ws.issue("033.yaml", number=33)
    for address in ("ada@example.com", "bob@example.com"):
        assert ws.run("subscribers", "add", address).exit_code == 0
    assert ws.run("send", "--yes", "issues/033.yaml").exit_code == 0


def auth(password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"me:{password}".encode()).decode()}


def test_serve_shows_the_report_behind_the_password(ws, smtp, secret, monkeypatch) -> None:
    sent_workspace(ws, smtp)
    monkeypatch.setenv("NEWSLETTER_STATS_PASSWORD", PASSWORD)
    server = Web(ws, free_port())
    try:
        status, headers, _ = server.exchange("GET", "/stats")
        assert status == 401 and headers["www-authenticate"].startswith("Basic ")
        assert server.exchange("GET", "/stats", headers=auth("guess"))[0] == 401
        status, headers, body = server.exchange("GET", "/stats/33", headers=auth(PASSWORD))
        assert status == 200 and headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "<dt>Delivered</dt><dd>2<" in body  # ada and bob
        status, _, body = server.exchange("GET", "/stats", headers=auth(PASSWORD))
        assert status == 200 and body.count("data:image/svg+xml") >= 2  # the charts, inside the page
    finally:
        server.stop()


def test_without_a_password_serve_has_no_stats(ws, smtp, secret, monkeypatch) -> None:
    sent_workspace(ws, smtp)
    monkeypatch.delenv("NEWSLETTER_STATS_PASSWORD", raising=False)
    server = Web(ws, free_port())
    try:
        assert server.exchange("GET", "/stats", headers=auth(""))[0] == 404
    finally:
        server.stop()


def test_an_unsubscribe_through_the_issues_link_is_counted_for_that_issue(ws, smtp, secret) -> None:
    import json
    import re
    from urllib.parse import urlsplit

    sent_workspace(ws, smtp)
    (message,) = [m for rcpt, m in smtp.received() if rcpt == "ada@example.com"]
    https = re.findall(r"<(https://[^>]+)>", message["List-Unsubscribe"])[0]
    link = urlsplit(https)
    assert "issue=33" in link.query
    server = Web(ws, free_port())
    try:
        code, _ = server.request("POST", f"{link.path}?{link.query}", {"List-Unsubscribe": "One-Click"})
        assert code == 200
    finally:
        server.stop()
    stats = json.loads(ws.run("stats", "33", "--format", "json").stdout)
    assert stats["unsubscribes"] == {"total": 1, "by_source": {"one-click (RFC 8058)": 1}}
