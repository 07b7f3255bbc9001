"""`newsletter preview` as an attacker meets it: DNS rebinding, path traversal, and a
"Send test" without the page's secret. Each test starts the real server (a subprocess)
on a free port and speaks raw HTTP to it, with the Host, Origin and paths an attacker's
page or tool would send."""

from __future__ import annotations

import http.client
import json
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from newsletter.ports import free_port, wait_for_port

from support import REPO, smtp_config

TOKEN = re.compile(r'<meta name="preview-token" content="([^"]+)">')
IMAGES = ["scaling-curves.png", "pass-tiles.png", "patchcore-bars.png", "mobilevit-blocks.png"]


class Preview:
    """`newsletter preview issues/033.yaml` on a free port, and raw requests to it."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "preview", "issues/033.yaml", "--port", str(self.port)],
            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:  # say why: a crash, a busy port
            self.process.kill()
            raise AssertionError(self.process.communicate()[1]) from None

    def request(self, method: str, path: str, host: str | None = None, body: bytes | None = None,
                **headers: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            # With a Host among the headers, http.client sends it instead of its own.
            connection.request(method, path, body, {"Host": self.host if host is None else host, **headers})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def token(self) -> str:
        status, page = self.request("GET", "/")
        assert status == 200
        return TOKEN.search(page.decode()).group(1)

    def send_test(self, address: str, host: str | None = None, **headers: str) -> tuple[int, bytes]:
        body = json.dumps({"address": address}).encode()
        return self.request("POST", "/send-test", host, body, **{"Content-Type": "application/json", **headers})

    def raw(self, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # the whole request is sent: the server reads to its end
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        return self.process.communicate(timeout=10)[1]


@pytest.fixture
def workspace(tmp_path: Path, smtp, secret) -> Path:
    """The sample issues, with secrets beside and above them, and a relay for test copies."""
    shutil.copytree(REPO / "issues", tmp_path / "issues")
    shutil.copytree(REPO / "layouts", tmp_path / "layouts")
    config = (REPO / "newsletter.yaml").read_text("utf-8") + smtp_config(smtp.port)
    config += "links: {check_hosted: false}\n"  # its base_url (127.0.0.1:8000) has no server here
    (tmp_path / "newsletter.yaml").write_text(config, "utf-8")
    img = tmp_path / "issues" / "img"
    (tmp_path / "issues" / "secret.txt").write_bytes(b"SECRET-NEXT-TO-THE-ISSUE " + secrets.token_bytes(16))
    (tmp_path / "outside.txt").write_bytes(b"SECRET-OUTSIDE-THE-FOLDER " + secrets.token_bytes(16))
    # A real PNG nobody references: an image, in the folder, and still not to be served.
    (img / "unreferenced.png").write_bytes((img / "pass-tiles.png").read_bytes() + b"SECRET-UNREFERENCED")
    (img / "inside-link.png").symlink_to("../secret.txt")
    (img / "outside-link.png").symlink_to("../../outside.txt")
    return tmp_path


@pytest.fixture
def preview(workspace: Path):
    server = Preview(workspace)
    yield server
    if server.process.poll() is None:
        assert "Traceback" not in server.stop()


def secrets_in(workspace: Path) -> list[bytes]:
    """What must never come back: the secret files, and the raw YAML of both issues."""
    return [(workspace / "issues" / "secret.txt").read_bytes(), (workspace / "outside.txt").read_bytes(),
            b"SECRET-UNREFERENCED", b"yaml-language-server", b"number: 34", "慢下来".encode()]


def test_a_rebound_host_is_refused_on_every_path_and_mails_nothing(preview: Preview, workspace: Path, smtp) -> None:
    token = preview.token()  # even holding the secret, a foreign Host gets nothing
    port = preview.port
    hosts = [f"evil.example:{port}", "attacker.com", f"attacker.com:{port}", f"127.0.0.1.attacker.com:{port}",
             f"localhost.attacker.com:{port}", f"localhost:{port}.attacker.com", f"127.0.0.1:{port + 1}",
             "127.0.0.1", "localhost", f"127.0.0.2:{port}", f"0.0.0.0:{port}", f"[::ffff:127.0.0.1]:{port}",
             f"localhost.:{port}", ""]
    gets = ["/", "/state", "/events", "/view/email", "/view/email?dark=1", "/view/text", "/view/web",
            "/view/img/pass-tiles.png", "/img/pass-tiles.png", "/view/img/../034.yaml", "/nowhere"]
    for host in hosts:
        answers = [preview.request("GET", path, host) for path in gets]
        # What the rebinding page sends (its Origin matching its Host), then the same with the secret.
        answers.append(preview.send_test("victim@example.org", host, Origin=f"http://{host}"))
        answers.append(preview.send_test("victim@example.org", host, Origin=f"http://{host}",
                                         **{"X-Preview-Token": token}))
        answers += [preview.request(method, "/", host) for method in ("HEAD", "OPTIONS", "PUT", "DELETE")]
        for status, body in answers:
            assert status == 403, (host, status)
            for leak in [token.encode(), b"Akira", b"\x89PNG", b'"version"', *secrets_in(workspace)]:
                assert leak not in body
    assert smtp.received() == []
    # The Host must be one header, not a list an attacker can append to.
    assert preview.raw(f"GET /state HTTP/1.1\r\nHost: {preview.host}\r\nHost: evil.example\r\n\r\n".encode()
                       ).startswith(b"HTTP/1.0 403")
    # No Host at all (HTTP/1.0, or HTTP/0.9 with no headers): refused too.
    assert preview.raw(b"GET /state HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 403")
    assert b'"version"' not in preview.raw(b"GET /state\r\n")


def test_the_loopback_names_with_our_port_are_served(preview: Preview) -> None:
    for host in (f"127.0.0.1:{preview.port}", f"localhost:{preview.port}", f"LocalHost:{preview.port}",
                 f"[::1]:{preview.port}"):
        assert preview.request("GET", "/state", host)[0] == 200
        status, page = preview.request("GET", "/", host)
        assert status == 200 and TOKEN.search(page.decode())


def test_only_images_the_issue_references_are_served(preview: Preview, workspace: Path) -> None:
    for name in IMAGES:
        for path in (f"/view/img/{name}", f"/img/{name}"):
            status, body = preview.request("GET", path)
            assert (status, body) == (200, (workspace / "issues" / "img" / name).read_bytes())
    # In the folder, even real images, but not in the issue: never served.
    for path in ("/view/img/unreferenced.png", "/view/img/inside-link.png", "/view/img/outside-link.png",
                 "/view/secret.txt", "/view/033.yaml", "/view/034.yaml", "/033.yaml", "/secret.txt"):
        status, body = preview.request("GET", path)
        assert status == 404, path
        assert not any(leak in body for leak in secrets_in(workspace))


def test_traversal_in_any_encoding_never_returns_a_file(preview: Preview, workspace: Path) -> None:
    ups = ["../", "..%2f", "..%2F", "%2e%2e/", "%2e%2e%2f", "%2E%2E%2F", ".%2e/", "%2e./", "%252e%252e%252f",
           "..\\", "..%5c", "%2e%2e%5c", "....//", "..;/", "%c0%ae%c0%ae/", "%ef%bc%8e%ef%bc%8e/", "..%00/",
           "%2e%2e%c0%af", "/../"]
    targets = ["secret.txt", "034.yaml", "033.yaml", "outside.txt", "issues/secret.txt", "etc/passwd"]
    paths = [prefix + up * depth + target for prefix in ("/view/img/", "/img/", "/view/", "/")
             for up in ups for depth in (1, 2, 3, 8) for target in targets]
    secret_file = workspace / "issues" / "secret.txt"
    for absolute in (str(secret_file), str(workspace / "outside.txt"), "/etc/passwd"):
        paths += [f"/view/img/{absolute}", f"/view/img/{quote(absolute, safe='')}", f"/{absolute}",
                  f"/view/{quote(absolute, safe='')}", f"/view/img/file:{absolute}"]
    paths += ["/view/img/secret.txt%00.png", "/view/img/pass-tiles.png/../../secret.txt",
              f"http://{preview.host}/view/img/../secret.txt", f"http://{preview.host}/view/img/../../outside.txt"]
    for path in paths:
        status, body = preview.request("GET", path)
        assert status in (403, 404), (path, status)
        assert not any(leak in body for leak in secrets_in(workspace)), path


def test_a_referenced_image_swapped_for_a_link_is_not_followed(preview: Preview, workspace: Path) -> None:
    # The watcher does not rebuild for an image, so the issue still names these files:
    # what they point to now is checked on every request.
    img = workspace / "issues" / "img"
    (img / "pass-tiles.png").unlink()
    (img / "pass-tiles.png").symlink_to("../../outside.txt")
    (img / "patchcore-bars.png").unlink()
    (img / "patchcore-bars.png").symlink_to("../034.yaml")
    for path in ("/view/img/pass-tiles.png", "/img/patchcore-bars.png"):
        status, body = preview.request("GET", path)
        assert status == 404
        assert not any(leak in body for leak in secrets_in(workspace))


def test_send_test_needs_this_runs_secret_and_then_mails_exactly_one(preview: Preview, workspace: Path,
                                                                   smtp) -> None:
    token = preview.token()
    assert len(token) >= 32
    origin = f"http://{preview.host}"
    refused = [
        preview.send_test("me@example.org"),
        preview.send_test("me@example.org", Origin=origin),
        preview.send_test("me@example.org", Origin=origin, **{"X-Preview-Token": ""}),
        preview.send_test("me@example.org", Origin=origin, **{"X-Preview-Token": secrets.token_urlsafe(32)}),
        preview.send_test("me@example.org", Origin=origin, **{"X-Preview-Token": token[:-1]}),
        preview.send_test("me@example.org", Origin=origin, **{"X-Preview-Token": token + "x"}),
        preview.send_test("me@example.org", Origin=origin, **{"X-Preview-Token": token.swapcase()}),
        # The secret right, but the request from another site or of a kind forms can send.
        preview.send_test("me@example.org", Origin="https://evil.example", **{"X-Preview-Token": token}),
        preview.send_test("me@example.org", Origin="null", **{"X-Preview-Token": token}),
        preview.request("POST", "/send-test", None, b'{"address": "me@example.org"}',
                        **{"Content-Type": "text/plain", "X-Preview-Token": token}),
        # The secret in the body instead of the header.
        preview.request("POST", "/send-test", None, json.dumps({"address": "me@example.org", "token": token}).encode(),
                        **{"Content-Type": "application/json"}),
    ]
    for status, body in refused:
        assert status == 403
        assert token.encode() not in body
    assert smtp.received() == []
    status, body = preview.send_test("me@example.org", Origin=origin, **{"X-Preview-Token": token})
    assert status == 200
    assert json.loads(body) == {"ok": True, "message": "Test copy sent to me@example.org."}
    ((rcpt, message),) = smtp.received()
    assert rcpt == "me@example.org"
    assert message["Subject"].startswith("[TEST] Akira's Machine Learning News #33")


def test_each_run_draws_its_own_secret(preview: Preview, workspace: Path, smtp) -> None:
    other = Preview(workspace)
    try:
        mine, theirs = preview.token(), other.token()
        assert mine != theirs
        assert other.send_test("me@example.org", **{"X-Preview-Token": mine})[0] == 403
        assert smtp.received() == []
    finally:
        other.stop()
