"""Identities derived from the list and an address: the signed unsubscribe token, the
List-Id and a Message-ID that is the same for the same issue and recipient."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets

from newsletter.errors import NewsletterError

SECRET_VARIABLE = "NEWSLETTER_SECRET"


def secret_from_environment() -> bytes:
    """The signing key, from NEWSLETTER_SECRET or the system keyring; never from a file."""
    value = os.environ.get(SECRET_VARIABLE)
    if not value:
        value = _from_keyring("secret")
    if not value:
        raise NewsletterError(
            f"no signing key for unsubscribe links: set {SECRET_VARIABLE}",
            hint="a long random string, kept out of the workspace; or `keyring set newsletter secret`",
        )
    return value.encode("utf-8")


def _from_keyring(name: str) -> str | None:
    try:
        import keyring

        return keyring.get_password("newsletter", name)
    except Exception:  # no keyring installed, or no backend on this machine
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, list_id: str, purpose: str, payload: str) -> bytes:
    message = f"{purpose}\0{list_id}\0{payload}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:18]


def make_token(secret: bytes, list_id: str, email: str, purpose: str = "unsubscribe") -> str:
    """``<address>.<hmac>``, both base64url: the server can tell whom it is for and that
    we made it, with no table of tokens to keep."""
    email = email.strip().lower()
    return f"{_b64(email.encode())}.{_b64(_mac(secret, list_id, purpose, email))}"


def verp_token(secret: bytes, list_id: str, email: str) -> str:
    """The reader's part of a VERP bounce address: 16 lower-case base32 characters (some
    relays lower-case local parts), the same signed id ``make_token`` uses, shortened."""
    mac = _mac(secret, list_id, "verp", email.strip().lower())
    return base64.b32encode(mac[:10]).decode("ascii").lower()


def read_token(secret: bytes, list_id: str, token: str, purpose: str = "unsubscribe") -> str | None:
    """The address a valid token was made for, or None if it was not made by us."""
    try:
        left, right = token.split(".", 1)
        email = _unb64(left).decode()
        given = _unb64(right)
    except (ValueError, UnicodeDecodeError):
        return None
    if token != f"{_b64(email.encode())}.{_b64(given)}":  # only the form we write (base64 decoding is lax)
        return None
    return email if hmac.compare_digest(given, _mac(secret, list_id, purpose, email)) else None


def make_expiring_token(secret: bytes, list_id: str, email: str, expires: int, purpose: str = "confirm") -> str:
    """Like ``make_token``, valid until the Unix time ``expires`` (sign-up confirmations)."""
    email = email.strip().lower()
    payload = f"{email}\0{expires}"
    return f"{_b64(email.encode())}.{expires:x}.{_b64(_mac(secret, list_id, purpose, payload))}"


def read_expiring_token(secret: bytes, list_id: str, token: str, now: float,
                        purpose: str = "confirm") -> str | None:
    """The address of a valid, unexpired token; None for a forged, foreign or old one."""
    try:
        left, expires_hex, right = token.split(".", 2)
        email, expires, given = _unb64(left).decode(), int(expires_hex, 16), _unb64(right)
    except (ValueError, UnicodeDecodeError):
        return None
    if token != f"{_b64(email.encode())}.{expires:x}.{_b64(given)}":  # only the form we write
        return None
    if not hmac.compare_digest(given, _mac(secret, list_id, purpose, f"{email}\0{expires}")):
        return None
    return email if now <= expires else None


def list_id(name: str, sender: str | None) -> str:
    """A List-Id (RFC 2919) from the newsletter's name and the sender's domain."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "newsletter"
    return f"{slug}.{domain_of(sender)}"


def domain_of(sender: str | None) -> str:
    """The domain of an address like ``Name <news@example.com>`` (localhost if none)."""
    match = re.search(r"@([A-Za-z0-9.-]+)", sender or "")
    return match.group(1).lower() if match else "localhost"


def message_id(list_key: str, issue: int, email: str, domain: str) -> str:
    """Stable per issue and recipient, so a resent message is recognisably the same one."""
    digest = hashlib.sha256(f"{list_key}\0{issue}\0{email.strip().lower()}".encode()).hexdigest()[:32]
    return f"<{issue}.{digest}@{domain}>"


def fresh_message_id(issue: int, domain: str) -> str:
    """A new Message-ID on every call, for test copies: sharing the real one would make
    readers (Gmail) drop the real message as a repeat of the test."""
    return f"<{issue}.test-{secrets.token_hex(16)}@{domain}>"
