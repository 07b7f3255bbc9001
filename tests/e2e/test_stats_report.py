"""The stats report in real Chromium: opened from disk, offline, its three charts drawn;
at a phone's width; accessible and readable; and served behind the password by the
stats routes, under serve's Content-Security-Policy."""

from __future__ import annotations

import threading
import time

import pytest
from audit import serious_violations, unreadable_text

from newsletter.mailing.store import change_status, connect, transaction

from support import free_port, screenshot, smtp_config, wait_for_port

PASSWORD = "report-password-for-tests"
CHARTS = ["chart-growth", "chart-trend", "chart-clicks"]


@pytest.fixture
def history(ws, smtp, secret):
    """Thirty readers who joined over eight weeks, issues 1 and 2 sent to them for real,
    some unsubscribes through each, and clicks on issue 2's links."""
    ws.configure(extra=smtp_config(smtp.port))
    rows = "".join(f"reader{n}@example.com,2026-0{1 + n // 12}-{1 + n % 12 * 2:02d} 08:00\n" for n in range(30))
    (ws.root / "people.csv").write_text("email,created_at\n" + rows, "utf-8")
    assert ws.run("subscribers", "import", "people.csv").exit_code == 0
    db = connect(ws.settings.subscribers)
    for number in (1, 2):
        ws.issue(f"00{number}.yaml", number=number, title=f"Issue {number}")
        assert ws.run("send", "--yes", f"issues/00{number}.yaml").exit_code == 0
        with transaction(db):  # as serve records an unsubscribe whose link carried the issue
            for n in range(number * 2):
                key = f"reader{number * 10 + n}@example.com"
                change_status(db, key, "unsubscribed", "one-click (RFC 8058)")
                db.execute("UPDATE events SET issue = ? WHERE id = (SELECT max(id) FROM events WHERE email_key = ?)",
                           (number, key))
    with transaction(db):  # as the send stores the links and serve's click thread judges the clicks
        for link, (title, clicks) in enumerate((("Better pre-training is not better downstream", 9),
                                                ("随机权重平均 (SWA) explained", 6), ("A people-free ImageNet", 4),
                                                ("Six papers", 1)), start=1):
            db.execute("INSERT INTO links (issue, id, url, section, title) VALUES (2, ?, ?, 'featured', ?)",
                       (link, f"https://ml.test/{link}", title))
            db.executemany("INSERT INTO clicks (issue, link, at, client, verdict) VALUES (2, ?, ?, ?, ?)",
                           [(link, time.time(), f"c{n}", "scanner" if n == 0 else "counted") for n in range(clicks)])
    db.close()
    return ws


def charts_drawn(page) -> dict[str, dict]:
    """Each chart image: whether it loaded, its drawn size and its alt text."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('section.chart')].map(s => {
        const img = s.querySelector('img');
        return [s.id, {loaded: img.complete && img.naturalWidth > 0, width: img.getBoundingClientRect().width,
                       height: img.getBoundingClientRect().height, alt: img.alt}];
    }))""")


def test_the_report_from_disk_shows_its_charts(page, history) -> None:
    assert history.run("stats", "--format", "html").exit_code == 0
    page.goto((history.root / "build" / "stats.html").as_uri())
    drawn = charts_drawn(page)
    assert list(drawn) == CHARTS
    for name, chart in drawn.items():
        assert chart["loaded"], name
        assert chart["width"] > 600 and chart["height"] > 150, (name, chart)
        assert len(chart["alt"]) > 40, name
    assert "随机权重平均 (SWA) explained: 5" in drawn["chart-clicks"]["alt"]
    assert page.get_by_role("heading", name="Subscribers and issues").is_visible()
    assert page.locator("table").first.get_by_role("cell", name="2", exact=True).first.is_visible()
    assert serious_violations(page) == []
    assert unreadable_text(page) == []
    screenshot(page, "stats-overview")
    # page's fixture fails the test if anything was fetched from outside: the file stands alone


def test_an_issue_report_at_a_phones_width(page, history) -> None:
    assert history.run("stats", "2", "--format", "html").exit_code == 0
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto((history.root / "build" / "stats-2.html").as_uri())
    drawn = charts_drawn(page)
    assert list(drawn) == ["chart-clicks"] and drawn["chart-clicks"]["loaded"]
    assert drawn["chart-clicks"]["width"] >= 480  # legible: it scrolls inside its box rather than shrink
    scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client  # the chart and the wide table scroll inside their boxes, not the page
    assert page.get_by_text("随机权重平均 (SWA) explained").is_visible()
    assert serious_violations(page) == []
    screenshot(page, "stats-issue-375")


@pytest.fixture
def served(history):
    """The stats routes under uvicorn, with serve's security headers."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from newsletter.web.guard import SecurityHeaders
    from newsletter.web.stats import stats_routes

    app = Starlette(routes=stats_routes(history.settings, PASSWORD), middleware=[Middleware(SecurityHeaders)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port, timeout=10)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_served_behind_the_password_under_the_csp(browser, served) -> None:
    context = browser.new_context(viewport={"width": 1024, "height": 800},
                                  http_credentials={"username": "author", "password": PASSWORD})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    blocked: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto(served + "/stats")
        assert all(chart["loaded"] for chart in charts_drawn(page).values())
        page.get_by_role("link", name="2", exact=True).click()
        page.wait_for_url(served + "/stats/2")
        assert charts_drawn(page)["chart-clicks"]["loaded"]
        page.get_by_role("link", name="all issues").click()
        page.wait_for_url(served + "/stats")
    finally:
        context.close()
    assert blocked == []
    assert [u for u in requests if not u.startswith((served, "data:"))] == []
