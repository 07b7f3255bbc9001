"""The rules of joining and leaving, kept apart from the web server that exposes them.

- Unsubscribing needs a token we signed for that address; it happens at once, and
  repeating it is harmless.
- Signing up needs the address's owner: we mail a signed link that expires, and only
  confirming it subscribes. That is also the only way back for an unsubscribed or
  bounced address. An address gets at most one confirmation mail an hour, however often
  it is entered, and the answer never tells whether it was already subscribed.
- Every change, and every confirmation mail, is recorded with its time and source.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from newsletter.authoring.labels import labels_for
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.importing import check_address
from newsletter.mailing.store import Store, now, record_event, transaction
from newsletter.mailing.tokens import domain_of, list_id, make_expiring_token, read_expiring_token, read_token
from newsletter.mailing.transport import Connection, deliver_with_retries, password_for

CONFIRM_HOURS = 48
RESEND_AFTER = dt.timedelta(hours=1)
CONFIRMATION_SENT = "confirmation sent"


class Consent:
    """Unsubscribe and confirmed sign-up on one store, safe to share between threads."""

    def __init__(self, settings: Settings, secret: bytes):
        self.settings = settings
        self.secret = secret
        self.list_id = list_id(settings.name, settings.sender)
        self.store = Store(settings.subscribers)
        self.lock = threading.Lock()  # one SQLite connection, one writer at a time

    def close(self) -> None:
        self.store.close()

    # Leaving

    def unsubscribe_address(self, token: str) -> str | None:
        """The address an unsubscribe token was made for, if we made it."""
        return read_token(self.secret, self.list_id, token)

    def unsubscribe(self, token: str, source: str) -> str | None:
        """Unsubscribe the token's address; None (and no change) for a bad token."""
        email = self.unsubscribe_address(token)
        if email is not None:
            with self.lock:
                self.store.set_status(email, "unsubscribed", source)
        return email

    # Joining

    def request(self, address: str, source: str) -> None:
        """Mail a confirmation link to ``address`` unless it is subscribed already or was
        mailed one within the hour. Raises NewsletterError only for a malformed address."""
        email = check_address(address)
        key = email.lower()
        with self.lock, transaction(self.store.db) as db:
            row = db.execute("SELECT status FROM subscribers WHERE email_key = ?", (key,)).fetchone()
            if row and row[0] == "subscribed":
                return
            last = db.execute("SELECT max(at) FROM events WHERE email_key = ? AND change = ?",
                              (key, CONFIRMATION_SENT)).fetchone()[0]
            since = (dt.datetime.now(dt.UTC) - RESEND_AFTER).isoformat(timespec="microseconds")
            if last is not None and last > since:
                return
            record_event(db, key, now(), CONFIRMATION_SENT, source)
        try:
            self._mail_confirmation(email)
        except NewsletterError:
            with self.lock, transaction(self.store.db) as db:  # not sent: let them try again
                db.execute("DELETE FROM events WHERE id = (SELECT max(id) FROM events WHERE email_key = ?"
                           " AND change = ?)", (key, CONFIRMATION_SENT))
            raise

    def confirm_address(self, token: str) -> str | None:
        """The address of a valid, unexpired confirmation token."""
        return read_expiring_token(self.secret, self.list_id, token, time.time())

    def confirm(self, token: str, source: str) -> str | None:
        """Subscribe the token's address (it proved it owns it); None for a bad token."""
        email = self.confirm_address(token)
        if email is not None:
            with self.lock:
                self.store.add(email, source=source)
        return email

    def _mail_confirmation(self, email: str) -> None:
        s = self.settings
        labels = labels_for(s.lang, s.labels)
        expires = int(time.time()) + CONFIRM_HOURS * 3600
        token = make_expiring_token(self.secret, self.list_id, email, expires)
        base = s.base_url or "http://127.0.0.1:8000"
        message = EmailMessage()
        message["From"] = s.sender or ""
        message["To"] = email
        message["Subject"] = labels["confirm_subject"].format(name=s.name)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=domain_of(s.sender))
        message["Auto-Submitted"] = "auto-generated"
        body = labels["confirm_body"].format(email=email, name=s.name, hours=CONFIRM_HOURS,
                                             url=f"{base}/confirm?token={token}")
        message.set_content(body + (f"\n\n-- \n{s.postal_address}\n" if s.postal_address else "\n"))
        connection = Connection(s.smtp, s.sender or "", password_for(s.smtp))
        try:
            connection.open()
            delivery = deliver_with_retries(connection, email, message.as_bytes(policy=message.policy.clone(
                linesep="\r\n")), s.smtp)
        finally:
            connection.close()
        if delivery.status != "sent":
            raise NewsletterError(f"confirmation mail to {email} not sent: {delivery.detail}")
