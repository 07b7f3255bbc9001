"""``newsletter serve`` keeps its archive current: a thread builds it (incrementally, see
``archive``) right after the server starts, serving what ``site/`` holds meanwhile, then
every ``interval`` seconds, so an issue published (sent, or ``newsletter publish``) or
edited shows up without a restart. An unchanged build costs a few thousand stat() calls.
A build that fails (an invalid issue) is reported once and the site stays as it was."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.web.archive import build_archive


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Refresher:
    def __init__(self, settings: Settings, site: Path, interval: float = 1.0,
                 log: Callable[[str], None] = _stderr):
        self.settings, self.site, self.interval, self.log = settings, site, interval, log
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.builds = 0  # finished builds, for tests
        self.last_error: str | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="archive-refresh", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=30)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.refresh()
            self.stopping.wait(self.interval)

    def refresh(self) -> None:
        try:
            changed = build_archive(self.settings, self.site)
        except NewsletterError as e:
            message = "\n".join(e.lines())
            if message != self.last_error:
                self.log(f"archive not updated:\n{message}")
            self.last_error = message
        except Exception as e:  # noqa: BLE001 (the server keeps serving what it has)
            self.log(f"archive not updated: {type(e).__name__}: {e}")
        else:
            if changed:
                self.log(f"archive updated: {len(changed)} file(s)")
            self.last_error = None
        self.builds += 1
