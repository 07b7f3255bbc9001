"""SMTP delivery. yagmail opens and logs in each connection (password, keyring, STARTTLS
or SSL); our own MIME bytes go over that open connection, one SMTP transaction a
message, driven step by step (MAIL, RCPT, DATA, the message, the final dot) rather than
with ``smtplib.sendmail``, because what a failure means depends on the step it hit:

- before the final dot is sent (connect, MAIL, RCPT, DATA, a write that broke off):
  the relay has not taken the message, so it may be tried again;
- a reply to the dot: the relay's own word (2xx taken, 4xx try later, 5xx refused);
- no reply to the dot (a timeout, a dropped connection): the relay may have taken it.
  Its fate is unknown and it is never sent again unless the author asks.

Failures are sorted by what to do next (as marrow/mailer does) in ``Delivery``.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from email.utils import parseaddr
from typing import NamedTuple

from newsletter.config import Smtp
from newsletter.errors import NewsletterError

PASSWORD_VARIABLE = "NEWSLETTER_SMTP_PASSWORD"
_BOUNCE = re.compile(r"\b5\.1\.\d{1,3}\b")  # 5.1.x: bad destination address (RFC 3463)
_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")  # an enhanced status code
_RELAY_DENIED = re.compile(r"relay(ing)?\b.{0,20}\b(denied|not permitted|not allowed|prohibited)", re.I)


class Delivery(NamedTuple):
    """The outcome of one attempt.

    ``status``: sent | failed (permanent) | retry (not taken; may be tried again) |
    unknown (handed over, no answer) | skipped (the reader unsubscribed meanwhile).
    ``kind`` says why a failure happened: address (the recipient is bad), refused (the
    relay refuses the sender or the message), unsupported (the address needs SMTPUTF8,
    which the relay lacks), temporary (a 4xx that persisted)."""

    status: str
    code: int | None = None
    detail: str = ""
    step: str = ""  # connect, mail, rcpt, data, dot
    kind: str = ""

    @property
    def bounced(self) -> bool:
        """A permanent failure that says the address itself is bad."""
        return self.status == "failed" and bool(_BOUNCE.search(self.detail))

    @property
    def relay_denied(self) -> bool:
        """The relay will not pass mail on for us at all (no recipient will do better)."""
        return self.status == "failed" and bool(_RELAY_DENIED.search(self.detail))

    @property
    def signature(self) -> str:
        """What identical refusals share: the step, the code and the enhanced status."""
        status = _STATUS.search(self.detail)
        return f"{self.step} {self.code} {status.group(0) if status else ''}"


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


def envelope_address(address: str) -> tuple[str, bool]:
    """The address as RCPT TO writes it (the domain IDNA-encoded), and whether it needs
    SMTPUTF8 (a local part that is not ASCII)."""
    from newsletter.mailing.headers import ascii_domain

    local, _, domain = address.rpartition("@")
    return f"{local}@{ascii_domain(domain)}", not local.isascii()


def _reply(code: int, message: bytes | str, step: str) -> Delivery:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    detail = f"{code} {' '.join(text.split())}"
    if 200 <= code < 400:
        return Delivery("sent", code, detail, step)
    if 400 <= code < 500:
        return Delivery("retry", code, detail, step)
    if step == "rcpt" and not _RELAY_DENIED.search(detail):
        kind = "address"
    else:
        kind = "address" if _BOUNCE.search(detail) else "refused"
    return Delivery("failed", code, detail, step, kind)


class Connection:
    """One SMTP connection, opened lazily, reused for many messages, reopened when dropped."""

    def __init__(self, smtp: Smtp, sender: str, password: str | None):
        self.smtp = smtp
        self.sender = envelope_sender(sender)
        self.password = password
        self.client = None
        self.where = f"{smtp.host}:{smtp.port}"
        self.helo = smtp.helo or self.sender.rpartition("@")[2] or None

    def open(self) -> None:
        """Connect and log in; a refused login or an unreachable server is a NewsletterError."""
        try:
            self._connect()
        except (OSError, smtplib.SMTPException) as e:
            local = (self.smtp.host, self.smtp.port) == ("127.0.0.1", 8025)  # no `smtp:` settings
            hint = ("nothing listens there: `newsletter capture` runs a local server that keeps what it gets"
                    if local else "check `smtp:` in newsletter.yaml (host, port, security) and that the relay is up")
            if isinstance(e, ssl.SSLCertVerificationError):
                hint = "the relay's certificate is not trusted here; for a private CA set SSL_CERT_FILE=ca.pem"
            raise NewsletterError(f"{self.where}: cannot connect ({e})", hint=hint) from None

    def _connect(self) -> None:
        """yagmail opens the connection (SSL or STARTTLS), greets with our name, logs in.
        The relay's certificate is verified (smtplib does not by default): the password and
        every reader's address go over this connection."""
        import yagmail

        tls = ssl.create_default_context() if self.smtp.security != "none" else None
        client = yagmail.SMTP(
            user=self.smtp.username or self.sender,
            password=self.password,
            host=self.smtp.host,
            port=self.smtp.port,
            smtp_ssl=self.smtp.security == "ssl",
            smtp_starttls={"context": tls} if self.smtp.security == "starttls" else False,
            smtp_skip_login=not self.smtp.username,
            soft_email_validation=False,
            timeout=self.smtp.timeout,
            local_hostname=self.helo,
            **({"context": tls} if self.smtp.security == "ssl" else {}),
        )
        try:
            client.login()
        except smtplib.SMTPAuthenticationError as e:
            raise NewsletterError(
                f"{self.where}: login refused ({_reply(e.smtp_code, e.smtp_error, 'auth').detail})") from None
        self.client = client

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # a connection already gone has nothing to close
                pass
            self.client = None

    def deliver(self, recipient: str, message: bytes, may_hand_over: Callable[[], bool] = lambda: True,
                sender: str | None = None) -> Delivery:
        """One SMTP transaction for ``recipient``. ``may_hand_over`` is asked once the
        relay waits for the message (DATA's 354), just before it is written: it records
        that the message is being handed over, and says False when it must not be (the
        reader has left); the connection is then dropped before the final dot, which
        makes the relay discard the transaction. ``sender``: this message's envelope sender
        (VERP), instead of the connection's."""
        sender = sender or self.sender
        if self.client is None:
            try:
                self._connect()
            except (OSError, smtplib.SMTPException) as e:
                return Delivery("retry", None, f"cannot connect ({e})", "connect")
        smtp = self.client.smtp
        step = "mail"
        try:
            smtp.ehlo_or_helo_if_needed()
            address, needs_utf8 = envelope_address(recipient)
            options = []
            if needs_utf8:
                if not smtp.has_extn("smtputf8"):
                    return Delivery("failed", None, "the address is not ASCII and the relay does not offer SMTPUTF8",
                                    "mail", "unsupported")
                options = ["SMTPUTF8", "BODY=8BITMIME"] if smtp.has_extn("8bitmime") else ["SMTPUTF8"]
            if not needs_utf8 and smtp.has_extn("pipelining"):
                # RFC 2920: MAIL, RCPT and DATA in one write, three replies in one wait.
                smtp.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{address}>\r\nDATA\r\n".encode("ascii"))
                replies = [smtp.getreply() for _ in range(3)]
                for step, (code, text), ok in zip(("mail", "rcpt", "data"), replies, ((250,), (250, 251), (354,)),
                                                  strict=True):
                    if code not in ok:
                        if replies[2][0] == 354:  # a relay that opened DATA anyway: leave without a dot
                            self._drop()
                            return _reply(code, text, step)
                        return self._refused(code, text, step)
            else:
                code, text = smtp.mail(sender, options)
                if code != 250:
                    return self._refused(code, text, step)
                step = "rcpt"
                code, text = smtp.rcpt(address)
                if code not in (250, 251):
                    return self._refused(code, text, step)
                step = "data"
                code, text = smtp.docmd("data")
                if code != 354:
                    return self._refused(code, text, step)
            step = "data"
            try:
                handing = may_hand_over()
            except BaseException:  # the journal failed: leave DATA without a dot, so nothing is delivered
                self._drop()
                raise
            if not handing:
                self._drop()
                return Delivery("skipped", None, "unsubscribed during the send", step)
            # Dot-stuffing (RFC 5321 4.5.2) with bytes.replace: a regex over the 40 KB took
            # longer than all the rest of a message's work (CSS lines start with a dot).
            body = (b"." + message if message[:1] == b"." else message).replace(b"\n.", b"\n..")
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            smtp.send(body + b".\r\n")
        except (OSError, smtplib.SMTPException, UnicodeError) as e:
            self._drop()
            if isinstance(e, UnicodeError):  # an address smtplib cannot write: this one only
                return Delivery("failed", None, f"the relay cannot take this address ({e})", step, "unsupported")
            return Delivery("retry", None, f"connection lost before the message was handed over ({_what(e)})", step)
        step = "dot"
        try:
            code, text = smtp.getreply()
        except (OSError, smtplib.SMTPException) as e:
            self._drop()
            return Delivery("unknown", None, f"no reply after the message was handed over ({_what(e)})", step)
        if code == 421:
            self._drop()
        return _reply(code, text, step)

    def _refused(self, code: int, text: bytes, step: str) -> Delivery:
        """A reply before the message was handed over: end this transaction cleanly."""
        if code == 421 or code == -1:  # the relay is closing the connection
            self._drop()
            return Delivery("retry", code if code > 0 else None, f"{code} {text!r}", step)
        self._reset()
        return _reply(code, text, step)

    def _reset(self) -> None:
        try:
            self.client.smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.smtp.close()
            except Exception:  # already gone
                pass
            client.is_closed = True


