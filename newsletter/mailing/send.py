"""``newsletter send``: render once, then for each subscriber personalize, deliver and
journal, over ``smtp.connections`` connections under a global ``smtp.rate``.

Everything that can be wrong with the setup (no sender, no postal address, no signing
key, an invalid issue, an unreachable server, a refused login) is found before the first
message is handed over.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from newsletter.authoring.check import check_issue
from newsletter.authoring.render import Renderer
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.importing import check_address
from newsletter.mailing.journal import Entry, Journal, Outcome
from newsletter.mailing.personalize import MessageTemplate, Recipient, image_urls
from newsletter.mailing.store import Store
from newsletter.mailing.tokens import domain_of, secret_from_environment
from newsletter.mailing.transport import (
    Connection,
    ConnectionLost,
    Delivery,
    RateLimiter,
    deliver_with_retries,
    password_for,
)

Progress = Callable[[int, int], None]  # (done this run, to do this run)


class Report(NamedTuple):
    """What a run did, and the journal's totals after it."""

    sent: int
    failed: int
    counts: dict[str, int]
    failures: list[Entry]
    unknowns: list[Entry]
    recovered: int  # rows found in `sending` (a killed run) and made unknown
    interrupted: bool = False  # stopped by Ctrl-C, after the messages in flight


def prepare(path: Path, settings: Settings, display: str, subject_prefix: str = "") -> MessageTemplate:
    """Check the setup and the issue, render it once, and build its message template."""
    missing = [key for key, value in (("from", settings.sender), ("postal_address", settings.postal_address))
               if not value]
    if missing:
        raise NewsletterError(f"{settings.file.name}: '{missing[0]}' is required to send",
                              hint="anti-spam laws require a sender and a postal address")
    if not settings.unsubscribe.url and not settings.unsubscribe.mailto:
        raise NewsletterError(f"{settings.file.name}: 'unsubscribe' needs a url or a mailto to send")
    secret = secret_from_environment()
    issue = check_issue(path, settings.lang, display).issue
    image_url, attach = image_urls(issue, settings, domain_of(settings.sender))
    rendered = Renderer(settings).render(issue, image_url)
    return MessageTemplate(rendered, settings, secret, attach_images=attach, subject_prefix=subject_prefix)


def send_test(path: Path, settings: Settings, address: str, display: str) -> Delivery:
    """One copy to ``address`` with "[TEST]" before the subject; not journaled."""
    address = check_address(address)
    template = prepare(path, settings, display, subject_prefix="[TEST] ")
    connection = Connection(settings.smtp, settings.sender or "", password_for(settings.smtp))
    connection.open()
    try:
        return deliver_with_retries(connection, address, template.personalize(Recipient(address)), settings.smtp)
    finally:
        connection.close()


def dry_run(path: Path, settings: Settings, out_dir: Path, display: str, limit: int | None = None) -> int:
    """Write every subscriber's message to ``out_dir`` as .eml; send and journal nothing."""
    template = prepare(path, settings, display)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.subscribers)
    written = 0
    try:
        for subscriber in store.all():
            if subscriber.status != "subscribed":
                continue
            if limit is not None and written >= limit:
                break
            written += 1
            message = template.personalize(Recipient(subscriber.email, subscriber.name, subscriber.fields))
            safe = re.sub(r"[^A-Za-z0-9@._-]+", "_", subscriber.email)
            (out_dir / f"{written:05d}-{safe}.eml").write_bytes(message)
    finally:
        store.close()
    return written


def send_issue(path: Path, settings: Settings, display: str, *, limit: int | None = None,
               retry_unknown: bool = False, progress: Progress | None = None) -> Report:
    """Send the issue to every subscribed address the journal has not seen it go to."""
    template = prepare(path, settings, display)
    issue = template.issue
    journal = Journal(settings.subscribers, issue)
    recovered = journal.open_run(retry_unknown)
    todo = journal.pending_count()
    if limit is not None:
        todo = min(todo, limit)
    password = password_for(settings.smtp)
    first = Connection(settings.smtp, settings.sender or "", password)
    if todo:
        first.open()  # a wrong host or a refused login stops us before any message
    run = _Run(template, settings, journal.path, issue, todo, RateLimiter(settings.smtp.rate), progress)
    workers = [threading.Thread(target=run.work, args=(first if n == 0 else
                                                       Connection(settings.smtp, settings.sender or "", password),),
                                name=f"smtp-{n}", daemon=True)
               for n in range(max(1, min(settings.smtp.connections, todo)))] if todo else []
    for w in workers:
        w.start()
    interrupted = False
    try:
        run.wait_done(len(workers))
    except KeyboardInterrupt:  # stop claiming; let the messages in flight finish
        interrupted = True
        run.stop()
        run.wait_done(len(workers))
    first.close()
    journal.settle()
    if run.fatal is not None:
        raise run.fatal
    report = Report(run.sent, run.failed, journal.counts(), journal.entries("failed"), journal.entries("unknown"),
                    recovered, interrupted)
    journal.close()
    return report


class _Run:
    """State shared by the worker threads of one send."""

    def __init__(self, template: MessageTemplate, settings: Settings, db: Path, issue: int, todo: int,
                 rate: RateLimiter, progress: Progress | None):
        self.template, self.settings, self.db, self.issue = template, settings, db, issue
        self.todo, self.rate, self.progress = todo, rate, progress
        self.lock = threading.Lock()
        self.claimed = self.sent = self.failed = 0
        self.fatal: NewsletterError | None = None
        self.stopping = False
        self.finished = threading.Semaphore(0)  # released once by each worker as it ends

    def stop(self) -> None:
        with self.lock:
            self.stopping = True

    def wait_done(self, workers: int) -> None:
        """Wait until every worker has finished. A semaphore, not Thread.join: a join
        interrupted by Ctrl-C can take a live thread for finished (CPython 3.11)."""
        for _ in range(workers):
            while not self.finished.acquire(timeout=0.2):  # short waits let Ctrl-C through
                pass

    def _may_claim(self) -> bool:
        with self.lock:
            if self.fatal is not None or self.stopping or self.claimed >= self.todo:
                return False
            self.claimed += 1
            return True

    def _done(self, delivery: Delivery) -> None:
        with self.lock:
            if delivery.status == "sent":
                self.sent += 1
            else:
                self.failed += 1
            done = self.sent + self.failed
        if self.progress:
            self.progress(done, self.todo)

    def work(self, connection: Connection) -> None:
        journal = Journal(self.db, self.issue)
        done: Outcome | None = None
        try:
            while True:
                claimed = journal.advance(done, claim=self._may_claim())
                done = None
                if claimed is None:
                    return
                key, recipient = claimed
                message = self.template.personalize(recipient)
                self.rate.wait()
                try:
                    delivery = deliver_with_retries(connection, recipient.email, message, self.settings.smtp)
                except NewsletterError as e:  # the server went away for good, or refused our login
                    if not (isinstance(e, ConnectionLost) and e.handed):
                        journal.release(key)  # never handed over: still pending
                    with self.lock:  # a handed one stays `sending` and is settled as unknown
                        self.fatal = self.fatal or e
                    return
                done = Outcome(key, delivery)
                self._done(delivery)
        finally:
            try:
                if done is not None:
                    journal.advance(done, claim=False)
                journal.close()
                connection.close()
            finally:
                self.finished.release()
