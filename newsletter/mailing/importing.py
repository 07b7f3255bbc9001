"""Read a subscribers CSV (a header row with ``email``; ``name`` and any other columns
optional), checking every row: a bad address, a repeated row, or a line break or
control character in a value is reported with its line and the row is skipped."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import NamedTuple

from newsletter.errors import Location, NewsletterError, Problem
from newsletter.source import read_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Row(NamedTuple):
    line: int
    email: str
    name: str
    fields: dict[str, str]


def check_address(address: str) -> str:
    """The address, normalized (domain lower-cased, IDNA), or NewsletterError.
    Syntax only: no DNS look-up, which would be slow and leak the list."""
    from email_validator import EmailNotValidError, validate_email

    if _CONTROL.search(address):
        raise NewsletterError(f"{address!r} is not a valid email address (it holds a control character)")
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise NewsletterError(f"'{address.strip()}' is not a valid email address ({e})") from None


def check_name(name: str) -> str:
    """A display name without line breaks or control characters (they could forge headers)."""
    if _CONTROL.search(name):
        raise NewsletterError("the name holds a line break or control character")
    return name.strip()


def read_csv(path: Path, display: str) -> tuple[list[Row], list[Problem]]:
    """Every good row, and a problem for every bad one (with its line number)."""
    text = read_text(path, display)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise NewsletterError(f"{display}: the file is empty; it needs a header row with an 'email' column") from None
    except csv.Error as e:
        raise NewsletterError(f"{display}:1: not a CSV header row ({e})") from None
    columns = [c.strip() for c in header]
    lowered = [c.lower() for c in columns]
    if "email" not in lowered:
        raise NewsletterError(f"{display}:1: the header row has no 'email' column (it has: {', '.join(columns)})")
    bad = [c for c in columns if c.lower() not in ("email", "name") and not _FIELD_NAME.fullmatch(c)]
    if bad:
        raise NewsletterError(
            f"{display}:1: column names must be letters, digits and _ (usable in layouts), not {bad[0]!r}"
        )
    rows: list[Row] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    line = 1
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(Problem(Location(display, start), f"not valid CSV ({e})"))
            break
        line = start
        if not any(v.strip() for v in values):
            continue  # blank lines are not rows
        where = Location(display, line)
        if len(values) > len(columns):
            problems.append(Problem(where, f"{len(values)} values for {len(columns)} columns"))
            continue
        record = dict(zip(lowered, values, strict=False))
        try:
            email = check_address(record.get("email", ""))
            name = check_name(record.get("name", ""))
            fields = {}
            for column, value in zip(columns, values, strict=False):
                if column.lower() not in ("email", "name"):
                    if _CONTROL.search(value):
                        raise NewsletterError(f"the {column} value holds a line break or control character")
                    fields[column] = value.strip()
        except NewsletterError as e:
            problems.append(Problem(where, e.message))
            continue
        key = email.lower()
        if key in seen:
            problems.append(Problem(where, f"{email} is already on line {seen[key]}"))
            continue
        seen[key] = line
        rows.append(Row(line, email, name, fields))
    return rows, problems
