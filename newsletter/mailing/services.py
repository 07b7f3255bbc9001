"""What other newsletter services put in their subscriber exports, and how a header row
becomes a ``Plan``: which column holds the address, the name, the status, the sign-up
date, the tags, the consent record, and which ones are personal fields.

Each service is data: its export's column names (lower-cased) and what they mean, the
words its status column uses, and the file names or columns that mark a whole export
as people who left or bounced (Mailchimp exports each status as its own file). Anything
a service does not say is read as in a plain file, and ``--map COLUMN=FIELD`` overrides
both. When in doubt a row is suppressed, never subscribed: nobody who left is mailed.
"""

from __future__ import annotations

import csv
import json
import re
from typing import NamedTuple

from newsletter.errors import NewsletterError

# What a column can be besides a personal field. first_name and last_name make the name
# when there is no name column, and stay personal fields ("Hi {{ personal.first_name }}").
ROLES = ("email", "name", "first_name", "last_name", "status", "created_at", "updated_at", "tags", "metadata")
# Names that are never personal fields: the columns `list` writes, and what layouts see
# beside the fields (personal.unsubscribe_url, .token, .greeting).
RESERVED = frozenset(("email", "name", "status", "created_at", "updated_at", "tags",
                      "unsubscribe_url", "token", "greeting"))
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")  # could forge mail headers
# Han, kana and Hangul: such a name is family name first, with no space (李 + 伟 -> 李伟).
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")
PLAIN = frozenset(ROLES) - {"metadata"}  # what a plain file's column is by its name alone
LEAVE_OUT = "-"  # --map COLUMN=- : the column is not imported

# The words of a plain file's status column, and of `list`'s.
PLAIN_STATUSES = {"": "subscribed", "subscribed": "subscribed", "unsubscribed": "unsubscribed", "bounced": "bounced"}


class Service(NamedTuple):
    """One service's subscriber export."""

    title: str
    columns: dict[str, str]  # lower-cased column -> a role, a field name, or LEAVE_OUT
    statuses: dict[str, str]  # lower-cased status cell -> subscribed | unsubscribed | bounced
    consent: dict[str, str] = {}  # column -> its label in the consent record
    file_status: tuple[tuple[str, str], ...] = ()  # (file-name prefix or column, status) for a whole file
    left_out: str = ""  # addresses ending so are not people (Substack's deletion requests)


