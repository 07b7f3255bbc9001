"""Bounces, complaints and unsubscribes by mail, and the VERP envelope sender that lets
a bounce name its recipient even when the report does not.

VERP: with ``bounces.address`` (``bounces@example.com``) each message's envelope sender
(MAIL FROM, the Return-Path) is ``bounces+<token>@example.com``. The token is 16
characters of lower-case base32 of an HMAC of the list and the address: short, safe in
a local part that a relay lower-cases, unforgeable, and mapped back by computing it for
the subscribers (once per run).

``process`` reads messages (Maildir, mbox, IMAP), each once (``inbound`` keeps their
ids): a hard bounce marks the subscriber bounced, soft bounces count (bounced at
``bounces.soft_limit``, across issues), a complaint or a mailto request unsubscribes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.mailing.dialects import POSTGRES
from newsletter.mailing.inbound import Inbound, classify
from newsletter.mailing.store import change_status, connect, now
from newsletter.mailing.tokens import list_id as list_id_of
from newsletter.mailing.tokens import verp_token

IMAP_PASSWORD = "NEWSLETTER_IMAP_PASSWORD"
KINDS = ("hard", "soft", "complaint", "unsubscribe", "ignored")


def return_path_for(settings: Settings, secret: bytes, list_key: str) -> Callable[[str], str] | None:
    """address -> envelope sender, when ``bounces.address`` is set."""
    address = settings.bounces.address
    if not address:
        return None
    if "@" not in address:
        raise NewsletterError(f"bounces.address: '{address}' is not an address", hint="e.g. bounces@example.com")
    local, _, domain = address.rpartition("@")
    return lambda email: f"{local}+{verp_token(secret, list_key, email)}@{domain}"


# -- sources --------------------------------------------------------------------------


def read_maildir(folder: Path) -> Iterator[bytes]:
    import mailbox

    if not (Path(folder) / "cur").is_dir() and not (Path(folder) / "new").is_dir():
        raise NewsletterError(f"{folder}: not a Maildir (no cur/ or new/)")
    box = mailbox.Maildir(str(folder), factory=None, create=False)
    for key in sorted(box.keys()):
        yield box.get_bytes(key)


def read_mbox(file: Path) -> Iterator[bytes]:
    import mailbox

    if not Path(file).is_file():
        raise NewsletterError(f"{file}: no such mbox file")
    box = mailbox.mbox(str(file), factory=None, create=False)
    for key in box.keys():
        yield box.get_bytes(key).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def read_imap(url: str, timeout: float = 60) -> Iterator[bytes]:
    """Every message of ``imaps://USER@HOST[:PORT]/MAILBOX`` (``imap://``: STARTTLS, port
    143), read-only: nothing is marked seen, moved or deleted. The password comes from
    NEWSLETTER_IMAP_PASSWORD, never the URL, and goes only over TLS to a server whose
    certificate verifies (a private CA: SSL_CERT_FILE). It connects and logs in at once, so
    a wrong password or mailbox stops the command before any message is handled."""
    import imaplib
    import ssl

    parts = urlsplit(url)
    try:
        port = parts.port or (993 if parts.scheme == "imaps" else 143)
    except ValueError:
        port = 0
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username or not port:
        raise NewsletterError(f"{url}: expected imaps://USER@HOST[:PORT]/MAILBOX")
    if parts.password is not None:  # a URL ends up in crontabs, shell history and `ps`
        raise NewsletterError(f"--imap: put the password in {IMAP_PASSWORD}, not in the URL")
    password = os.environ.get(IMAP_PASSWORD)
    if not password:
        raise NewsletterError(f"no IMAP password: set {IMAP_PASSWORD}")
    user, folder = unquote(parts.username), unquote(parts.path.strip("/")) or "INBOX"
    server = f"{parts.hostname}:{port}"
    # imaplib's default TLS context checks no certificate: the password would go to anyone.
    context = ssl.create_default_context()
    client = None
    try:
        if parts.scheme == "imaps":
            client = imaplib.IMAP4_SSL(parts.hostname, port, ssl_context=context, timeout=timeout)
        else:
            client = imaplib.IMAP4(parts.hostname, port, timeout=timeout)
            if "STARTTLS" not in client.capabilities:
                raise NewsletterError(f"{server}: the IMAP server offers no STARTTLS, and the password is"
                                      " never sent in clear", hint="use imaps:// if it has implicit TLS")
            client.starttls(ssl_context=context)
        try:
            if f"{user}{password}".isascii():
                client.login(user, password)
            else:  # LOGIN is ASCII only; SASL PLAIN carries UTF-8
                client.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode())
        except imaplib.IMAP4.error as e:
            raise NewsletterError(f"{server}: IMAP login refused for {user} ({_said(e).rstrip('.')});"
                                  f" check {IMAP_PASSWORD}") from None
        status, said = client.select(_mailbox_name(folder), readonly=True)
        if status != "OK":
            raise NewsletterError(f"{server}: no IMAP mailbox {folder!r} for {user} ({_said(said[-1]).rstrip('.')})")
    except ssl.SSLCertVerificationError as e:
        _close(client)
        raise NewsletterError(f"{server}: the IMAP server's certificate is not trusted ({e.verify_message})",
                              hint="for a private CA, point SSL_CERT_FILE at its certificate") from None
    except (OSError, imaplib.IMAP4.error) as e:
        _close(client)
        raise NewsletterError(f"{server}: IMAP failed ({_said(e)})") from None
    except NewsletterError:
        _close(client)
        raise
    return _imap_messages(client, server)


def _imap_messages(client, server: str) -> Iterator[bytes]:
    import imaplib

    try:
        status, found = client.uid("SEARCH", "ALL")
        if status != "OK":
            raise NewsletterError(f"{server}: IMAP SEARCH failed: {_said(found[-1])}")
        uids = found[0].split() if found and found[0] else []
        for start in range(0, len(uids), 100):  # a hundred messages a round trip
            status, fetched = client.uid("FETCH", b",".join(uids[start:start + 100]).decode(), "(BODY.PEEK[])")
            if status != "OK":
                raise NewsletterError(f"{server}: IMAP FETCH failed: {_said(fetched[-1])}")
            yield from (item[1] for item in fetched if isinstance(item, tuple))
    except (OSError, imaplib.IMAP4.error) as e:
        raise NewsletterError(f"{server}: IMAP failed while reading ({_said(e)})") from None
    finally:
        _close(client)


def _mailbox_name(name: str) -> str:
    """``name`` as an IMAP quoted string in modified UTF-7 (RFC 3501 5.1.3): imaplib
    sends arguments as they are, so "Returned mail" or "Rückläufer" would be refused."""
    import base64
    import re

    def encode(run: re.Match) -> str:
        return "&" + base64.b64encode(run.group().encode("utf-16-be")).decode().rstrip("=").replace("/", ",") + "-"

    text = re.sub(r"[^ -~]+", encode, name.replace("&", "&-"))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _said(error: object) -> str:
    """What the server said, as text (imaplib keeps its replies as bytes, or their repr)."""
    if isinstance(error, OSError):  # its args[0] is the errno
        return error.strerror or str(error)
    text = error.args[0] if isinstance(error, Exception) and error.args else error
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return text[2:-1] if text[:2] in ("b'", 'b"') and text[-1:] in ("'", '"') else text


def _close(client) -> None:
    if client is not None:
        try:
            client.logout()
        except Exception:  # the connection is already gone: nothing to log out of
            pass


# -- acting on the store -------------------------------------------------------------


def process(settings: Settings, messages: Iterator[bytes], secret: bytes | None) -> dict[str, object]:
    """Act on each new message; the summary: counts by kind, what changed, and notes."""
    db = connect(settings.subscribers)
    try:
        return _process(db, settings, messages, secret)
    finally:
        db.close()


def _process(db, settings: Settings, messages: Iterator[bytes], secret: bytes | None) -> dict[str, object]:
    counts = dict.fromkeys((*KINDS, "seen before"), 0)
    changed: list[str] = []
    notes: list[str] = []
    tokens: dict[str, str] | None = None
    list_key = list_id_of(settings.name, settings.sender)
    for raw in messages:
        found = classify(raw, settings.bounces.address, settings.unsubscribe.mailto)
        if db.execute("SELECT 1 FROM inbound WHERE id = ?", (found.id,)).fetchone():
            counts["seen before"] += 1
            continue
        keys = [a.strip().lower() for a in found.addresses]
        keys = [k for k in keys if db.execute("SELECT 1 FROM subscribers WHERE email_key = ?", (k,)).fetchone()]
        if not keys and found.verp and secret is not None:
            if tokens is None:  # every subscriber's token, once per run
                rows = db.execute("SELECT email_key FROM subscribers")
                tokens = {verp_token(secret, list_key, k): k for (k,) in rows}
            keys = [tokens[t] for t in found.verp if t in tokens]
        with db.transaction("inbound"):  # PostgreSQL: another `bounces` may read the same mailbox
            if not _record(db, found, keys[0] if keys else None):  # it did, a moment ago
                counts["seen before"] += 1
                continue
            if found.kind != "ignored" and not keys:
                notes.append(f"{found.kind} ({found.detail}) names no subscriber"
                             f"{': ' + ', '.join(found.addresses) if found.addresses else ''}")
            for key in keys:
                change = _act(db, settings, found, key)
                if change:
                    changed.append(f"{key}: {change}")
        counts[found.kind] += 1
    return {"counts": counts, "changed": changed, "notes": notes}


def _record(db, found: Inbound, key: str | None) -> bool:
    """Note the message as handled; False if it was already."""
    detail = f"issue {found.issue}: {found.detail}" if found.issue is not None else found.detail
    return bool(db.execute("INSERT INTO inbound (id, kind, email_key, at, detail) VALUES (?, ?, ?, ?, ?)"
                           " ON CONFLICT (id) DO NOTHING", (found.id, found.kind, key, now(), detail)).rowcount)


def _act(db, settings: Settings, found: Inbound, key: str) -> str:
    status = db.execute("SELECT status FROM subscribers WHERE email_key = ?", (key,)).fetchone()[0]
    if found.kind == "hard":
        if status != "bounced":
            change_status(db, key, "bounced", "bounce", found.detail)
            return f"bounced ({found.detail})"
    elif found.kind == "soft":
        # Soft bounces of the same issue count once (a delay notice and its final report).
        position = "strpos" if db.dialect == POSTGRES else "instr"  # where the ':' is
        (count,) = db.execute(
            f"SELECT COUNT(DISTINCT CASE WHEN detail LIKE 'issue %' THEN substr(detail, 1, {position}(detail, ':'))"
            " ELSE id END) FROM inbound WHERE email_key = ? AND kind = 'soft'", (key,)).fetchone()
        if count >= settings.bounces.soft_limit and status == "subscribed":
            change_status(db, key, "bounced", "bounce", f"{count} soft bounces ({found.detail})")
            return f"bounced after {count} soft bounces"
        return f"soft bounce {count} of {settings.bounces.soft_limit}" if status == "subscribed" else ""
    elif found.kind in ("complaint", "unsubscribe") and status == "subscribed":
        source = "complaint" if found.kind == "complaint" else "mailto"
        change_status(db, key, "unsubscribed", source, found.detail)
        return f"unsubscribed ({found.detail})"
    return ""
