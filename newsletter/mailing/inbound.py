"""What an inbound message is: a delivery failure (DSN: hard or soft), a complaint (an
ARF feedback report, RFC 5965), an unsubscribe request by mail, or none of these.

Bounces are read with flufl.bounce (its detectors know Postfix, Exim, qmail, Gmail,
Outlook and RFC 3464 reports); when it finds no recipient, the VERP address the bounce
came back to (``bounces+<token>@``) still names one. Reading sources (Maildir, mbox,
IMAP) and acting on the store live in ``bounces``.
"""

from __future__ import annotations

import email
import hashlib
import re
from email import policy
from email.message import Message
from email.utils import getaddresses, parseaddr
from typing import NamedTuple

_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_ISSUE = re.compile(r"<(\d+)\.[0-9a-f]{32}@")  # our Message-IDs: <issue.digest@domain>
_BOUNCE_HINTS = re.compile(r"mailer-daemon|postmaster|undeliver|delivery (status|failure|has failed)|returned mail"
                           r"|failure notice|could not be delivered|mail delivery", re.I)
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


class Inbound(NamedTuple):
    """One message, understood. ``kind``: hard | soft | complaint | unsubscribe | ignored;
    ``addresses``: whom it is about (addresses as written, or keys from a VERP token);
    ``verp``: the VERP tokens it was addressed to; ``issue``: our issue it answers, if known."""

    id: str
    kind: str
    addresses: tuple[str, ...] = ()
    verp: tuple[str, ...] = ()
    issue: int | None = None
    detail: str = ""


def message_key(raw: bytes, message: Message) -> str:
    """What identifies a message across runs: its Message-ID, else a hash of its bytes
    with CRLF line ends (a Maildir file has LF, the same message over IMAP has CRLF)."""
    ident = (message.get("Message-ID") or "").strip()
    return f"mid:{ident}" if ident else "sha256:" + hashlib.sha256(re.sub(rb"\r?\n", b"\r\n", raw)).hexdigest()


def verp_tokens(message: Message, bounce_address: str | None) -> tuple[str, ...]:
    """The tokens of ``bounces+<token>@domain`` among the addresses the message came to,
    then in the envelope sender of the original it reports on (its quoted Return-Path, an
    ARF report's Original-Mail-From), for reports sent to an address that is not VERP."""
    if not bounce_address:
        return ()
    local, _, domain = bounce_address.lower().rpartition("@")
    pattern = re.compile(rf"\b{re.escape(local)}\+([a-z0-9]+)@{re.escape(domain)}\b", re.I)
    places = [(message, name) for name in (*_RECIPIENT_HEADERS, "Return-Path")]
    places += [(original, "Return-Path") for original in _headers_of(message)]
    report = _feedback(message)
    places += [(report, "Original-Mail-From")] if report is not None else []
    found: list[str] = []
    for headers, name in places:
        for value in headers.get_all(name) or []:
            found += [m.lower() for m in pattern.findall(str(value)) if m.lower() not in found]
    return tuple(found)


def _text(message: Message) -> str:
    """Every text and report part, decoded, for status codes and our Message-IDs."""
    out = []
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if payload is None:  # message/* parts: walk() visits what they hold
            continue
        out.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload))
    return "\n".join(out)


def _headers_of(message: Message) -> list[Message]:
    """The original message(s) a report carries (message/rfc822, text/rfc822-headers)."""
    found: list[Message] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            found += [p for p in part.get_payload() if isinstance(p, Message)]
        elif kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True) or b""
            found.append(email.message_from_bytes(payload, policy=policy.compat32))
    return found


def _recipient_reports(message: Message) -> list[Message]:
    """The per-recipient field blocks (Action, Status) of a DSN's message/delivery-status."""
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = part.get_payload()  # the parser reads each block of fields as a message
            if isinstance(blocks, list):
                return [b for b in blocks[1:] if isinstance(b, Message)]  # blocks[0]: per-message fields
    return []


def _feedback(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:  # the parser reads its fields as a message
                return payload[0]
            return email.message_from_string(str(payload or ""), policy=policy.compat32)
    return None


def classify(raw: bytes, bounce_address: str | None = None, unsubscribe_mailto: str | None = None) -> Inbound:
    """What ``raw`` (one whole message) is, and whom it is about."""
    from flufl.bounce import all_failures

    message = email.message_from_bytes(raw, policy=policy.compat32)
    key = message_key(raw, message)
    tokens = verp_tokens(message, bounce_address)
    text = _text(message)
    issue_match = _ISSUE.search(raw.decode("utf-8", "replace"))  # our Message-ID, wherever it is quoted
    issue = int(issue_match.group(1)) if issue_match else None

    report = _feedback(message)
    if report is not None or message.get_param("report-type", "", "content-type") == "feedback-report":
        who = [parseaddr(v)[1] for v in (report.get_all("Original-Rcpt-To") or [])] if report is not None else []
        if not who:
            for original in _headers_of(message):
                who += [addr for _, addr in getaddresses(original.get_all("To") or []) if addr]
        kind = (report.get("Feedback-Type", "abuse") if report is not None else "abuse").strip().lower()
        return Inbound(key, "complaint", tuple(dict.fromkeys(w for w in who if w)), tokens, issue,
                       f"feedback report ({kind}) from {parseaddr(message.get('From', ''))[1] or 'unknown'}")

    subject = str(message.get("Subject", ""))
    if unsubscribe_mailto and re.search(r"\bunsubscribe\b", subject, re.I):
        came_to = {addr.lower() for name in _RECIPIENT_HEADERS for _, addr in getaddresses(message.get_all(name) or [])}
        if unsubscribe_mailto.lower() in came_to:
            sender = parseaddr(message.get("From", ""))[1]
            return Inbound(key, "unsubscribe", (sender,) if sender else (), (), issue, "mailto unsubscribe request")

    reports = _recipient_reports(message)
    actions = {str(r.get("Action", "")).strip().lower() for r in reports}
    if reports and actions <= {"delivered", "relayed", "expanded"}:  # a success notice (NOTIFY=SUCCESS)
        return Inbound(key, "ignored", (), tokens, issue, f"delivery report ({', '.join(sorted(actions))})")
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector that chokes on a strange message: fall back on VERP
        temporary, permanent = frozenset(), frozenset()
    # The DSN's own Status field of a failed (else delayed) recipient; else a code in the text.
    statuses = [str(r.get("Status", "")).strip() for action in ("failed", "delayed") for r in reports
                if str(r.get("Action", "")).strip().lower() == action]
    status = next((m for m in map(_STATUS.search, statuses) if m), None) or _STATUS.search(text)
    detail = status.group(0) if status else ""
    if permanent or temporary:
        kind = "hard" if permanent else "soft"
        found = permanent or temporary
        return Inbound(key, kind, tuple(sorted(a.decode("utf-8", "replace") for a in found)), tokens, issue,
                       detail or ("permanent failure" if permanent else "temporary failure"))
    looks_like_bounce = (message.get_param("report-type", "", "content-type") == "delivery-status"
                         or bool(_BOUNCE_HINTS.search(f"{message.get('From', '')} {subject}")))
    if tokens and looks_like_bounce and not (status and status.group(1) == "2"):
        # The DSN names nobody we can read; its VERP address does.
        kind = ("hard" if "failed" in actions else "soft" if "delayed" in actions
                else "soft" if status is None or status.group(1) == "4" else "hard")
        return Inbound(key, kind, (), tokens, issue, detail or "bounce with no status code (VERP)")
    return Inbound(key, "ignored", (), tokens, issue, subject[:120])