SERVICES = {
    # Revue (closed in 2023): email,first_name,last_name,created_at.
    "revue": Service("Revue", {"email": "email", "first_name": "first_name", "last_name": "last_name",
                               "created_at": "created_at"}, PLAIN_STATUSES),
    # Substack's email_list.<publication>.csv: email_disabled=true is a reader who turned mail off.
    "substack": Service("Substack", {
        "email": "email", "created_at": "created_at", "email_disabled": "status",
        "stripe_connected_customer_id": LEAVE_OUT, "stripe_customer_id": LEAVE_OUT},
        {"": "subscribed", "false": "subscribed", "true": "unsubscribed"},
        left_out="@deletion-request.substack.com"),
    # Buttondown's subscribers.csv (and unsubscribers.csv): subscriber_type says who gets mail.
    "buttondown": Service("Buttondown", {
        "email": "email", "email_address": "email", "creation_date": "created_at", "subscriber_type": "status",
        "type": "status", "tags": "tags", "metadata": "metadata", "id": LEAVE_OUT, "secondary_id": LEAVE_OUT,
        "source": LEAVE_OUT, "referrer_url": LEAVE_OUT, "ip_address": LEAVE_OUT, "utm_source": LEAVE_OUT,
        "utm_medium": LEAVE_OUT, "utm_campaign": LEAVE_OUT},
        {**dict.fromkeys(("regular", "premium", "trialed", "unpaid", "gifted", "churning", "churned", "past_due"),
                         "subscribed"),
         **dict.fromkeys(("unactivated", "unsubscribed", "spammy", "removed", "paused", "complained", "blocked"),
                         "unsubscribed"),
         "undeliverable": "bounced", "bounced": "bounced"},
        consent={"source": "source", "referrer_url": "referrer", "ip_address": "from", "utm_source": "utm_source",
                 "utm_medium": "utm_medium", "utm_campaign": "utm_campaign"},
        file_status=(("unsubscribers", "unsubscribed"),)),
    # Mailchimp's audience export: one CSV per status (subscribed_, unsubscribed_, cleaned_,
    # nonsubscribed_members_export_*.csv); the last two have UNSUB_* or CLEAN_* columns.
    "mailchimp": Service("Mailchimp", {
        "email address": "email", "email": "email", "first name": "first_name", "last name": "last_name",
        "optin_time": "created_at", "confirm_time": "created_at", "last_changed": "updated_at", "tags": "tags",
        **dict.fromkeys(("optin_ip", "confirm_ip", "latitude", "longitude", "gmtoff", "dstoff", "leid", "euid",
                         "unsub_time", "unsub_campaign_title", "unsub_campaign_id", "unsub_reason",
                         "unsub_reason_other", "clean_time", "clean_campaign_title", "clean_campaign_id"),
                        LEAVE_OUT)},
        PLAIN_STATUSES,
        consent={"optin_time": "opted in", "optin_ip": "from", "confirm_time": "confirmed", "confirm_ip": "from",
                 "unsub_time": "unsubscribed", "unsub_reason": "because", "clean_time": "cleaned"},
        file_status=(("unsub_time", "unsubscribed"), ("clean_time", "bounced"), ("unsubscribed_", "unsubscribed"),
                     ("cleaned_", "bounced"), ("nonsubscribed_", "unsubscribed"))),
    # listmonk's subscribers.csv: uuid,email,name,attributes,status,created_at,updated_at.
    "listmonk": Service("listmonk", {
        "uuid": LEAVE_OUT, "email": "email", "name": "name", "attributes": "metadata", "status": "status",
        "created_at": "created_at", "updated_at": "updated_at"},
        {"": "subscribed", "enabled": "subscribed", "disabled": "unsubscribed", "blocklisted": "unsubscribed"}),
}


class Plan(NamedTuple):
    """Where each value of a row is. An absent column is an index past every row's end
    (``width``); of several sign-up date columns, the first with a value wins."""

    width: int
    email: int
    name: int
    status: int
    statuses: dict[str, str]
    created_at: tuple[int, ...]
    updated_at: int
    tags: int
    metadata: int
    fields: list[tuple[str, int]]  # first_name and last_name among them
    consent: list[tuple[str, int]]
    file_status: str | None  # the status of every row (a Mailchimp unsubscribed export)
    left_out: str
    service: str  # the service's name, or ""


def plan(columns: list[str], service: str | None = None, mapping: dict[str, str] | None = None,
         file_name: str = "") -> Plan:
    """Read a header row. Raises NewsletterError for a --map that names no column or no
    field, and, for a plain file, a column that could not be a personal field."""
    known = SERVICES.get(service or "")
    lowered = [c.strip().lower() for c in columns]
    mapped = {}
    for column, field in (mapping or {}).items():
        if column.strip().lower() not in lowered:
            raise NewsletterError(f"--map {column}={field}: the header row has no column {column!r} "
                                  f"(it has: {', '.join(columns)})")
        mapped[column.strip().lower()] = _target(column, field.strip())
    at: dict[str, list[int]] = {role: [] for role in ROLES}
    fields = []
    for i, low in enumerate(lowered):
        role = mapped.get(low) or (known.columns.get(low) if known else None) or (low if low in PLAIN else None)
        if role == LEAVE_OUT or (role is None and low in RESERVED):
            continue
        if role in ROLES:
            at[role].append(i)
        if role not in ROLES or role in ("first_name", "last_name"):
            fields.append((role, i) if role else (columns[i], -1 - i))  # negative: named as the file has it
    if not at["email"]:
        hint = next((f"; it looks like a {s.title} export: add --from {key}" for key, s in SERVICES.items()
                     if key != service and any(s.columns.get(c) == "email" and c != "email" for c in lowered)), "")
        raise NewsletterError(f"the header row has no 'email' column (it has: {', '.join(columns)}){hint}")
    # A plain file's columns are its fields as written; a service's are made usable in layouts.
    fields = [(name, i) if i >= 0 else (_field(name, known is not None), -1 - i) for name, i in fields]
    consent = sorted(((label, lowered.index(c)) for c, label in (known.consent if known else {}).items()
                      if c in lowered), key=lambda pair: pair[1])
    file_status = next((status for mark, status in (known.file_status if known else ())
                        if mark in lowered or file_name.lower().startswith(mark)), None)
    # Of repeated columns the last one wins, as it always has in a plain file.
    last = {role: (found[-1] if found else len(columns)) for role, found in at.items()}
    return Plan(len(columns), last["email"], last["name"], last["status"], known.statuses if known else PLAIN_STATUSES,
                tuple(at["created_at"]), last["updated_at"], last["tags"], last["metadata"], fields, consent,
                file_status, known.left_out if known else "", service or "")


