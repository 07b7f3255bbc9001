"""The confirmation mail of web sign-ups, delivered by a thread of ``serve``, never
inside a request: a request only writes a row (the same work for every address), so
neither the answer nor its timing can tell a subscriber from a stranger, and a slow or
hung relay cannot hold the web server's threads (one-click unsubscribe stays fast).
The thread looks for due rows on its own schedule (every second or so, with jitter),
never woken by a request: its work must not slow the request that comes right after a
stranger's sign-up, which would tell them apart all the same.

A row is ``queued`` until the relay takes the message (``sent``) or refuses it for good
(``failed``); a temporary failure is tried again later with a growing pause.

Several ``serve`` processes (on several hosts sharing a PostgreSQL store) share the
outbox. A worker claims a few due rows at a time (``FOR UPDATE SKIP LOCKED``: a row
another worker is claiming is skipped, never waited for) by moving their ``next_at``
``LEASE`` seconds ahead, so the others see them as not due. Just before each message it
renews the lease of that row, only if the row still carries its own claim; a worker that
stalled past its lease, whose rows another has taken over since, mails none of them.
A worker that dies leaves its rows to be taken over when the lease runs out.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import formatdate, make_msgid

from newsletter.authoring.labels import labels_for
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.db import Database
from newsletter.mailing.store import connect, now, record_event
from newsletter.mailing.tokens import domain_of, list_id, make_expiring_token
from newsletter.mailing.transport import Connection, Delivery, password_for

CONFIRM_HOURS = 48
CONFIRMATION_SENT = "confirmation sent"
ATTEMPTS = 8  # then the row is failed; the visitor may sign up again after the hour
KEEP = 7 * 24 * 3600  # seconds an outbox row is kept (the limits look back one hour)
BATCH = 5  # rows a worker claims at a time
# Due rows that no other worker is claiming become this worker's: their next_at moves to its mark.
CLAIM = """
WITH due AS (
    SELECT id FROM outbox WHERE state = 'queued' AND next_at <= ? ORDER BY id LIMIT ? {skip_locked}
)
UPDATE outbox SET next_at = ? FROM due WHERE outbox.id = due.id
RETURNING outbox.id, outbox.email, outbox.client, outbox.attempts
"""


class Outbox:
    """A thread that delivers queued confirmation mail."""

    def __init__(self, settings: Settings, secret: bytes):
        self.settings = settings
        self.secret = secret
        self.list_id = list_id(settings.name, settings.sender)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="outbox", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop soon; a thread stuck on a hung relay is left behind (it is a daemon)."""
        self.stopping.set()
        self.thread.join(timeout=1)

    def _loop(self) -> None:
        try:
            db = connect(self.settings.subscribers)
        except NewsletterError as e:
            print(f"outbox: {e.message}; no confirmation mail goes out from this process", file=sys.stderr)
            return
        try:
            while not self.stopping.is_set():
                try:
                    worked = self.deliver_due(db)
                except Exception as e:  # the thread must outlive any one failure: say it, go on
                    print(f"outbox: {type(e).__name__}: {e}", file=sys.stderr)
                    worked = False
                if not worked:
                    self.stopping.wait(timeout=random.uniform(0.5, 1.5))
        finally:
            db.close()

    @property
    def lease(self) -> float:
        """Seconds one message may take, with room to spare: a connection, then each of its
        steps may wait ``smtp.timeout``."""
        return 6 * self.settings.smtp.timeout + 60

    def claim(self, db: Database, at: float) -> tuple[float, list[tuple]]:
        """Claim up to ``BATCH`` due rows: (the claim's mark, the rows)."""
        mark = at + self.lease
        with db.transaction():  # SQLite: BEGIN IMMEDIATE, so that two workers take turns
            rows = db.execute(CLAIM.format(skip_locked=db.skip_locked), (at, BATCH, mark)).fetchall()
        return mark, sorted(rows)

    def renew(self, db: Database, row_id: int, mark: float) -> bool:
        """Extend the claim ``mark`` on a row, just before its message goes out; False if
        the row no longer carries it (taken over, or done)."""
        return bool(db.execute("UPDATE outbox SET next_at = ? WHERE id = ? AND state = 'queued' AND next_at = ?",
                               (time.time() + self.lease, row_id, mark)).rowcount)

    def deliver_due(self, db: Database) -> bool:
        """Deliver the rows that are due; True if there were any."""
        at = time.time()
        mark, rows = self.claim(db, at)
        if not rows:
            db.execute("DELETE FROM outbox WHERE created_at < ?", (at - KEEP,))
            return False
        connection = Connection(self.settings.smtp, self.settings.sender or "", password_for(self.settings.smtp))
        try:
            for n, (row_id, email, client, attempts) in enumerate(rows):
                if self.stopping.is_set():  # the rest is due again at once, for any worker
                    db.executemany("UPDATE outbox SET next_at = ? WHERE id = ? AND next_at = ?",
                                   [(at, left, mark) for left, *_ in rows[n:]])
                    break
                if not self.renew(db, row_id, mark):
                    continue  # this worker stalled past its claim, and another took the row over
                try:
                    delivery = connection.deliver(email, self._message(email))
                except NewsletterError as e:
                    delivery = Delivery("failed", None, e.message)
                with db.transaction():
                    if delivery.status == "sent":
                        db.execute("UPDATE outbox SET state = 'sent', attempts = ?, detail = ? WHERE id = ?",
                                   (attempts + 1, delivery.detail, row_id))
                        record_event(db, email.lower(), now(), CONFIRMATION_SENT, f"web sign-up from {client}")
                    elif delivery.status == "retry" and attempts + 1 < ATTEMPTS:
                        pause = min(self.settings.smtp.backoff * 2 ** attempts, 3600)
                        db.execute("UPDATE outbox SET attempts = ?, next_at = ?, detail = ? WHERE id = ?",
                                   (attempts + 1, time.time() + pause, delivery.detail, row_id))
                    else:
                        db.execute("UPDATE outbox SET state = 'failed', attempts = ?, detail = ? WHERE id = ?",
                                   (attempts + 1, delivery.detail, row_id))
                        print(f"confirmation mail to {email} not sent: {delivery.detail}", file=sys.stderr)
        finally:
            connection.close()
        return True

    def _message(self, email: str) -> bytes:
        s = self.settings
        labels = labels_for(s.lang, s.labels)
        expires = int(time.time()) + CONFIRM_HOURS * 3600
        token = make_expiring_token(self.secret, self.list_id, email, expires)
        base = s.base_url or "http://127.0.0.1:8000"
        message = EmailMessage(policy=SMTP if email.isascii() else SMTPUTF8)
        message["From"] = s.sender or ""
        message["To"] = email
        message["Subject"] = labels["confirm_subject"].format(name=s.name)
        message["Date"] = formatdate(localtime=False, usegmt=False).replace("-0000", "+0000")
        message["Message-ID"] = make_msgid(domain=domain_of(s.sender))
        message["Auto-Submitted"] = "auto-generated"
        body = labels["confirm_body"].format(email=email, name=s.name, hours=CONFIRM_HOURS,
                                             url=f"{base}/confirm?token={token}")
        message.set_content(body + (f"\n\n-- \n{s.postal_address}\n" if s.postal_address else "\n"))
        try:
            return message.as_bytes()
        except (UnicodeError, ValueError) as e:
            raise NewsletterError(f"cannot write a confirmation mail to {email} ({e})") from None
