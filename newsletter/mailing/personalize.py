"""One message per recipient, built in microseconds.

``MessageTemplate`` does once per issue everything that does not depend on the reader:
the static headers, the MIME structure, the quoted-printable encoding of every static
stretch of the text and HTML parts, the base64 of inline images. ``personalize`` then
only encodes the few personal values (name, address, unsubscribe link, CSV fields)
and joins bytes. Quoted-printable allows this: a soft line break (``=`` CRLF) between
two separately encoded stretches decodes to nothing, so the pieces join exactly.

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
from email.header import Header
from email.utils import formatdate
from pathlib import Path
from typing import NamedTuple

from newsletter.authoring.model import Issue
from newsletter.authoring.render import Rendered
from newsletter.config import Settings
from newsletter.mailing.tokens import domain_of, list_id, make_token, message_id

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
    if settings.base_url:
        return (lambda src: f"{settings.base_url}/{issue.number}/{src}"), False
    return (lambda src: f"cid:{content_id(src, domain)}"), True


def content_id(src: str, domain: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', src)}@{domain}"


def _qp(text: str, quotetabs: bool = False) -> bytes:
    """Quoted-printable of ``text`` with CRLF line ends, soft breaks included (b2a_qp
    picks LF for them when a stretch holds no line break of its own)."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=quotetabs, istext=True)
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _header(name: str, value: str) -> bytes:
    charset = "us-ascii" if value.isascii() else "utf-8"
    return f"{name}: {Header(value, charset, header_name=name).encode(linesep=chr(13) + chr(10))}\r\n".encode()


class MessageTemplate:
    """One issue's message, ready to be personalized for each recipient."""

    def __init__(self, rendered: Rendered, settings: Settings, secret: bytes, *, attach_images: bool,
                 subject_prefix: str = ""):
        self.settings = settings
        self.secret = secret
        self.issue = rendered.issue.number
        self.domain = domain_of(settings.sender)
        self.list_id = list_id(settings.name, settings.sender)
        self.sender = settings.sender or ""
        boundary = "=_nl_" + os.urandom(12).hex()  # never in quoted-printable or base64 text
        head = [_header("From", self.sender), _header("Subject", subject_prefix + rendered.subject)]
        if settings.reply_to:
            head.append(_header("Reply-To", settings.reply_to))
        phrase = settings.name if settings.name.isascii() and '"' not in settings.name else ""
        head.append(f'List-Id: "{phrase}" <{self.list_id}>\r\n'.encode() if phrase else
                    f"List-Id: <{self.list_id}>\r\n".encode())
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

        # The body: static bytes and personal fields, in order.
        self.body: list[bytes | Field] = [text_head]
        self.body += self._encode(rendered, rendered.text, html_part=False)
        self.body.append(CRLF + html_head)
        self.body += self._encode(rendered, rendered.html, html_part=True)
        self.body.append(tail)
        self._date = (0, "")
        mailto = settings.unsubscribe.mailto
        self.mailto = f"mailto:{mailto}?subject=unsubscribe" if mailto else ""

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
        url = self.settings.unsubscribe.url
        unsubscribe = url.replace("{token}", token) if url else ""
        unsubscribe = unsubscribe or self.mailto
        return {**recipient.fields, "name": recipient.name, "email": recipient.email,
                "unsubscribe_url": unsubscribe, "token": token}

    def personalize(self, recipient: Recipient) -> bytes:
        """The whole message for ``recipient``, as bytes ready for SMTP."""
        values = self.values(recipient)
        now = int(time.time())
        if self._date[0] != now:  # formatting the date costs more than the rest of the headers
            self._date = (now, formatdate(now, usegmt=True))
        links = []
        if self.settings.unsubscribe.url:
            links.append(f"<{values['unsubscribe_url']}>")
        if self.mailto:
            links.append(f"<{self.mailto}>")
        head = [
            _to_header(recipient),
            f"Date: {self._date[1]}\r\nMessage-ID: {message_id(self.list_id, self.issue, recipient.email, self.domain)}"
            f"\r\n".encode(),
        ]
        if links:
            head.append(f"List-Unsubscribe: {', '.join(links)}\r\n".encode())
        parts = [*head, self.static_head]
        for piece in self.body:
            if type(piece) is bytes:
                parts.append(piece)
            else:
                value = " ".join(values.get(piece.name, "").split())  # no line breaks, ever
                parts.append(_qp(html.escape(value) if piece.html else value, quotetabs=True))
        return b"".join(parts)


def _to_header(recipient: Recipient) -> bytes:
    """``To: "Name" <address>``; a non-ASCII name as an RFC 2047 encoded word, one word
    as email.utils.formataddr writes it (several times slower): mail readers join
    several words without a space, Python's parser does not. A very long name is split
    into several words, to keep the line under SMTP's 998 characters."""
    name = " ".join(recipient.name.split())
    if not name:
        return f"To: {recipient.email}\r\n".encode()
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'To: "{quoted}" <{recipient.email}>\r\n'.encode()
    words, chunk = [], ""
    for ch in name:
        if len((chunk + ch).encode()) > 600:
            words.append(chunk)
            chunk = ""
        chunk += ch
    words.append(chunk)
    encoded = "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)
    return f"To: {encoded} <{recipient.email}>\r\n".encode()
