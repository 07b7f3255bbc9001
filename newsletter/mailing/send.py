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
from newsletter.authoring.linkcheck import check_to_send
from newsletter.authoring.render import Renderer
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing import leases
from newsletter.mailing.bounces import return_path_for
from newsletter.mailing.commits import Writer, journal_error
from newsletter.mailing.dispatch import Dispatch, Progress
from newsletter.mailing.dkim import signer_for
from newsletter.mailing.hosted import check_hosted
from newsletter.mailing.importing import check_address
from newsletter.mailing.journal import Entry, Journal
from newsletter.mailing.personalize import MessageTemplate, Recipient, image_urls
from newsletter.mailing.segments import Segment
from newsletter.mailing.storage import driver_errors
from newsletter.mailing.store import Store
from newsletter.mailing.tokens import domain_of, secret_from_environment
from newsletter.mailing.tracking import LinkBook, tracking_on
from newsletter.mailing.transport import Connection, Delivery, deliver_with_retries, password_for


class Report(NamedTuple):
    """What a run did, and the journal's totals after it."""

    sent: int
    failed: int
    counts: dict[str, int]
    failures: list[Entry]
    unknowns: list[Entry]
    recovered: int  # rows found in `sending` (a killed run) and made unknown
    interrupted: bool = False  # stopped by Ctrl-C, after the messages in flight
    stopped: NewsletterError | None = None  # why the run stopped before the end
    unknown: int = 0  # this run's messages handed over with no answer
    elsewhere: int = 0  # PostgreSQL: pending rows another live sender of the issue holds


def prepare(path: Path, settings: Settings, display: str, subject_prefix: str = "",
            test: bool = False, hosted: bool = True) -> MessageTemplate:
    """Check the setup and the issue, render it once, and build its message template."""
    missing = [key for key, value in (("from", settings.sender), ("postal_address", settings.postal_address))
               if not value]
    if missing:
        raise NewsletterError(f"{settings.file.name}: '{missing[0]}' is required to send",
                              hint="anti-spam laws require a sender and a postal address")
    if not settings.unsubscribe.url and not settings.unsubscribe.mailto:
        raise NewsletterError(f"{settings.file.name}: 'unsubscribe' needs a url or a mailto to send")
    url = settings.unsubscribe.url
    if url and (settings.base_url or "").startswith("https://") and not url.startswith("https://"):
        raise NewsletterError(f"{settings.file.name}: unsubscribe.url must be https, like base_url; without it"
                              " messages go without List-Unsubscribe-Post (one-click), which Gmail and Yahoo"
                              " require of bulk senders")
    secret = secret_from_environment()
    signer = signer_for(settings.dkim)  # an unreadable key stops us here, not at the first message
    # A real send (or its dry run) also refuses placeholders and, with links.check_on_send, broken links.
    issue = check_issue(path, settings.lang, display).issue if test else check_to_send(path, settings, display)
    image_url, attach = image_urls(issue, settings, domain_of(settings.sender))
    book = LinkBook(settings, secret, issue) if tracking_on(settings) else None  # links through serve's /c/
    rendered = Renderer(settings).render(issue, image_url, track=book)
    if hosted:  # the images and web version the email links must answer at base_url
        check_hosted(rendered, settings)
    if book is not None:
        book.save()  # before the first message: every link mailed must find its URL
        if hosted:
            book.check_served()
    template = MessageTemplate(rendered, settings, secret, attach_images=attach, subject_prefix=subject_prefix,
                               test=test)
    if signer is not None:
        template.sign_with(signer)
    template.return_path = return_path_for(settings, secret, template.list_id)
    return template


def send_test(path: Path, settings: Settings, address: str, display: str) -> Delivery:
    """One copy to ``address`` with "[TEST]" before the subject; not journaled."""
    address = check_address(address)
    template = prepare(path, settings, display, subject_prefix="[TEST] ", test=True)  # a Message-ID of its own
    connection = Connection(settings.smtp, settings.sender or "", password_for(settings.smtp))
    connection.open()
    try:
        return deliver_with_retries(connection, address, template.personalize(Recipient(address)), settings.smtp)
    finally:
        connection.close()


