"""SMTP delivery. yagmail opens and logs in each connection (password, keyring, STARTTLS
or SSL); our own MIME bytes go over that open connection with ``smtp.sendmail``.

Failures are sorted by what to do next (as marrow/mailer does): the message failed
(5xx: record it, never retry), the attempt failed (4xx, a dropped connection:
reconnect, back off, retry), or the configuration is wrong (refused login, no server:
stop the whole send before anything else is tried).
"""

from __future__ import annotations

import os
import random
import re
import smtplib
import threading
import time
from email.utils import parseaddr
from typing import NamedTuple

from newsletter.config import Smtp
from newsletter.errors import NewsletterError

PASSWORD_VARIABLE = "NEWSLETTER_SMTP_PASSWORD"
_BOUNCE = re.compile(r"\b5\.1\.\d{1,3}\b")  # 5.1.x: bad destination address (RFC 3463)


class Delivery(NamedTuple):
    """The outcome of one attempt: sent, failed (permanent) or retry (temporary)."""

    status: str
    code: int | None = None
    detail: str = ""
    handed: bool = True  # False when the connection failed before the message was sent


    @property
    def bounced(self) -> bool:
        """A permanent failure that says the address itself is bad."""
        return self.status == "failed" and bool(_BOUNCE.search(self.detail))


def password_for(smtp: Smtp) -> str | None:
    """The SMTP password: NEWSLETTER_SMTP_PASSWORD, else the keyring; never a file."""
    if not smtp.username:
        return None
    value = os.environ.get(PASSWORD_VARIABLE)
    if value:
        return value
    try:
        import keyring

        value = keyring.get_password("newsletter", smtp.username) or keyring.get_password("yagmail", smtp.username)
    except Exception:  # no keyring package or no backend: say what to do instead
        value = None
    if not value:
        raise NewsletterError(
            f"no SMTP password for {smtp.username}: set {PASSWORD_VARIABLE}",
            hint=f"or store it with `keyring set newsletter {smtp.username}`",
        )
    return value


def envelope_sender(sender: str) -> str:
    return parseaddr(sender)[1]


def _reply(code: int, message: bytes | str) -> Delivery:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    detail = f"{code} {' '.join(text.split())}"
    if 200 <= code < 300:
        return Delivery("sent", code, detail)
    if 400 <= code < 500:
        return Delivery("retry", code, detail)
    return Delivery("failed", code, detail)


class Connection:
    """One SMTP connection, opened lazily, reused for many messages, reopened when dropped."""

    def __init__(self, smtp: Smtp, sender: str, password: str | None):
        self.smtp = smtp
        self.sender = envelope_sender(sender)
        self.password = password
        self.client = None
        self.where = f"{smtp.host}:{smtp.port}"

    def open(self) -> None:
        """Connect and log in; a refused login or an unreachable server is a NewsletterError."""
        try:
            self._connect()
        except (OSError, smtplib.SMTPException) as e:
            raise NewsletterError(f"{self.where}: cannot connect ({e})",
                                  hint="is the server running? `make demo` starts a local one") from None

    def _connect(self) -> None:
        """yagmail opens the connection (SSL or STARTTLS) and logs in."""
        import yagmail

        client = yagmail.SMTP(
            user=self.smtp.username or self.sender,
            password=self.password,
            host=self.smtp.host,
            port=self.smtp.port,
            smtp_ssl=self.smtp.security == "ssl",
            smtp_starttls=self.smtp.security == "starttls",
            smtp_skip_login=not self.smtp.username,
            soft_email_validation=False,
            timeout=30,
        )
        try:
            client.login()
        except smtplib.SMTPAuthenticationError as e:
            raise NewsletterError(f"{self.where}: login refused ({_reply(e.smtp_code, e.smtp_error).detail})") from None
        self.client = client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def deliver(self, recipient: str, message: bytes) -> Delivery:
        """One attempt to hand ``message`` to the server for ``recipient``."""
        if self.client is None:
            try:
                self._connect()
            except (OSError, smtplib.SMTPException) as e:
                return Delivery("retry", None, f"cannot connect ({e})", handed=False)
        try:
            self.client.smtp.sendmail(self.sender, [recipient], message)
            return Delivery("sent", 250, "250 accepted")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            return _reply(code, text)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
            return _reply(e.smtp_code, e.smtp_error)
        except smtplib.SMTPResponseException as e:  # 421 and the like: the connection is spent
            self._drop()
            return _reply(e.smtp_code, e.smtp_error)
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as e:
            self._drop()
            return Delivery("retry", None, f"connection lost ({e or type(e).__name__})")

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.smtp.close()
            except Exception:  # already gone
                pass
            client.is_closed = True


class ConnectionLost(NewsletterError):
    """The server could not be reached, again and again: stop the send (a rerun resumes).
    ``handed`` says whether the last message may have reached the server."""

    def __init__(self, message: str, handed: bool):
        super().__init__(message, hint="rerun `newsletter send` to resume once the server is back")
        self.handed = handed


def deliver_with_retries(connection: Connection, recipient: str, message: bytes, smtp: Smtp,
                         pause=time.sleep) -> Delivery:
    """Deliver, retrying temporary failures with exponential backoff and jitter. A 4xx
    reply that persists is recorded as failed; a connection that keeps failing stops
    the send (``ConnectionLost``) rather than fail every remaining recipient."""
    outcome = Delivery("retry")
    for attempt in range(1, smtp.retries + 1):
        outcome = connection.deliver(recipient, message)
        if outcome.status != "retry":
            return outcome
        if attempt < smtp.retries:
            delay = smtp.backoff * 2 ** (attempt - 1)
            pause(delay + random.uniform(0, delay))
    if outcome.code is None:
        raise ConnectionLost(f"{connection.where}: {outcome.detail}, {smtp.retries} times", outcome.handed)
    return Delivery("failed", outcome.code, f"{outcome.detail} (gave up after {smtp.retries} attempts)")


class RateLimiter:
    """At most ``rate`` messages a second across every connection (0: no limit)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next)
            self.next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)
