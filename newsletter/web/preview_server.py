"""The preview's HTTP side: who may ask, and what is served.

A page on another site can point its own name at 127.0.0.1 (DNS rebinding) and then
talk to this server as a same-origin page would, Host and Origin headers included. So:

- every request whose Host is not 127.0.0.1, localhost or [::1] with our port is refused
  before any route runs (a rebound name can never be one of these);
- "Send test" also needs a secret drawn at start and written into the page, which only a
  page loaded through an accepted Host can read;
- from disk, only the image files the issue references are served.
"""

from __future__ import annotations

import hmac
import html
import json
import re
import secrets
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from newsletter.web.preview import Preview

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_HEADER = "X-Preview-Token"
_TOKEN_SLOT = "__PREVIEW_TOKEN__"
_DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")
_IMAGE_KINDS = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
                (b"GIF89a", "image/gif"))


def loopback_hosts(port: int) -> frozenset[str]:
    """The Host values a browser sends for this server: a loopback name and our port."""
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == 80:  # browsers leave the default port out
        hosts.update(LOOPBACK_NAMES)
    return frozenset(hosts)


def _image_type(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _IMAGE_KINDS if data.startswith(magic)), None)


def _page(name: str) -> str:
    return resources.files("newsletter.web").joinpath("ui", name).read_text("utf-8")


class PreviewServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 that knows its preview, Hosts and secret."""

    daemon_threads = True

    def __init__(self, port: int, preview: Preview):
        super().__init__(("127.0.0.1", port), Handler)
        self.preview = preview
        self.hosts = loopback_hosts(self.server_address[1])
        self.origins = frozenset(f"http://{host}" for host in self.hosts)
        self.token = secrets.token_urlsafe(32)  # per run: a page from an earlier run must reload

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that went away mid-answer (a reload while an image was sent) is not an
        error worth a traceback in the author's terminal; anything else still is."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """Routes: / (the page), /state, /events (SSE), /view/{email,text,web}, images, POST /send-test."""

    server: PreviewServer
    server_version = "newsletter-preview"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the author's
        pass

    def parse_request(self) -> bool:
        """The Host check, for every method and path, before any route runs."""
        if not super().parse_request():
            return False
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0].strip().lower() not in self.server.hosts:
            self.refuse(HTTPStatus.FORBIDDEN, f"Unknown Host: open http://127.0.0.1:{self.server.server_address[1]}/")
            return False
        return True

    def refuse(self, status: HTTPStatus, message: str | None = None) -> None:
        self.close_connection = True  # a refused request's body stays unread
        self.send_error(status, message)

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        url = urlsplit(self.path)
        snap = self.server.preview.snapshot
        if url.path == "/":
            page = _page("preview.html").replace(_TOKEN_SLOT, html.escape(self.server.token))
            self.send(page.encode("utf-8"), "text/html; charset=utf-8")
        elif url.path == "/state":
            self.send(json.dumps(snap.state).encode(), "application/json")
        elif url.path == "/events":
            self.events()
        elif url.path == "/view/email":
            dark = parse_qs(url.query).get("dark") == ["1"]
            email = _DARK_QUERY.sub("@media all", snap.email) if dark else snap.email
            self.send(email.encode("utf-8"), "text/html; charset=utf-8")
        elif url.path == "/view/web":
            self.send(snap.web.encode("utf-8"), "text/html; charset=utf-8")
        elif url.path == "/view/text":
            page = _page("text.html").replace("{text}", html.escape(snap.text))
            self.send(page.encode("utf-8"), "text/html; charset=utf-8")
        else:
            # Images resolve from /view/ (the frame's first URL) or, once the page rewrites
            # the frame in place (document.open), from "/": the page's own URL.
            self.image(unquote(url.path.removeprefix("/view/").removeprefix("/")))

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        """POST /send-test {"address": ...}: one copy, exactly as `newsletter send --test`."""
        if urlsplit(self.path).path != "/send-test":
            self.refuse(HTTPStatus.NOT_FOUND)
            return
        # The secret is what counts; the JSON type and the Origin (when a browser sends
        # one) are kept as a second lock: both make other sites' requests fail in the browser.
        origin = self.headers.get("Origin")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        given = self.headers.get(TOKEN_HEADER, "").encode("utf-8", "surrogatepass")
        if (kind != "application/json" or (origin is not None and origin.lower() not in self.server.origins)
                or not hmac.compare_digest(given, self.server.token.encode())):
            self.refuse(HTTPStatus.FORBIDDEN, "Refused: reload the preview page and try again")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 <= length <= 10_000:
                raise ValueError(length)
            address = str(json.loads(self.rfile.read(length)).get("address", ""))
        except (ValueError, AttributeError):
            self.refuse(HTTPStatus.BAD_REQUEST)
            return
        self.send(json.dumps(self.server.preview.send_test(address)).encode(), "application/json")

    def end_headers(self) -> None:
        # Only our own page may frame these (no clickjacking of "Send test").
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.send_header("Content-Security-Policy", "frame-ancestors 'self'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def send(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def image(self, src: str) -> None:
        """An image the issue references, by the src it is written with; nothing else."""
        file = self.server.preview.snapshot.images.get(src)
        data = None
        if file is not None:
            folder = self.server.preview.issue.parent.resolve()
            path = file.resolve()  # again now: the file may have become a symlink since the build
            if path.is_relative_to(folder) and path.is_file():
                try:
                    data = path.read_bytes()
                except OSError:
                    data = None
        kind = _image_type(data or b"")
        if data is None or kind is None:
            self.refuse(HTTPStatus.NOT_FOUND)
            return
        self.send(data, kind)

    def events(self) -> None:
        """Server-sent events: the state now, then again after every rebuild."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        preview, version = self.server.preview, 0
        try:
            while not preview.stopping.is_set():
                snap = preview.wait_newer(version, timeout=15)
                if snap.version > version:
                    version = snap.version
                    self.wfile.write(f"data: {json.dumps(snap.state)}\n\n".encode())
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