def _what(error: BaseException) -> str:
    return str(error) or type(error).__name__


class ConnectionLost(NewsletterError):
    """The server could not be reached, again and again: stop the send (a rerun resumes)."""

    def __init__(self, message: str):
        super().__init__(message, hint="rerun `newsletter send` to resume once the server is back")


def deliver_with_retries(connection: Connection, recipient: str, message: bytes, smtp: Smtp,
                         pause=time.sleep) -> Delivery:
    """Deliver one message (a test copy), retrying what was not taken with exponential
    backoff. A whole send does not use this: it puts a recipient back and moves on."""
    outcome = Delivery("retry")
    for attempt in range(1, smtp.retries + 1):
        outcome = connection.deliver(recipient, message)
        if outcome.status != "retry":
            return outcome
        if attempt < smtp.retries:
            pause(backoff(smtp, attempt))
    if outcome.code is None:
        raise ConnectionLost(f"{connection.where}: {outcome.detail}, {smtp.retries} times")
    return outcome._replace(status="failed", kind="temporary",
                            detail=f"{outcome.detail} (gave up after {smtp.retries} attempts)")


def backoff(smtp: Smtp, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: doubling, with jitter so that connections
    that failed together do not come back together."""
    import random

    delay = smtp.backoff * 2 ** (attempt - 1)
    return delay + random.uniform(0, delay)


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
