"""`check --links` and `send` with links.check_on_send, against a local HTTP server
(127.0.0.1 only) that answers 200, redirects, 404, 500, slowly, and 405 to HEAD."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsletter.config import Enrich
from newsletter.ports import free_port

from support import smtp_config

SLOW_SECONDS = 3.0
TIMEOUT = 0.5


class Site:
    """What the server saw: every (method, path, User-Agent), and the most requests at once."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.base = ""


def handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self.answer()

        def do_GET(self) -> None:  # noqa: N802
            self.answer()

        def answer(self) -> None:
            with site.lock:
                site.seen.append((self.command, self.path, self.headers.get("User-Agent", "")))
                site.active += 1
                site.most = max(site.most, site.active)
            try:
                time.sleep(0.05)  # long enough for requests to overlap
                self.route()
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (the slow page)
                pass
            finally:
                with site.lock:
                    site.active -= 1

        def route(self) -> None:
            path = self.path
            if path == "/slow":
                time.sleep(SLOW_SECONDS)
            if path == "/moved":
                return self.send(301, location="/moved-again")
            if path == "/moved-again":
                return self.send(302, location="/ok")
            if path == "/no-head" and self.command == "HEAD":
                return self.send(405)
            code = {"/missing": 404, "/broken": 500}.get(path, 200 if path in ("/ok", "/slow", "/no-head") else 404)
            self.send(code, b"<p>a page</p>")

        def send(self, code: int, content: bytes = b"", location: str | None = None) -> None:
            self.send_response(code)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

    return Handler


@pytest.fixture
def site():
    state = Site()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def configure(ws, extra: str = "") -> None:
    ws.configure(extra=f"enrich: {{timeout: {TIMEOUT}, concurrency: 8}}\n{extra}")


def links_issue(ws, base: str, dead: str) -> None:
    ws.write("001.yaml", f"""\
        number: 1
        date: 2021-10-10
        title: Links
        intro: "See [the archive]({base}/ok)."
        highlights:
          - "[Moved]({base}/moved) and [gone]({base}/missing), [mail](mailto:me@ml.test)"
        sections:
          featured:
            - title: Fine
              url: {base}/ok
              summary: Fine.
            - title: Missing
              url: {base}/missing
              summary: "Also [down]({base}/broken)."
            - title: Slow
              url: {base}/slow
              summary: Slow.
            - title: No HEAD here
              url: {base}/no-head
              summary: Refuses HEAD, answers GET.
            - title: Nobody there
              url: {dead}/
              summary: Unreachable.
        more:
          - title: Redirected
            url: {base}/moved
        """)


def test_check_links_reports_each_broken_link_at_its_line_and_redirects_as_notes(ws, site) -> None:
    configure(ws)
    dead = f"http://127.0.0.1:{free_port()}"
    links_issue(ws, site.base, dead)
    started = time.monotonic()
    result = ws.run("check", "--links", "issues/001.yaml")
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    base = site.base
    lines = result.stderr.splitlines()
    unreachable = f"issues/001.yaml:22:12: sections.featured[4].url: {dead}/ cannot be reached ("
    assert lines[5].startswith(unreachable)  # then the reason, in the words of the system
    lines[5] = unreachable
    assert lines[:-1] == [
        f"issues/001.yaml:6:5: highlights[0]: {base}/missing is broken: 404 Not Found",
        f"issues/001.yaml:6:5: note: highlights[0]: {base}/moved redirects to {base}/ok",
        f"issues/001.yaml:13:12: sections.featured[1].url: {base}/missing is broken: 404 Not Found",
        f"issues/001.yaml:14:16: sections.featured[1].summary: {base}/broken is broken: 500 Internal Server Error",
        f"issues/001.yaml:16:12: sections.featured[2].url: {base}/slow did not answer within {TIMEOUT:g} s",
        unreachable,
        f"issues/001.yaml:26:10: note: more[0].url: {base}/moved redirects to {base}/ok",
    ]
    assert lines[-1] == "issues/001.yaml: 7 link(s) fetched, 5 broken, 2 redirected"
    assert "ok" not in result.stdout
    assert took < SLOW_SECONDS + 2  # the slow page was given up on, not waited for

    agents = {agent for _, _, agent in site.seen}
    assert agents == {Enrich().user_agent}
    asked = [(method, path) for method, path, _ in site.seen]
    assert ("HEAD", "/ok") in asked and ("GET", "/ok") not in asked  # HEAD was enough
    assert ("HEAD", "/no-head") in asked and ("GET", "/no-head") in asked  # 405 to HEAD: GET settles it
    assert site.most <= 2  # at most two requests at once to one host


