"""The rules of joining and leaving, kept apart from the web server that exposes them.

- Unsubscribing needs a token we signed for that address; it happens at once, and
  repeating it is harmless.
- Signing up needs the address's owner: we mail a signed link that expires, and only
  confirming it subscribes. That is also the only way back for an unsubscribed or
  bounced address.
- A sign-up writes one row to the outbox, whatever the address (subscribed or not), and
  the mail goes out from a thread of ``serve`` (see ``outbox``): the answer and its time
  tell nothing. One mailbox gets at most one confirmation an hour (``name+tag@`` counts
  as ``name@``); one client may sign up ``signup.per_client`` times an hour, and no more
  than ``signup.hourly`` confirmations go out an hour in all. The limits count the
  outbox rows, so several ``serve`` processes sharing a PostgreSQL store share them: a
  sign-up counts and writes under a lock they all take in turn.
- Every change, and every confirmation mail, is recorded with its time and source.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import AbstractContextManager, nullcontext

from newsletter.config import Settings
from newsletter.mailing.dialects import SQLITE
from newsletter.mailing.importing import check_address
from newsletter.mailing.store import Store
from newsletter.mailing.tokens import list_id, read_expiring_token, read_token

HOUR = 3600.0
SIGNUP_LOCK = "sign-up limits"  # PostgreSQL: each sign-up counts, then writes, alone


def mailbox_of(email: str) -> str:
    """The mailbox an address reaches, for the hourly rule: ``Name+tag@Host`` is ``name@host``."""
    local, _, domain = email.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def plain_client(host: str) -> str:
    """A client address as recorded in the consent record: plain text, short."""
    return re.sub(r"[^0-9A-Za-z.:_\[\]-]", "", host)[:64] or "unknown"


class Consent:
    """Unsubscribe and confirmed sign-up on one store, safe to share between threads."""

    def __init__(self, settings: Settings, secret: bytes):
        self.settings = settings
        self.secret = secret
        self.list_id = list_id(settings.name, settings.sender)
        self.store = Store(settings.subscribers)
        # SQLite: one connection for the threads, so one transaction at a time; PostgreSQL
        # lends each thread a connection of its own.
        self.lock: AbstractContextManager = threading.Lock() if self.store.db.dialect == SQLITE else nullcontext()

    def close(self) -> None:
        self.store.close()

    # Leaving

    def unsubscribe_address(self, token: str) -> str | None:
        """The address an unsubscribe token was made for, if we made it."""
        return read_token(self.secret, self.list_id, token)

    def unsubscribe(self, token: str, source: str, issue: int | None = None) -> str | None:
        """Unsubscribe the token's address (``issue``: the one whose link it was); None
        (and no change) for a bad token."""
        email = self.unsubscribe_address(token)
        if email is not None:
            with self.lock:
                self.store.set_status(email, "unsubscribed", source, issue=issue)
        return email

    # Joining

    def request(self, address: str, client: str) -> str:
        """Record a sign-up: ``queued`` (a confirmation will be mailed), ``subscribed`` or
        ``limited`` (nothing is mailed; the visitor is told the same), or the refusals
        that depend only on the client: ``too many`` (this client) and ``busy`` (the
        hourly cap). Raises NewsletterError only for a malformed address."""
        email = check_address(address)
        mailbox, client, at = mailbox_of(email), plain_client(client), time.time()
        limits = self.settings.signup
        with self.lock, self.store.db.transaction(SIGNUP_LOCK) as db:
            mine = db.execute("SELECT count(*) FROM outbox WHERE client = ? AND created_at > ?",
                              (client, at - HOUR)).fetchone()[0]
            if mine >= limits.per_client:
                return "too many"
            row = db.execute("SELECT status FROM subscribers WHERE email_key = ?", (email.lower(),)).fetchone()
            recent = db.execute("SELECT count(*) FROM outbox WHERE mailbox = ? AND created_at > ? AND state IN"
                                " ('queued', 'sent', 'failed')", (mailbox, at - HOUR)).fetchone()[0]
            mailed = db.execute("SELECT count(*) FROM outbox WHERE created_at > ? AND state IN"
                                " ('queued', 'sent', 'failed')", (at - HOUR,)).fetchone()[0]
            if row is not None and row[0] == "subscribed":
                state = "subscribed"
            elif recent:
                state = "limited"
            elif mailed >= limits.hourly:
                return "busy"
            else:
                state = "queued"
            db.execute("INSERT INTO outbox (email, mailbox, client, created_at, state) VALUES (?, ?, ?, ?, ?)",
                       (email, mailbox, client, at, state))
        return state

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
