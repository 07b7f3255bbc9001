"""DKIM signatures (RFC 6376; Ed25519 per RFC 8463) on every message we build.

relaxed/relaxed canonicalization is written here and the private-key operation is done
by ``cryptography`` (OpenSSL): dkimpy's pure-Python RSA costs 5-11 ms a message, this
well under one, and without the GIL, so the send's connections sign side by side. An
issue's messages share most of their header and body: ``Prepared`` canonicalizes the
shared part once, and per message only the reader's fields are canonicalized and the
body hashed from its first personal value on (the body hash cannot be shared beyond it).
The algorithm follows the key: an RSA key signs rsa-sha256, an Ed25519 key ed25519-sha256.

``h=`` lists the fields a reader's filter (and RFC 8058 one-click) cares about; From is
listed once more than it occurs, so that no second From can be added after signing.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

from newsletter.config import Dkim
from newsletter.errors import NewsletterError

SIGNED = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
          "list-unsubscribe", "list-unsubscribe-post", "reply-to")
OVERSIGNED = ("from",)


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """``name:value`` CRLF, relaxed (RFC 6376 3.4.2): lower-case name, unfolded value,
    runs of whitespace made one space, none at either end of the value."""
    if b"\r\n" in value:  # a fold: CRLF before whitespace
        value = value.replace(b"\r\n", b"")
    if b"\t" in value:
        value = value.replace(b"\t", b" ")
    while b"  " in value:
        value = value.replace(b"  ", b" ")
    return name.strip().lower() + b":" + value.strip(b" ") + b"\r\n"


def relaxed_lines(text: bytes) -> bytes:
    """Whitespace at line ends dropped, runs of it made one space; the rest as it is.
    Line-local, so stretches of a body with no whitespace at their edges can be done
    apart and joined (the template does its static stretches once per issue)."""
    # bytes.replace, not a regex: a regex over 40 KB of HTML costs more than the signature.
    if b"\t" in text:
        text = text.replace(b"\t", b" ")
    while b"  " in text:
        text = text.replace(b"    ", b" ").replace(b"  ", b" ")
    return text.replace(b" \r\n", b"\r\n")


def relaxed_body(body: bytes) -> bytes:
    """The body, relaxed (RFC 6376 3.4.4): no whitespace at line ends, runs of it made
    one space, no empty lines at the end; a non-empty body ends with one CRLF."""
    body = relaxed_lines(body).rstrip(b" \t\r\n")
    return body + b"\r\n" if body else b""


def relaxed_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header block's fields in order, as (lower-case name, the field relaxed and
    CRLF-ended, as ``relaxed_header`` makes it). The block is unfolded and its runs of
    whitespace made one space all at once, cheaper than field by field."""
    if b"\t" in head:
        head = head.replace(b"\t", b" ")
    head = head.replace(b"\r\n ", b" ")  # a fold is CRLF before whitespace
    while b"  " in head:
        head = head.replace(b"  ", b" ")
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if colon:
            name = name.strip(b" ").lower()
            fields.append((name, name + b":" + value.strip(b" ") + b"\r\n"))
    return fields


def load_key(path: Path):
    """The private key in ``path`` (PEM, RSA or Ed25519); a NewsletterError says what is wrong."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise NewsletterError(f"dkim.key_file: cannot read {path} ({e.strerror or e})",
                              hint="a PEM private key (RSA 2048 or Ed25519), e.g. from"
                                   " `openssl genpkey -algorithm ed25519 -out dkim.pem`") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise NewsletterError(f"dkim.key_file: {path} is not an unencrypted PEM private key ({e})") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise NewsletterError(f"dkim.key_file: an RSA key of {key.key_size} bits is too short (use 2048)")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise NewsletterError(f"dkim.key_file: {path} holds a {type(key).__name__}; DKIM needs RSA or Ed25519")


def public_record(key) -> str:
    """The TXT record to publish at <selector>._domainkey.<domain> for ``key``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey):
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


class Signer:
    """Signs messages for one domain and selector with one key."""

    def __init__(self, key, domain: str, selector: str):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        self.key, self.domain, self.selector = key, domain, selector
        if isinstance(key, rsa.RSAPrivateKey):
            self.algorithm = "rsa-sha256"
            pad, sha = padding.PKCS1v15(), hashes.SHA256()
            self._sign = lambda data: key.sign(data, pad, sha)
        else:
            self.algorithm = "ed25519-sha256"  # RFC 8463: Ed25519 over the SHA-256 of the data
            self._sign = lambda data: key.sign(hashlib.sha256(data).digest())

    def sign(self, message: bytes, now: int | None = None) -> bytes:
        """``message`` with a DKIM-Signature field in front."""
        end = message.find(b"\r\n\r\n")
        head = message if end < 0 else message[:end]
        body = b"" if end < 0 else relaxed_lines(message[end + 4:])
        return Prepared(self, b"", [body]).sign(head, (), now) + message

    def prepare(self, head: bytes, body: list[bytes | None]) -> Prepared:
        """The signing of many messages that share ``head`` (fields below each message's
        own) and the body stretches ``body`` (see ``Prepared``), made ready once."""
        return Prepared(self, head, body)


