"""``newsletter preview``: build, watch, push. A small server on 127.0.0.1 shows the issue
as subscribers will see it and, over server-sent events, tells the open page to update
each time the issue, newsletter.yaml or a layout is saved.

Like mkdocs' ``serve``: the builder is a closure that never raises; a failed rebuild
becomes the page's error panel and the server keeps serving.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from newsletter.authoring.build import preview_values, review_issue
from newsletter.authoring.render import GMAIL_CLIP_BYTES, Renderer
from newsletter.config import load_settings
from newsletter.errors import NewsletterError

POLL_SECONDS = 0.05  # stat() of a dozen files 20 times a second costs next to nothing
_DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")


class Snapshot(NamedTuple):
    """What the page shows after one build: the parts, or the errors instead."""

    version: int
    state: dict[str, Any]
    email: str = ""
    text: str = ""
    web: str = ""


def build_snapshot(issue: Path, config: Path, version: int, display: str) -> Snapshot:
    """Check and render the issue; problems become the snapshot's errors, never exceptions."""
    state: dict[str, Any] = {"version": version, "issue": display, "errors": [], "warnings": []}
    try:
        settings = load_settings(config)
        reviewed = review_issue(issue, settings, Renderer(settings), display=display)
    except NewsletterError as e:
        state["errors"] = e.lines()
        return Snapshot(version, state)
    rendered = reviewed.rendered
    email, text = rendered.fill(preview_values(settings))
    sender = settings.sender or settings.name
    state.update(
        name=settings.name,
        sender=sender.split("<")[0].strip().strip('"') or sender,
        subject=rendered.subject,
        preheader=rendered.preheader,
        size=len(email.encode("utf-8")),
        limit=GMAIL_CLIP_BYTES,
        warnings=[str(w) for w in reviewed.warnings],
        images=str(issue.parent),
    )
    return Snapshot(version, state, email, text, rendered.web)


def watched_files(issue: Path, config: Path) -> list[Path]:
    """The files whose change means a rebuild: the issue, the config, every layout."""
    files = [issue, config]
    layouts = config.parent / "layouts"
    try:
        layouts = load_settings(config).layouts
    except NewsletterError:
        pass
    if layouts.is_dir():
        files += sorted(p for p in layouts.rglob("*") if p.is_file())
    return files


def _stamp(files: list[Path]) -> tuple:
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((str(f), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((str(f), None))
    return tuple(out)


class Preview:
    """The current snapshot, rebuilt by a watcher thread; waiters are woken on change."""

    def __init__(self, issue: Path, config: Path, display: str):
        self.issue, self.config, self.display = issue, config, display
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.snapshot = build_snapshot(issue, config, 1, display)

    def rebuild(self) -> None:
        snapshot = build_snapshot(self.issue, self.config, self.snapshot.version + 1, self.display)
        with self.changed:
            self.snapshot = snapshot
            self.changed.notify_all()

    def watch(self) -> None:
        """Poll the watched files' stat(); rebuild when any of them changes."""
        files = watched_files(self.issue, self.config)
        last = _stamp(files)
        while not self.stopping.wait(POLL_SECONDS):
            now = _stamp(files)
            if now != last:
                last = now
                self.rebuild()
                # A layout may have been added; no new stamp here, so that a save made
                # during the rebuild is seen on the next tick instead of lost.
                files = watched_files(self.issue, self.config)

    def send_test(self, address: str) -> dict[str, Any]:
        """Mail one test copy of the issue as it is on disk now."""
        from newsletter.mailing.send import send_test

        try:
            delivery = send_test(self.issue, load_settings(self.config), address, self.display)
        except NewsletterError as e:
            return {"ok": False, "message": "\n".join(e.lines())}
        ok = delivery.status == "sent"
        return {"ok": ok, "message": f"Test copy sent to {address}." if ok else f"Not sent: {delivery.detail}"}

    def wait_newer(self, version: int, timeout: float) -> Snapshot:
        with self.changed:
            self.changed.wait_for(lambda: self.snapshot.version > version or self.stopping.is_set(), timeout)
            return self.snapshot


def _page(name: str) -> bytes:
    return resources.files("newsletter.web").joinpath("ui", name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    """Routes: / (the page), /state, /events (SSE), /view/{email,text,web}, /view/img/..."""

    preview: Preview
    server_version = "newsletter-preview"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal is the author's
        pass

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        url = urlsplit(self.path)
        snap = self.preview.snapshot
        if url.path == "/":
            self.send(_page("preview.html"), "text/html; charset=utf-8")
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
            page = _page("text.html").decode().replace("{text}", html.escape(snap.text))
            self.send(page.encode("utf-8"), "text/html; charset=utf-8")
        elif url.path.startswith(("/view/img/", "/img/")):
            # /img/ too: once the page rewrites the frame in place (document.open), the
            # frame's URL becomes the page's own, and relative image paths resolve from "/".
            self.image(url.path.removeprefix("/view/").removeprefix("/"))
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        """POST /send-test {"address": ...}: one copy, exactly as `newsletter send --test`."""
        if urlsplit(self.path).path != "/send-test":
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        # Only this page may ask: a JSON body forces a CORS preflight on other sites, and
        # the Origin, when a browser sends one, must be ours.
        origin = self.headers.get("Origin")
        host = self.headers.get("Host", "")
        if self.headers.get("Content-Type") != "application/json" or (origin and origin != f"http://{host}"):
            self.send_error(HTTPStatus.FORBIDDEN)
            return
        try:
            length = min(int(self.headers.get("Content-Length", "0")), 10_000)
            address = str(json.loads(self.rfile.read(length)).get("address", ""))
        except (ValueError, AttributeError):
            self.send_error(HTTPStatus.BAD_REQUEST)
            return
        self.send(json.dumps(self.preview.send_test(address)).encode(), "application/json")

    def send(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def image(self, relative: str) -> None:
        folder = self.preview.issue.parent.resolve()
        path = (folder / relative).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        kinds = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                 ".webp": "image/webp"}
        self.send(path.read_bytes(), kinds.get(path.suffix.lower(), "application/octet-stream"))

    def events(self) -> None:
        """Server-sent events: the state now, then again after every rebuild."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        version = 0
        try:
            while not self.preview.stopping.is_set():
                snap = self.preview.wait_newer(version, timeout=15)
                if snap.version > version:
                    version = snap.version
                    self.wfile.write(f"data: {json.dumps(snap.state)}\n\n".encode())
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def serve_preview(issue: Path, config: Path, port: int, ready: Callable[[str], None] | None = None,
                  display: str | None = None) -> None:
    """Serve the preview on 127.0.0.1:``port`` until interrupted (Ctrl-C)."""
    if not issue.is_file():
        raise NewsletterError(f"{display or issue}: no such file")
    preview = Preview(issue, config, display or str(issue))
    handler = type("BoundHandler", (Handler,), {"preview": preview})
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as e:
        raise NewsletterError(f"127.0.0.1:{port} is busy ({e.strerror})", hint="pass --port N") from None
    server.daemon_threads = True
    watcher = threading.Thread(target=preview.watch, name="watcher", daemon=True)
    watcher.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    if ready:
        ready(url)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        preview.stopping.set()
        with preview.changed:
            preview.changed.notify_all()
        server.server_close()
