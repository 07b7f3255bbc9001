"""One message per recipient, built in microseconds.

``MessageTemplate`` does once per issue everything that does not depend on the reader:
the static headers, the MIME structure, the quoted-printable encoding of every static
stretch of the text and HTML parts, the base64 of inline images. ``personalize`` then
only encodes the few personal values (name, greeting, address, unsubscribe link, CSV fields)
and joins bytes. Quoted-printable allows this: a soft line break (``=`` CRLF) between
two separately encoded stretches decodes to nothing, so the pieces join exactly. The
header fields come from ``headers`` (folding, encoded words, IDNA).

The message (RFC 5322, CRLF line endings):
    multipart/alternative
        text/plain                  quoted-printable
        text/html                   quoted-printable
      or, with local images and no base_url to host them:
        multipart/related
            text/html               quoted-printable, images as cid: URLs
            image/...               base64, one part per image
"""

from __future__ import annotations

import base64
import binascii
import html
import mimetypes
import os
import re
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import NamedTuple

from newsletter.authoring.model import Issue
from newsletter.authoring.render import Rendered
from newsletter.config import Settings
from newsletter.mailing.headers import fold, mailbox, mailboxes, phrase, unstructured
from newsletter.mailing.tokens import domain_of, fresh_message_id, list_id, make_token, message_id

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"


class Recipient(NamedTuple):
    email: str
    name: str = ""
    fields: dict[str, str] = {}  # noqa: RUF012 (never mutated)


class Field(NamedTuple):
    """A personal slot in a part: filled with ``name``'s value, escaped for ``html``."""

    name: str
    html: bool


def image_urls(issue: Issue, settings: Settings, domain: str):
    """How the email refers to local images: hosted under base_url when there is one
    (the archive publishes them), otherwise attached and referenced by Content-ID."""
    if settings.base_url and settings.images != "embed":
        return (lambda src: f"{settings.base_url}/{issue.number}/{src}"), False
    return (lambda src: f"cid:{content_id(src, domain)}"), True


