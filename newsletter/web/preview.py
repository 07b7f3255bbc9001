"""``newsletter preview``: build, watch, push. A small server on 127.0.0.1 shows the issue
as subscribers will see it and, over server-sent events, tells the open page to update
each time the issue, newsletter.yaml or a layout is saved.

Like mkdocs' ``serve``: the builder is a closure that never raises; a failed rebuild
becomes the page's error panel and the server keeps serving. The HTTP side, and who may
use it, is in ``preview_server``.
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from newsletter.authoring.build import preview_values, review_issue
from newsletter.authoring.render import GMAIL_CLIP_BYTES, Renderer
from newsletter.config import load_settings
from newsletter.errors import NewsletterError

POLL_SECONDS = 0.05  # stat() of a dozen files 20 times a second costs next to nothing


class Snapshot(NamedTuple):
    """What the page shows after one build: the parts, or the errors instead."""

    version: int
    state: dict[str, Any]
    email: str = ""
    text: str = ""
    web: str = ""
    images: Mapping[str, Path] = MappingProxyType({})  # src as the browser asks for it -> file


def failure(where: str, error: BaseException) -> list[str]:
    """An unexpected exception as one line for the error panel."""
    if isinstance(error, RecursionError):
        return [f"{where}: the file nests too deeply (lists or mappings hundreds of levels inside "
                "each other); flatten it and save again"]
    text = str(error).strip()
    return [f"{where}: {type(error).__name__}" + (f": {text}" if text else "")]


def build_snapshot(issue: Path, config: Path, version: int, display: str) -> Snapshot:
    """Check and render the issue; problems become the snapshot's errors, never exceptions."""
    state: dict[str, Any] = {"version": version, "issue": display, "errors": [], "warnings": []}
    where = _shown(config)
    try:
        settings = load_settings(config)
        where = display
        reviewed = review_issue(issue, settings, Renderer(settings), display=display)
        rendered = reviewed.rendered
        email, text = rendered.fill(preview_values(settings))
    except NewsletterError as e:
        state["errors"] = e.lines()
        return Snapshot(version, state)
    except Exception as e:  # any bug or odd file: shown on the page, so a save can heal it
        state["errors"] = failure(where, e)
        return Snapshot(version, state)
    sender = settings.sender or settings.name
    state.update(
        name=settings.name,
        sender=sender.split("<")[0].strip().strip('"') or sender,
        subject=rendered.subject,
        preheader=rendered.preheader,
        size=len(email.encode("utf-8")),
        limit=GMAIL_CLIP_BYTES,
        warnings=[str(w) for w in reviewed.warnings],
    )
    # Browsers fold "./" and "a/../" out of a URL before asking, so the keys are folded too.
    images = {posixpath.normpath(i.src): i.file for i in rendered.issue.images if i.file is not None}
    return Snapshot(version, state, email, text, rendered.web, MappingProxyType(images))


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def watched_files(issue: Path, config: Path) -> list[Path]:
    """The files whose change means a rebuild: the issue, the config, every layout."""
    files = [issue, config]
    layouts = config.parent / "layouts"
    try:
        layouts = load_settings(config).layouts
    except Exception:  # a broken config: its rebuild reports it; watch the default folder
        pass
    try:
        if layouts.is_dir():
            files += sorted(p for p in layouts.rglob("*") if p.is_file())
    except OSError:
        pass
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

    def publish(self, snapshot: Snapshot) -> None:
        with self.changed:
            self.snapshot = snapshot
            self.changed.notify_all()

    def rebuild(self) -> None:
        self.publish(build_snapshot(self.issue, self.config, self.snapshot.version + 1, self.display))

    def watch(self) -> None:
        """Poll the watched files' stat(); rebuild when any of them changes. Never dies:
        whatever goes wrong is shown on the page, and the next save tries again."""
        files: list[Path] | None = None
        last: tuple | None = None
        while True:
            try:
                if files is None:
                    files = watched_files(self.issue, self.config)
                    last = _stamp(files)
                elif (now := _stamp(files)) != last:
                    last = now
                    self.rebuild()
                    # A layout may have been added; no new stamp here, so that a save made
                    # during the rebuild is seen on the next tick instead of lost.
                    files = watched_files(self.issue, self.config)
            except Exception as e:  # the thread must outlive any bug: a dead watcher is a stale page
                state = {"version": self.snapshot.version + 1, "issue": self.display,
                         "errors": failure(self.display, e), "warnings": []}
                self.publish(Snapshot(state["version"], state))
                files = files or [self.issue, self.config]
            if self.stopping.wait(POLL_SECONDS):
                return

    def send_test(self, address: str) -> dict[str, Any]:
        """Mail one test copy of the issue as it is on disk now."""
        from newsletter.mailing.send import send_test

        try:
            delivery = send_test(self.issue, load_settings(self.config), address, self.display)
        except NewsletterError as e:
            return {"ok": False, "message": "\n".join(e.lines())}
        except Exception as e:  # the author sees why in the page; the server stays up
            return {"ok": False, "message": "\n".join(failure(self.display, e))}
        ok = delivery.status == "sent"
        return {"ok": ok, "message": f"Test copy sent to {address}." if ok else f"Not sent: {delivery.detail}"}

    def wait_newer(self, version: int, timeout: float) -> Snapshot:
        with self.changed:
            self.changed.wait_for(lambda: self.snapshot.version > version or self.stopping.is_set(), timeout)
            return self.snapshot


def serve_preview(issue: Path, config: Path, port: int, ready: Callable[[str], None] | None = None,
                  display: str | None = None) -> None:
    """Serve the preview on 127.0.0.1:``port`` until interrupted (Ctrl-C)."""
    from newsletter.web.preview_server import PreviewServer

    if not issue.is_file():
        raise NewsletterError(f"{display or issue}: no such file")
    preview = Preview(issue, config, display or str(issue))
    try:
        server = PreviewServer(port, preview)
    except OSError as e:
        raise NewsletterError(f"127.0.0.1:{port} is busy ({e.strerror})", hint="pass --port N") from None
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