def field_name(text: str) -> str:
    """A service's column or metadata key as a personal field: 'Phone Number' -> phone_number."""
    name = re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
    return name if name and not name[0].isdigit() else f"_{name}"


def _field(column: str, lenient: bool) -> str:
    if lenient:  # a service's own column names ("Phone Number", "MEMBER_RATING") as phone_number, member_rating
        return field_name(column)
    if FIELD_NAME.fullmatch(column):
        return column
    raise NewsletterError(f"column names must be letters, digits and _ (usable in layouts), not {column!r}",
                          hint=f"--map '{column}=FIELD' names it, or --map '{column}=-' leaves it out")


def _target(column: str, field: str) -> str:
    """What --map COLUMN=FIELD maps to: a role, a personal field, or LEAVE_OUT."""
    if field in ROLES or field == LEAVE_OUT:
        return field
    if field.lower() in RESERVED:
        raise NewsletterError(f"--map {column}={field}: {field!r} is reserved and never a personal field")
    if not FIELD_NAME.fullmatch(field):
        raise NewsletterError(f"--map {column}={field}: a field name is letters, digits and _, like "
                              f"{field_name(field)!r}; or one of {', '.join(ROLES)}, or - to leave the column out")
    return field


def check_tags(text: str) -> tuple[str, ...]:
    """Tags from one cell: comma-separated (ml, beta), a JSON array (Buttondown) or quoted
    items ("VIP","Blog": Mailchimp). Spaces are trimmed, a comma inside an item becomes
    a space, and a repeat (in any case) is dropped."""
    text = text.strip()
    if not text:
        return ()
    if CONTROL.search(text):
        raise NewsletterError("a tag holds a line break or control character")
    items = None
    if text[0] == "[":
        try:
            items = json.loads(text)
        except ValueError:
            pass
    if not isinstance(items, list):
        items = next(csv.reader([text], skipinitialspace=True))
    tags, seen = [], set()
    for item in items:
        tag = " ".join(str(item).replace(",", " ").split())  # `list` writes tags comma-separated
        if tag and tag.casefold() not in seen:
            seen.add(tag.casefold())
            tags.append(tag)
    return tuple(tags)


def full_name(first: str, last: str) -> str:
    """First and last name as one: "Ada Lovelace", and "李伟" for names in Han or Hangul."""
    if first and last and _CJK.search(first + last) and " " not in first + last:
        return last + first
    return f"{first} {last}".strip()


def metadata(text: str) -> dict[str, str]:
    """A JSON object of more fields (Buttondown's metadata, listmonk's attributes)."""
    if not text.strip():
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise NewsletterError("the metadata value is not a JSON object")
    fields = {}
    for key, value in found.items():
        name = field_name(str(key))
        value = value if isinstance(value, str) else "" if value is None else json.dumps(value, ensure_ascii=False)
        if name.lower() not in RESERVED and value:
            if CONTROL.search(value):
                raise NewsletterError(f"the {name} value holds a line break or control character")
            fields[name] = value.strip()
    return fields
