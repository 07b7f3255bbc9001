"""Read a subscribers CSV (a header row with ``email``; ``name``, ``status``,
``created_at``, ``updated_at``, ``tags`` and any other columns optional), or another
service's export (``services``), checking every row: a bad address, status or date, a
repeated row, or a line break or control character in a value is reported with its line
and the row is skipped. What ``subscribers list`` writes reads back as it was: status,
dates, tags, fields, and cells it defused for spreadsheets.

The file is streamed: neither its text nor its rows are held, so a million rows take
as little memory as ten (the addresses already read live in a temporary SQLite file).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from newsletter.errors import Location, NewsletterError, Problem
from newsletter.mailing.services import CONTROL as _CONTROL
from newsletter.mailing.services import Plan, check_tags, full_name, metadata, plan
from newsletter.source import unreadable

# A time as Go prints it (listmonk): 2021-03-04 10:11:12.5 +0530 IST: the offset is kept,
# without the space before it, and the zone's name goes.
_GO_ZONE = re.compile(r" ([+-]\d\d:?\d\d)(?: [A-Za-z]{1,6})?$")

# A plain address: an ASCII dot-atom before the @ (RFC 5322 atext, as email_validator's
# DOT_ATOM_TEXT), and a host name whose labels are letters, digits and inner hyphens,
# with a dot and a last label ending in a letter. No re.IGNORECASE: with it, [a-z]
# also matches the Kelvin sign and the dotted capital I.
_ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = re.compile(f"({_ATEXT}(?:\\.{_ATEXT})*)@((?:{_LABEL}\\.)+(?:[A-Za-z0-9][A-Za-z0-9-]{{0,61}})?[A-Za-z])")


class Row(NamedTuple):
    line: int
    email: str
    name: str
    fields: dict[str, str]
    status: str = "subscribed"
    created_at: str | None = None  # ISO 8601 in UTC, as the store keeps it; None: now
    updated_at: str | None = None
    tags: tuple[str, ...] = ()
    consent: str = ""  # what the service recorded of the sign-up, for the consent record


# A cell starting with = + - @ runs as a formula in a spreadsheet: `list` writes a ' before
# it, and before a cell that already starts with ' and then one of them, so that `import`
# can take exactly one ' off again ('-Oslo -> -Oslo, ''=x -> '=x).
_RISKY = re.compile(r"'*[=+\-@]")
_DEFUSED = re.compile(r"'+[=+\-@]")
_FIRST = frozenset("=+-@'")  # a set lookup first: `list` defuses every cell of a million rows


def defuse(value: str) -> str:
    """A CSV cell that a spreadsheet shows as text instead of running it."""
    return "'" + value if value[:1] in _FIRST and _RISKY.match(value) else value


def undefuse(value: str) -> str:
    """The value ``defuse`` was given."""
    return value[1:] if value[:1] == "'" and _DEFUSED.match(value) else value


def check_time(text: str, column: str) -> str | None:
    """An ISO 8601 date or time (2021-10-10, 2021-10-10 09:30:00, ...Z, ...+02:00; no zone
    means UTC) as the store writes times, or None when empty."""
    text = text.strip()
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(_GO_ZONE.sub(r"\1", text).removesuffix(" UTC"))
    except ValueError:
        raise NewsletterError(f"the {column} value {text!r} is not a date and time "
                              "(like 2021-10-10 or 2021-10-10T09:30:00+00:00)") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat(timespec="microseconds")


def check_address(address: str) -> str:
    """The address, normalized (domain lower-cased, IDNA), or NewsletterError.
    Syntax only: no DNS look-up, which would be slow and leak the list."""
    if _CONTROL.search(address):
        raise NewsletterError(f"{address!r} is not a valid email address (it holds a control character)")
    address = address.strip()
    plain = _plain(address)
    if plain is not None:
        return plain
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise NewsletterError(f"'{address}' is not a valid email address ({e})") from None


def _plain(address: str) -> str | None:
    """What email_validator would return for a plain ASCII address, 20 times faster
    (its per-character Unicode checks dominate an import); None for any other address,
    which then goes through email_validator. tests/integration/test_subscribers.py checks
    the two agree."""
    match = _PLAIN.fullmatch(address) if address.isascii() and len(address) <= 254 else None
    if match is None:
        return None
    local, domain = match[1], match[2].lower()  # email_validator lower-cases the domain (UTS-46)
    mailbox_names, reserved = _rules()
    # Left to email_validator: RFC 2142 names it lower-cases (info@, abuse@), "--" (the
    # Punycode xn-- labels it decodes and the R-LDH labels it refuses), reserved domains.
    if local.lower() in mailbox_names or "--" in domain or ("." + domain).endswith(reserved):
        return None
    return f"{local}@{domain}"


@functools.cache
def _rules() -> tuple[frozenset[str], tuple[str, ...]]:
    import email_validator
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

    return frozenset(CASE_INSENSITIVE_MAILBOX_NAMES), tuple("." + d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES)


def check_name(name: str) -> str:
    """A display name without line breaks or control characters (they could forge headers)."""
    if _CONTROL.search(name):
        raise NewsletterError("the name holds a line break or control character")
    return name.strip()


class CsvRows:
    """An open subscribers CSV. Opening checks the header row; iterating yields, in file
    order, a Row for every good line and a Problem for every bad one. Use it in a
    ``with`` block (it holds the file and a temporary index of addresses). ``service``
    reads another service's export (see ``services``); ``mapping`` is --map's."""

    def __init__(self, path: Path, display: str, service: str | None = None, mapping: dict[str, str] | None = None):
        self.path, self.display = path, display
        try:
            self.file = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by close())
        except OSError as e:
            raise unreadable(e, display) from None
        self.reader = csv.reader(self.file)
        try:
            self.columns = self._header()
            try:
                self.plan: Plan = plan(self.columns, service, mapping, path.name)
            except NewsletterError as e:
                raise NewsletterError(f"{display}:1: {e.message}", hint=e.hint) from None
        except BaseException:
            self.file.close()
            raise
        self.source = f" ({service})" if service else ""
        self.left_out = 0  # rows that are no one (a service's placeholders), not imported
        self.seen = _Seen()

    def _header(self) -> list[str]:
        try:
            return [c.strip() for c in self._next()]
        except StopIteration:
            raise NewsletterError(
                f"{self.display}: the file is empty; it needs a header row with an 'email' column") from None
        except csv.Error as e:
            raise NewsletterError(f"{self.display}:1: not a CSV header row ({e})") from None

    def __enter__(self) -> CsvRows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.seen.close()

    def __iter__(self) -> Iterator[Row | Problem]:
        while True:
            start = self.reader.line_num + 1
            try:
                values = self._next()
            except StopIteration:
                return
            except csv.Error as e:
                yield Problem(Location(self.display, start), f"not valid CSV ({e})")
                return
            if not any(v.strip() for v in values):
                continue  # blank lines are not rows
            row = self._row(start, values)
            if row is not None:
                yield row

    def _next(self) -> list[str]:
        try:
            return next(self.reader)
        except UnicodeDecodeError:
            raise NewsletterError(f"{self.display}: is not UTF-8 text (invalid byte at offset "
                                  f"{_bad_byte(self.path)}); save it as UTF-8") from None

    def _row(self, line: int, values: list[str]) -> Row | Problem | None:
        p, count = self.plan, len(values)  # a short row leaves the last columns out
        if count > p.width:
            return Problem(Location(self.display, line), f"{count} values for {p.width} columns")
        try:
            email = check_address(undefuse(values[p.email]) if p.email < count else "")
            if p.left_out and email.lower().endswith(p.left_out):
                self.left_out += 1
                return None
            name = check_name(undefuse(values[p.name]) if p.name < count else "")
            fields = metadata(values[p.metadata]) if p.metadata < count else {}
            for column, i in p.fields:
                if i < count:
                    if _CONTROL.search(values[i]):
                        raise NewsletterError(f"the {column} value holds a line break or control character")
                    fields[column] = undefuse(values[i].strip())
            if not name and ("first_name" in fields or "last_name" in fields):  # a column or metadata
                name = check_name(full_name(fields.get("first_name", ""), fields.get("last_name", "")))
            status = p.file_status or self._status(values[p.status].strip().lower() if p.status < count else "")
            created = None
            for i in p.created_at:  # the first with a value (Mailchimp: OPTIN_TIME, else CONFIRM_TIME)
                if i < count and values[i].strip():
                    created = check_time(values[i], "created_at")
                    break
            updated = check_time(values[p.updated_at], "updated_at") if p.updated_at < count else None
            tags = check_tags(undefuse(values[p.tags])) if p.tags < count else ()
        except NewsletterError as e:
            return Problem(Location(self.display, line), e.message)
        first = self.seen.first_line(email.lower(), line)
        if first is not None:
            return Problem(Location(self.display, line), f"{email} is already on line {first}")
        consent = ""  # "opted in 2019-02-11 08:14:55 from 198.51.100.23, confirmed ..."
        for label, i in p.consent:
            if i < count and values[i].strip():
                joint = " " if consent and label in ("from", "because") else ", " if consent else ""
                consent += f"{joint}{label} {_CONTROL.sub(' ', values[i].strip())}"
        return Row(line, email, name, fields, status, created, updated, tags,
                   f"{p.service}: {consent}" if consent else "")

    def _status(self, text: str) -> str:
        if (status := self.plan.statuses.get(text)) is None:
            known = ", ".join(k for k in self.plan.statuses if k)
            raise NewsletterError(f"the status {text!r} is not one of {known}")
        return status


class _Seen:
    """The first line of every address read so far, for "x is already on line N". In a
    private temporary SQLite database, which spills to a file past its 2 MB cache: a
    dict of a million addresses would take 150 MB. A larger cache was no faster."""

    def __init__(self):
        self.db = sqlite3.connect("", isolation_level=None)
        self.db.execute("PRAGMA journal_mode = OFF")  # thrown away on close: nothing to roll back to
        self.db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID")
        self.db.execute("BEGIN")  # one transaction, never committed: a commit a row is slow

    def first_line(self, key: str, line: int) -> int | None:
        """None the first time ``key`` is seen, else the line it was first seen on."""
        try:
            if self.db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (key, line)).rowcount:
                return None
            return self.db.execute("SELECT line FROM seen WHERE key = ?", (key,)).fetchone()[0]
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode != sqlite3.SQLITE_FULL:
                raise
            raise NewsletterError("the temporary folder is full; nothing was imported",
                                  hint="free some space there, or set TMPDIR to a folder that has some") from None

    def close(self) -> None:
        self.db.close()


def _bad_byte(path: Path) -> int:
    """The offset of the first byte that is not UTF-8, after any BOM (as bytes.decode
    reports it), found in a second streaming pass: the text reader only knows its chunk."""
    offset, carry = 0, b""
    with open(path, "rb") as f:
        head = f.read(3)
        if head != b"\xef\xbb\xbf":
            carry = head
        while True:
            chunk = f.read(1 << 20)
            data = carry + chunk
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as e:
                if not chunk or e.end < len(data):
                    return offset + e.start
                carry, data = data[e.start:], data[:e.start]  # a character cut at the chunk's end
            offset += len(data)
            if not chunk:
                return offset