def content_id(src: str, domain: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', src)}@{domain}"


def _qp(text: str, quotetabs: bool = False) -> bytes:
    """Quoted-printable of ``text`` with CRLF line ends, soft breaks included (b2a_qp
    picks LF for them when a stretch holds no line break of its own)."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=quotetabs, istext=True)
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class MessageTemplate:
    """One issue's message, ready to be personalized for each recipient. ``test``: a test
    copy, with a Message-ID of its own each time (a reader drops a repeated one, and the
    real send must not look like a repeat of the test)."""

    def __init__(self, rendered: Rendered, settings: Settings, secret: bytes, *, attach_images: bool,
                 subject_prefix: str = "", test: bool = False):
        self.settings = settings
        self.test = test
        self.secret = secret
        self.greeting = rendered.greeting  # "Hi {name}," made whole per reader, with or without a name
        self.issue = rendered.issue.number
        self.domain = domain_of(settings.sender)
        self.list_id = list_id(settings.name, settings.sender)
        self.sender = settings.sender or ""
        boundary = "=_nl_" + os.urandom(12).hex()  # never in quoted-printable or base64 text
        head = [mailboxes("From", self.sender).encode(),
                unstructured("Subject", subject_prefix + rendered.subject).encode()]
        if settings.reply_to:
            head.append(mailboxes("Reply-To", settings.reply_to).encode())
        head.append(fold("List-Id", [*phrase("List-Id", settings.name), f"<{self.list_id}>"]).encode())
        if settings.unsubscribe.url and settings.unsubscribe.url.startswith("https://"):
            head.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        head.append(b"MIME-Version: 1.0\r\n")
        head.append(f'Content-Type: multipart/alternative; boundary="{boundary}a"\r\n\r\n'.encode())
        self.static_head = b"".join(head)

        text_head = (f"--{boundary}a\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
                     "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode()
        html_head = b""
        images = [img for img in rendered.issue.images if img.file is not None] if attach_images else []
        if images:
            html_head += (f"--{boundary}a\r\nContent-Type: multipart/related; boundary=\"{boundary}r\"\r\n\r\n"
                          f"--{boundary}r\r\n").encode()
        else:
            html_head += f"--{boundary}a\r\n".encode()
        html_head += b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        tail = b""
        seen: set[str] = set()
        for image in images:
            if image.src in seen:
                continue
            seen.add(image.src)
            kind = mimetypes.guess_type(image.src)[0] or "application/octet-stream"
            data = base64.encodebytes(Path(image.file).read_bytes()).replace(b"\n", CRLF)
            tail += (f"\r\n--{boundary}r\r\nContent-Type: {kind}\r\nContent-Transfer-Encoding: base64\r\n"
                     f"Content-ID: <{content_id(image.src, self.domain)}>\r\n"
                     f"Content-Disposition: inline; filename=\"{Path(image.src).name}\"\r\n\r\n").encode() + data
        if images:
            tail += f"\r\n--{boundary}r--".encode()
        tail += f"\r\n--{boundary}a--\r\n".encode()

        # The static headers and the body: static bytes and personal fields, in order,
        # adjacent bytes joined here once rather than for every recipient.
        self.body: list[bytes | Field] = []
        for piece in [self.static_head, text_head, *self._encode(rendered, rendered.text, html_part=False),
                      CRLF + html_head, *self._encode(rendered, rendered.html, html_part=True), tail]:
            if type(piece) is bytes and self.body and type(self.body[-1]) is bytes:
                self.body[-1] += piece
            else:
                self.body.append(piece)
        self._date = (0, "")
        mailto = settings.unsubscribe.mailto
        self.mailto = f"mailto:{mailto}?subject=unsubscribe" if mailto else ""
        self._unsubscribe = _with_issue(settings.unsubscribe.url or "", self.issue)
        self.signer = None  # a dkim.Prepared, set by sign_with
        self.return_path = None  # address -> envelope sender (VERP), set by send.prepare with `bounces:`

    def sign_with(self, signer) -> None:
        """DKIM-sign every message with ``signer`` (a dkim.Signer). The static header fields
        and the static stretches of the body go through relaxed canonicalization once,
        here: stretches meet personal values only at soft breaks, and those values
        (quotetabs) hold no whitespace."""
        from newsletter.mailing.dkim import relaxed_lines

        head, _, body = self.body[0].partition(CRLF + CRLF)  # the static head holds the blank line
        relaxed = [relaxed_lines(body), *(relaxed_lines(p) if type(p) is bytes else None for p in self.body[1:])]
        self.signer = signer.prepare(head, relaxed)

    @staticmethod
    def _encode(rendered: Rendered, part: str, html_part: bool) -> list[bytes | Field]:
        out: list[bytes | Field] = []
        for n, piece in enumerate(rendered.split(part)):
            if n % 2:
                out += [SOFT_BREAK, Field(piece, html_part), SOFT_BREAK]
            elif piece:
                out.append(_qp(piece))
        return out

    def values(self, recipient: Recipient) -> dict[str, str]:
        """The personal values of one recipient (also what layouts see as ``personal``)."""
        token = make_token(self.secret, self.list_id, recipient.email)
        unsubscribe = self._unsubscribe.replace("{token}", token) if self._unsubscribe else self.mailto
        values = {**recipient.fields, "name": recipient.name, "email": recipient.email,
                  "unsubscribe_url": unsubscribe, "token": token, "greeting": self.greeting(recipient.name)}
        if self.settings.tracking.clicks and self.settings.tracking.per_subscriber:
            # The reader's part of tracked links: a token of its own, so a shared link cannot unsubscribe.
            values["click"] = make_token(self.secret, self.list_id, recipient.email, "click")
        return values

    def personalize(self, recipient: Recipient) -> bytes:
        """The whole message for ``recipient``, as bytes ready for SMTP."""
        values = self.values(recipient)
        now = int(time.time())
        if self._date[0] != now:  # formatting the date costs more than the rest of the headers
            stamp = format_datetime(datetime.fromtimestamp(now, UTC))  # "+0000", not "GMT"
            self._date = (now, f"Date: {stamp}\r\nMessage-ID: ")
        ident = (fresh_message_id(self.issue, self.domain) if self.test else
                 message_id(self.list_id, self.issue, recipient.email, self.domain))
        head = mailbox("To", " ".join(recipient.name.split()), recipient.email) + self._date[1] + ident
        links = []
        if self.settings.unsubscribe.url:
            links.append(f"<{values['unsubscribe_url']}>")
        if self.mailto:
            links.append(f"<{self.mailto}>")
        if links:  # a URL cannot be folded, so a fold between URLs (cheaper than measuring)
            head += "\r\nList-Unsubscribe: " + ",\r\n ".join(links)
        parts = [(head + "\r\n").encode()]
        for piece in self.body:
            if type(piece) is bytes:
                parts.append(piece)
            else:
                value = " ".join(values.get(piece.name, "").split())  # no line breaks, ever
                parts.append(_qp(html.escape(value) if piece.html else value, quotetabs=True))
        if self.signer is None:
            return b"".join(parts)
        personal = [parts[n + 1] for n, p in enumerate(self.body) if type(p) is not bytes]
        return b"".join([self.signer.sign(parts[0], personal), *parts])  # the message's bytes joined once


def _with_issue(url: str, issue: int) -> str:
    """The unsubscribe URL naming the issue it came in (``{issue}``, or an ``issue``
    parameter added), so that `stats` can say which issue a reader left after."""
    if not url or "{issue}" in url:
        return url.replace("{issue}", str(issue))
    return f"{url}{'&' if '?' in url else '?'}issue={issue}"
