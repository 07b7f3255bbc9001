"""DKIM signatures (RFC 6376; Ed25519 per RFC 8463) on every message we build.

relaxed/relaxed canonicalization is written here and the private-key operation is done
by ``cryptography`` (OpenSSL): dkimpy's pure-Python RSA costs 5-11 ms a message, this
well under one. The body hash is computed per message, since the body is personalized.
The algorithm follows the key: an RSA key signs rsa-sha256, an Ed25519 key ed25519-sha256.

``h=`` lists the fields a reader's filter (and RFC 8058 one-click) cares about; From is
listed once more than it occurs, so that no second From can be added after signing.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

from newsletter.config import Dkim
from newsletter.errors import NewsletterError

SIGNED = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
          "list-unsubscribe", "list-unsubscribe-post", "reply-to")
OVERSIGNED = ("from",)


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """``name:value`` CRLF, relaxed (RFC 6376 3.4.2): lower-case name, unfolded value,
    runs of whitespace made one space, none at either end of the value."""
    if b"\r\n" in value:  # a fold: CRLF before whitespace (header_fields keeps no other)
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


def relaxed_body(body: bytes, lines_done: bool = False) -> bytes:
    """The body, relaxed (RFC 6376 3.4.4): no whitespace at line ends, runs of it made
    one space, no empty lines at the end; a non-empty body ends with one CRLF."""
    body = (body if lines_done else relaxed_lines(body)).rstrip(b" \t\r\n")
    return body + b"\r\n" if body else b""


def header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header block's fields as (name, raw value with its folds), in order."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
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

    def sign(self, message: bytes, now: int | None = None, lines_done: bytes | None = None) -> bytes:
        """``message`` with a DKIM-Signature field in front. ``lines_done``: its body
        already through ``relaxed_lines``, when the caller has it cheaper."""
        end = message.find(b"\r\n\r\n")
        head = message if end < 0 else message[:end]
        if lines_done is not None:
            canonical = relaxed_body(lines_done, lines_done=True)
        else:
            canonical = relaxed_body(b"" if end < 0 else message[end + 4:])
        body_hash = base64.b64encode(hashlib.sha256(canonical).digest()).decode()
        present: dict[bytes, list[bytes]] = {}
        for name, value in header_fields(head):
            present.setdefault(name.strip().lower(), []).append(value)
        names: list[str] = []
        data = []
        for name in SIGNED:
            for value in reversed(present.get(name.encode(), [])):  # bottom-up (RFC 6376 5.4.2)
                names.append(name)
                data.append(relaxed_header(name.encode(), value))
        names += OVERSIGNED
        stamp = int(time.time()) if now is None else now
        tags = (f" v=1; a={self.algorithm}; c=relaxed/relaxed; d={self.domain}; s={self.selector};\r\n"
                f"\tt={stamp}; h={':'.join(names)};\r\n\tbh={body_hash};\r\n\tb=")
        data.append(relaxed_header(b"dkim-signature", tags.encode()).rstrip(b"\r\n"))
        signature = base64.b64encode(self._sign(b"".join(data))).decode()
        folded = "\r\n\t".join(signature[i:i + 72] for i in range(0, len(signature), 72))
        return f"DKIM-Signature:{tags}{folded}\r\n".encode() + message


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