def dry_run(path: Path, settings: Settings, out_dir: Path, display: str, limit: int | None = None,
            where: Segment | None = None) -> int:
    """Write every subscriber's message (of the segment ``where``) to ``out_dir`` as .eml;
    send and journal nothing."""
    template = prepare(path, settings, display, hosted=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.subscribers)
    written = 0
    try:
        for subscriber in store.all():
            if subscriber.status != "subscribed" or (where is not None and not where.matches(subscriber)):
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
               retry_unknown: bool = False, retry_failed: bool = False, include_new: bool = False,
               confirm: Callable[[int, int], bool] | None = None, progress: Progress | None = None,
               where: Segment | None = None) -> Report:
    """Send the issue to its audience: every subscriber when the first run starts (and,
    with ``include_new``, those who came since; with ``where``, the segment's readers
    not in it yet), each at most once. ``confirm(issue, count)`` is asked before
    anything is written; False sends nothing."""
    template = prepare(path, settings, display)
    journal = Journal(settings.subscribers, template.issue)
    try:
        return _send(journal, template, settings, limit, retry_unknown, retry_failed, include_new, confirm, progress,
                     where)
    except driver_errors() as e:
        raise journal_error(journal, e) from None
    finally:
        journal.close()


def _send(journal: Journal, template: MessageTemplate, settings: Settings, limit: int | None, retry_unknown: bool,
          retry_failed: bool, include_new: bool, confirm, progress: Progress | None,
          where: Segment | None = None) -> Report:
    journal.acquire()
    try:
        planned = journal.plan(include_new, retry_unknown, retry_failed, where)
        if confirm is not None and planned and not confirm(template.issue, min(planned, limit or planned)):
            return Report(0, 0, journal.counts(), [], [], 0, stopped=NewsletterError("nothing was sent"))
        recovered = journal.begin(include_new, retry_unknown, retry_failed, where)
        todo = min(journal.pending_count(), limit if limit is not None else float("inf"))
        password = password_for(settings.smtp)
        connections = [Connection(settings.smtp, settings.sender or "", password)
                       for _ in range(max(1, min(settings.smtp.connections, todo)))] if todo else []
        if connections:
            connections[0].open()  # a wrong host or a refused login stops us before any message
        writer = Writer(journal)
        run = Dispatch(template, settings.smtp, journal, writer, int(todo), progress)
        interrupted = _run(run, writer, connections)
        writer.close()
        stopped = run.fatal or writer.failure
        if writer.failure is None:
            journal.settle()  # with a failed journal, a rerun settles what is left `sending`
        elsewhere = leases.held_elsewhere(journal.db, journal.issue, journal.me) if journal.shared else 0
        return Report(run.sent, run.failed, journal.counts(), journal.entries("failed"), journal.entries("unknown"),
                      recovered, interrupted, stopped, run.unknown, elsewhere)
    finally:
        try:
            journal.release()
        except driver_errors():  # a full disk: the lock names a process that is gone, which the next run sees
            pass


def _run(run: Dispatch, writer: Writer, connections: list[Connection]) -> bool:
    """Start a thread per connection and wait for them all; True if Ctrl-C stopped it."""
    finished = threading.Semaphore(0)

    def work(connection: Connection) -> None:
        try:
            run.work(connection)
        finally:
            finished.release()

    for n, connection in enumerate(connections):
        threading.Thread(target=work, args=(connection,), name=f"smtp-{n}", daemon=True).start()
    interrupted = False
    for _ in connections:
        # A semaphore, not Thread.join: a join interrupted by Ctrl-C can take a live thread
        # for finished (CPython 3.11). Short waits let Ctrl-C through and the heartbeat on.
        while True:
            try:
                if finished.acquire(timeout=0.2):
                    break
                writer.beat()
            except KeyboardInterrupt:  # stop handing out readers; let the messages in flight finish
                interrupted = True
                run.stop()
    return interrupted
