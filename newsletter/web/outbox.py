"""The confirmation mail of web sign-ups, delivered by a thread of ``serve``, never
inside a request: a request only writes a row (the same work for every address), so
neither the answer nor its timing can tell a subscriber from a stranger, and a slow or
hung relay cannot hold the web server's threads (one-click unsubscribe stays fast).
The thread looks for due rows on its own schedule (every second or so, with jitter),
never woken by a request: its work must not slow the request that comes right after a
stranger's sign-up, which would tell them apart all the same.

A row is ``queued`` until the relay takes the message (``sent``) or refuses it for good
(``failed``); a temporary failure is tried again later with a growing pause.
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
from newsletter.mailing.store import connect, now, record_event, transaction
from newsletter.mailing.tokens import domain_of, list_id, make_expiring_token
from newsletter.mailing.transport import Connection, Delivery, password_for

CONFIRM_HOURS = 48
CONFIRMATION_SENT = "confirmation sent"
ATTEMPTS = 8  # then the row is failed; the visitor may sign up again after the hour
KEEP = 7 * 24 * 3600  # seconds an outbox row is kept (the limits look back one hour)


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
        db = connect(self.settings.subscribers)
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

    def deliver_due(self, db) -> bool:
        """Deliver the rows that are due; True if there were any."""
        at = time.time()
        rows = db.execute("SELECT id, email, client, attempts FROM outbox WHERE state = 'queued' AND next_at <= ?"
                          " ORDER BY id LIMIT 20", (at,)).fetchall()
        if not rows:
            db.execute("DELETE FROM outbox WHERE created_at < ?", (at - KEEP,))
            return False
        connection = Connection(self.settings.smtp, self.settings.sender or "", password_for(self.settings.smtp))
        try:
            for row_id, email, client, attempts in rows:
                if self.stopping.is_set():
                    break
                try:
                    delivery = connection.deliver(email, self._message(email))
                except NewsletterError as e:
                    delivery = Delivery("failed", None, e.message)
                with transaction(db):
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