def test_check_links_of_a_clean_issue_exits_0(ws, site) -> None:
    configure(ws)
    ws.issue(body=f"sections:\n  featured:\n    - title: T\n      url: {site.base}/ok\n      summary: |\n"
                  f"        Also [this]({site.base}/no-head).\n")
    result = ws.run("check", "--links", "issues/001.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout == "issues/001.yaml: ok\n"
    assert result.stderr == "issues/001.yaml: 2 link(s) fetched, 0 broken, 0 redirected\n"


def test_check_without_links_fetches_nothing(ws, site) -> None:
    configure(ws)
    links_issue(ws, site.base, site.base)
    assert ws.run("check", "issues/001.yaml").exit_code == 0
    assert site.seen == []


@pytest.fixture
def sending(ws, smtp, secret, site):
    configure(ws, smtp_config(smtp.port) + "links: {check_on_send: true, check_hosted: false}\n")
    assert ws.run("subscribers", "add", "ada@example.com").exit_code == 0
    return ws


def test_send_with_check_on_send_and_a_broken_link_sends_nothing(sending, smtp, site) -> None:
    sending.issue(body=f"sections:\n  featured:\n    - title: T\n      url: {site.base}/missing\n      summary: S\n")
    result = sending.run("send", "--yes", "issues/001.yaml")
    assert result.exit_code == 1
    assert result.stderr == (f"issues/001.yaml:7:12: sections.featured[0].url: {site.base}/missing is broken: "
                             "404 Not Found\n")
    assert smtp.messages == []
    assert "Issue 1: 0 pending, 0 sending, 0 sent" in sending.run("status", "issues/001.yaml").stdout


def test_send_with_check_on_send_and_good_links_sends(sending, smtp, site) -> None:
    sending.issue(body=f"sections:\n  featured:\n    - title: T\n      url: {site.base}/moved\n      summary: S\n")
    result = sending.run("send", "--yes", "issues/001.yaml")
    assert result.exit_code == 0, result.output
    assert [rcpt for rcpt, _ in smtp.messages] == ["ada@example.com"]


def test_a_placeholder_is_a_warning_at_check_and_an_error_at_send(ws, smtp, secret) -> None:
    ws.configure(extra=smtp_config(smtp.port))
    ws.run("subscribers", "add", "ada@example.com")
    ws.issue(body="sections:\n  featured:\n    - title: T\n      url: https://example.com/\n      summary: TODO\n")
    checked = ws.run("check", "issues/001.yaml")
    assert checked.exit_code == 0 and "ok (2 warning(s))" in checked.stdout
    result = ws.run("send", "--yes", "issues/001.yaml")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "issues/001.yaml:7:12: sections.featured[0].url: links to example.com, a placeholder address from "
        "`newsletter new`",
        "issues/001.yaml:8:16: sections.featured[0].summary: still says TODO, a placeholder from `newsletter new`",
    ]
    assert smtp.messages == []
    test = ws.run("send", "issues/001.yaml", "--test", "me@example.org")  # a test copy of a draft is fine
    assert test.exit_code == 0, test.output


def test_links_of_an_issue_are_every_http_link_it_shows(ws) -> None:
    from newsletter.authoring.linkcheck import links_of
    from newsletter.source import load_yaml

    path = ws.write("001.yaml", """\
        number: 1
        date: 2021-10-10
        title: Every kind of link
        intro: "An <https://ml.test/auto> autolink and [mail](mailto:me@ml.test)."
        highlights:
          - "[One](https://ml.test/h1), [two](http://ml.test/h2)"
        sections:
          featured:
            - title: T
              url: https://ml.test/item
              image: {src: "https://ml.test/figure.png", alt: A figure}
              card: {title: C, image: img/figure.png}
              summary: "[Relative](notes.html) is no link; [this](https://ml.test/s) is."
            - title: U
              url: https://ml.test/item2
              image: {src: img/figure.png, alt: A local figure}
              card: {title: C, image: "https://ml.test/thumb.png"}
              summary: S.
        more:
          - {title: M, url: "https://ml.test/more"}
        outro: "Bye, [see you](https://ml.test/outro)."
        """)
    found = [(link.url, ".".join(map(str, link.path))) for link in links_of(load_yaml(path).data)]
    assert found == [
        ("https://ml.test/auto", "intro"),
        ("https://ml.test/h1", "highlights.0"), ("http://ml.test/h2", "highlights.0"),
        ("https://ml.test/item", "sections.featured.0.url"),
        ("https://ml.test/figure.png", "sections.featured.0.image.src"),
        ("https://ml.test/s", "sections.featured.0.summary"),
        ("https://ml.test/item2", "sections.featured.1.url"),
        ("https://ml.test/thumb.png", "sections.featured.1.card.image"),
        ("https://ml.test/more", "more.0.url"),
        ("https://ml.test/outro", "outro"),
    ]
