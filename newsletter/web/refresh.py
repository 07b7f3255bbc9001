"""``newsletter serve`` keeps its archive current: a thread builds it (incrementally, see
``archive``) right after the server starts, serving what ``site/`` holds meanwhile, then
every ``interval`` seconds, so an issue published (sent, or ``newsletter publish``) or
edited shows up without a restart. An unchanged build costs a few thousand stat() calls.
A build that fails (an invalid issue, a store that cannot be reached) is reported once
and the site stays as it was. A PostgreSQL store is read through one pool kept open,
not one opened every second."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.db import Database
from newsletter.mailing.dialects import is_url
from newsletter.mailing.storage import open_existing
from newsletter.web.archive import build_archive
from newsletter.web.published import published_issues


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
        self.db: Database | None = None  # PostgreSQL's store, once it has one

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="archive-refresh", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        if self.db is not None:
            self.db.close()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.refresh()
            self.stopping.wait(self.interval)

    def refresh(self) -> None:
        try:
            changed = build_archive(self.settings, self.site, self._published())
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

    def _published(self) -> set[int] | None:
        """The published issues; None: ``build_archive`` reads them (from a SQLite file)."""
        if not is_url(self.settings.subscribers):
            return None
        self.db = self.db or open_existing(self.settings.subscribers)
        return set() if self.db is None else published_issues(self.settings, self.db)