class Prepared:
    """One issue's signing, with what all its messages share done once: the shared
    header fields canonicalized, ``h=`` and the tags, and the body hash over the stretch
    before the first personal value (a ``hashlib`` state, copied per message).

    ``body``: the body's stretches through ``relaxed_lines``, None where a message puts
    a personal value (which holds no whitespace, so it joins its neighbours as it is).
    The last stretch is shared and more than whitespace, unless it is the whole body."""

    def __init__(self, signer: Signer, head: bytes, body: list[bytes | None]):
        self.signer = signer
        self.shared: dict[bytes, list[bytes]] = {}
        for name, line in relaxed_fields(head):
            self.shared.setdefault(name, []).append(line)
        self.plans: dict[tuple[bytes, ...], tuple[list[bytes | int], list[bytes], str]] = {}
        last = body[-1]
        if last is None or (len(body) > 1 and not last.rstrip(b" \t\r\n")):
            raise ValueError("the body must end with a shared stretch of more than whitespace")
        last = last.rstrip(b" \t\r\n")  # relaxed_body's end: no empty lines, one CRLF
        body = [*body[:-1], last + b"\r\n" if last else b""]
        first = body.index(None) if None in body else len(body)
        self.body_start = hashlib.sha256(b"".join(body[:first]))
        self.body_rest = body[first:]

    def body_hash(self, values: Sequence[bytes]) -> str:
        """The ``bh=`` of the body with ``values`` in its personal places, in order."""
        digest = self.body_start.copy()
        it = iter(values)
        for piece in self.body_rest:  # stretches over 2 KB are hashed without the GIL
            digest.update(next(it) if piece is None else piece)
        return base64.b64encode(digest.digest()).decode()

    def _plan(self, names: tuple[bytes, ...]) -> tuple[list[bytes | int], list[bytes], str]:
        """For a message whose own fields are ``names``: the signed data in order (shared
        canonical fields, or the index of an own field), the canonical tags around t=
        and bh=, and the tags as written up to t=."""
        order: list[bytes | int] = []
        signed: list[str] = []
        for name in SIGNED:  # bottom-up (RFC 6376 5.4.2): the shared fields are below
            key = name.encode()
            for line in reversed(self.shared.get(key, [])):
                order.append(line)
                signed.append(name)
            for n in reversed([n for n, own in enumerate(names) if own == key]):
                order.append(n)
                signed.append(name)
        signed += OVERSIGNED
        s = self.signer
        tags = (f" v=1; a={s.algorithm}; c=relaxed/relaxed; d={s.domain}; s={s.selector};\r\n\tt=\0;"
                f" h={':'.join(signed)};\r\n\tbh=\0;\r\n\tb=")
        canonical = relaxed_header(b"dkim-signature", tags.encode()).rstrip(b"\r\n").split(b"\0")
        plan = (order, canonical, tags)
        self.plans[names] = plan
        return plan

    def sign(self, head: bytes, values: Sequence[bytes], now: int | None = None) -> bytes:
        """The DKIM-Signature field (CRLF-ended) for the message made of ``head`` (its own
        fields, above the shared ones), the shared fields and the body with ``values``."""
        fields = relaxed_fields(head)
        names = tuple(name for name, _ in fields)
        order, canonical, tags = self.plans.get(names) or self._plan(names)
        own = [line for _, line in fields]
        stamp = str(int(time.time()) if now is None else now)
        body_hash = self.body_hash(values)
        data = [line if type(line) is bytes else own[line] for line in order]
        data += (canonical[0], stamp.encode(), canonical[1], body_hash.encode(), canonical[2])
        signature = base64.b64encode(self.signer._sign(b"".join(data))).decode()
        folded = "\r\n\t".join(signature[i:i + 72] for i in range(0, len(signature), 72))
        before, middle, after = tags.split("\0")
        return f"DKIM-Signature:{before}{stamp}{middle}{body_hash}{after}{folded}\r\n".encode()


def signer_for(settings: Dkim) -> Signer | None:
    """The signer ``dkim:`` asks for, or None when it is not set; an incomplete setting
    or a key that cannot be used is an error now, before anything is sent."""
    given = {"domain": settings.domain, "selector": settings.selector, "key_file": settings.key_file}
    if not any(given.values()):
        return None
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise NewsletterError(f"dkim: '{missing[0]}' is required to sign",
                              hint="dkim needs domain, selector and key_file together (or none of them)")
    return Signer(load_key(settings.key_file), settings.domain.lower(), settings.selector)
