"""Before a send, every image the email shows from base_url and its web version answer
200 there; otherwise nothing is mailed. ``images: embed`` attaches them instead."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from newsletter.web.archive import build_archive
from newsletter.web.published import published_issues

from support import free_port, smtp_config

BODY = ("sections:\n  featured:\n    - title: T\n      url: https://ml.test/t\n      summary: S\n"
        "      image: {src: img/figure.png, alt: A figure}\n")


@pytest.fixture
def hosting(ws, smtp, secret):
    """A workspace whose base_url is a local static server of its built site/."""
    site = ws.root / "site"
    site.mkdir()
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def configure(extra: str = "") -> None:
        ws.configure(extra=smtp_config(smtp.port) + "links: {check_hosted: true}\n" + extra)
        config = ws.root / "newsletter.yaml"
        config.write_text(config.read_text().replace("https://news.example.com", base))

    configure()
    ws.configure_hosted = configure
    ws.issue("001.yaml", body=BODY)
    ws.run("subscribers", "add", "ada@example.com")
    yield ws
    server.shutdown()
    server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_a_missing_image_refuses_the_send_and_mails_nothing(hosting, smtp) -> None:
    build_archive(hosting.settings, hosting.root / "site")  # the draft's page and images, unlisted
    (hosting.root / "site" / "1" / "img" / "figure.png").unlink()  # a deploy that missed one
    result = hosting.run("send", "--yes", "issues/001.yaml")
    assert result.exit_code != 0
    assert "/1/img/figure.png (404)" in result.output and "newsletter archive" in result.output
    assert smtp.messages == []
    assert hosting.run("send", "--test", "ada@example.com", "issues/001.yaml").exit_code != 0
    assert smtp.messages == []
    assert published_issues(hosting.settings) == set()  # not started: not published


def test_nothing_built_names_the_web_version_too(hosting, smtp) -> None:
    result = hosting.run("send", "--yes", "issues/001.yaml")
    assert result.exit_code != 0 and "2 of 2 URL(s)" in result.output and "/1/ (404)" in result.output
    assert smtp.messages == []


def test_everything_hosted_sends_with_linked_images(hosting, smtp) -> None:
    build_archive(hosting.settings, hosting.root / "site")
    result = hosting.run("send", "--yes", "issues/001.yaml")
    assert result.exit_code == 0, result.output
    ((rcpt, message),) = smtp.received()
    html = message.get_body(("html",)).get_content()
    assert rcpt == "ada@example.com" and "/1/img/figure.png" in html
    assert "image/png" not in [p.get_content_type() for p in message.walk()]


def test_embed_attaches_the_images_and_checks_nothing(hosting, smtp) -> None:
    hosting.configure_hosted("images: embed\n")  # and site/ is empty: nothing answers
    result = hosting.run("send", "--yes", "issues/001.yaml")
    assert result.exit_code == 0, result.output
    ((_, message),) = smtp.received()
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert image.get_content() == (hosting.issues / "img" / "figure.png").read_bytes()
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in message.get_body(("html",)).get_content()


def test_no_server_at_all_refuses(ws, smtp, secret) -> None:
    ws.configure(extra=smtp_config(smtp.port) + "links: {}\n")  # check_hosted: true, the default
    config = ws.root / "newsletter.yaml"
    config.write_text(config.read_text().replace("https://news.example.com", f"http://127.0.0.1:{free_port()}"))
    ws.issue("001.yaml", body=BODY)
    ws.run("subscribers", "add", "ada@example.com")
    result = ws.run("send", "--yes", "issues/001.yaml")
    assert result.exit_code != 0 and "ConnectError" in result.output
    assert smtp.messages == []
