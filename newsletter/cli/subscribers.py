"""The subscriber commands: import, add, remove, list, tag, untag. Thin: parse, call one
function, print."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from newsletter.cli.base import settings_of
from newsletter.errors import NewsletterError


def _store(ctx: click.Context):
    from newsletter.mailing.store import Store

    return Store(settings_of(ctx).subscribers)


@click.group()
def subscribers() -> None:
    """Manage the subscriber list (`subscribers` in newsletter.yaml: a SQLite file or a PostgreSQL URL)."""


def _segment(where: str | None):
    """The parsed --where, or None; a bad expression is a NewsletterError at its column."""
    from newsletter.mailing.segments import parse

    return None if where is None else parse(where)


def warn_unknown_fields(segment, names: list[str]) -> None:
    """A --where that names a field no subscriber has is most likely a typo: say so."""
    for field in sorted(segment.fields - set(names)) if segment else ():
        known = f" (fields in use: {', '.join(names)})" if names else " (no subscriber has any field)"
        click.echo(f"--where: warning: no subscriber has a field {field!r}; it is empty for all{known}", err=True)


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        column, equals, field = pair.rpartition("=")
        if not equals or not column.strip():
            raise click.BadParameter(f"{pair!r} is not COLUMN=FIELD", param_hint="--map")
        mapping[column] = field
    return mapping


@subscribers.command("import")
@click.argument("csv_file", metavar="CSV", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Reject the whole file if any row is bad; change nothing.")
@click.option("--from", "service", type=click.Choice(["revue", "substack", "buttondown", "mailchimp", "listmonk"]),
              help="Read the export of this service: its names, statuses, dates, tags and consent record.")
@click.option("--map", "pairs", multiple=True, metavar="COLUMN=FIELD",
              help="Read COLUMN as FIELD: email, name, first_name, last_name, status, created_at, updated_at, "
                   "tags, metadata, a personal field, or - to leave it out. Repeatable.")
@click.pass_context
def subscribers_import(ctx: click.Context, csv_file: Path, strict: bool, service: str | None,
                       pairs: tuple[str, ...]) -> None:
    """Import a CSV with a header row: email (required), name, more columns; or another
    service's export with --from."""
    from newsletter.mailing.importing import CsvRows, Row

    display, mapping = str(csv_file), _mapping(pairs)
    if strict:  # a first pass that only checks, so that a bad file changes nothing at all
        with CsvRows(csv_file, display, service, mapping) as rows:
            bad = 0
            for item in rows:
                if not isinstance(item, Row):
                    bad += 1
                    click.echo(str(item), err=True)
        if bad:
            click.echo(f"{csv_file}: {bad} bad row(s); nothing imported (--strict)", err=True)
            sys.exit(1)
    skipped = 0

    def good(rows: CsvRows):
        nonlocal skipped
        for item in rows:
            if isinstance(item, Row):
                yield item[1:]  # email, name, fields, status, created_at, updated_at, tags, consent
            elif strict:  # it was good a moment ago: raising rolls the import back
                raise NewsletterError(f"{item}; {csv_file} changed while it was imported, nothing imported")
            else:
                skipped += 1
                click.echo(f"{item} (row skipped)", err=True)

    with CsvRows(csv_file, display, service, mapping) as rows:
        store = _store(ctx)
        try:  # one transaction, streamed: every row or, on any error, none
            counts = store.add_many(good(rows), source=f"import {csv_file.name}" + (f" from {service}" if service
                                                                                    else ""))
        finally:
            store.close()
        left_out = rows.left_out
    summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    click.echo(f"{csv_file}: {summary or 'no rows'}" + (f"; {skipped} row(s) skipped" if skipped else "")
               + (f"; {left_out} deletion request(s) left out" if left_out else ""))
    if skipped:
        sys.exit(1)


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@click.pass_context
def subscribers_add(ctx: click.Context, email: str, name: str) -> None:
    """Subscribe EMAIL (this also brings back an unsubscribed address)."""
    from newsletter.mailing.importing import check_address, check_name

    email, name = check_address(email), check_name(name)
    store = _store(ctx)
    try:
        click.echo(f"{email}: {store.add(email, name, source='cli add')}")
    finally:
        store.close()


@subscribers.command("remove")
@click.argument("email")
@click.pass_context
def subscribers_remove(ctx: click.Context, email: str) -> None:
    """Unsubscribe EMAIL: kept as unsubscribed, never mailed again."""
    store = _store(ctx)
    try:
        if not store.set_status(email, "unsubscribed", source="cli remove"):
            raise NewsletterError(f"{email}: not in the subscriber list")
    finally:
        store.close()
    click.echo(f"{email}: unsubscribed")


@subscribers.command("list")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--where", metavar="EXPR", help="Only the subscribers EXPR matches: lang = 'zh' and not bounced.")
@click.pass_context
def subscribers_list(ctx: click.Context, fmt: str, where: str | None) -> None:
    """Print every subscriber with status and dates; `import` reads it back as it was."""
    from newsletter.mailing.services import RESERVED

    segment = _segment(where)
    store = _store(ctx)
    try:
        with store.listing() as (names, tagged, people):
            warn_unknown_fields(segment, names)
            if segment is not None:
                people = filter(segment.matches, people)
            # Imports before status and dates had columns stored them as fields: never listed twice.
            columns = [n for n in names if n.lower() not in RESERVED]
            if len(columns) < len(names):
                people = (p._replace(fields={k: v for k, v in p.fields.items() if k.lower() not in RESERVED})
                          for p in people)
            if fmt == "json":
                _write_json(people, sys.stdout)
            else:
                _write_csv(columns, tagged, people, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` has read enough: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        store.close()


def _write_json(people, out) -> None:
    """A JSON array, one subscriber a line, written as the rows come."""
    import json

    out.write("[")
    separator = "\n"
    for p in people:
        out.write(separator + json.dumps(p._asdict(), ensure_ascii=False))
        separator = ",\n"
    out.write("]\n" if separator == "\n" else "\n]\n")


def _write_csv(columns: list[str], tagged: bool, people, out) -> None:
    """A column for every field any subscriber has (and tags, when anyone has some), then
    a line for each subscriber; cells a spreadsheet would run as formulas are defused
    (and `import` undoes that)."""
    import csv

    from newsletter.mailing.importing import defuse

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "status", "created_at", "updated_at", *["tags"] * tagged, *columns])
    for p in people:
        row = [p.email, p.name, p.status, p.created_at, p.updated_at, *[",".join(p.tags)] * tagged,
               *(p.fields.get(c, "") for c in columns)]
        writer.writerow([defuse(v) for v in row])


@subscribers.command("tag")
@click.argument("tag")
@click.argument("emails", nargs=-1, metavar="[EMAIL]...")
@click.option("--where", metavar="EXPR", help="Also every subscriber EXPR matches.")
@click.pass_context
def subscribers_tag(ctx: click.Context, tag: str, emails: tuple[str, ...], where: str | None) -> None:
    """Add TAG (or several: ml,beta) to these addresses and to those --where matches."""
    _retag(ctx, tag, emails, where, add=True)


@subscribers.command("untag")
@click.argument("tag")
@click.argument("emails", nargs=-1, metavar="[EMAIL]...")
@click.option("--where", metavar="EXPR", help="Also every subscriber EXPR matches.")
@click.pass_context
def subscribers_untag(ctx: click.Context, tag: str, emails: tuple[str, ...], where: str | None) -> None:
    """Take TAG (or several: ml,beta) off these addresses and those --where matches."""
    _retag(ctx, tag, emails, where, add=False)


def _retag(ctx: click.Context, text: str, emails: tuple[str, ...], where: str | None, add: bool) -> None:
    from newsletter.mailing.services import check_tags

    if not emails and where is None:
        raise click.UsageError("give the subscribers' addresses, --where EXPR, or both")
    tags, segment = check_tags(text), _segment(where)
    if not tags:
        raise click.BadParameter("a tag is some text, like ml", param_hint="TAG")
    store = _store(ctx)
    try:
        warn_unknown_fields(segment, store.field_names())
        changed, matched = store.retag(tags, add, emails, segment)
    finally:
        store.close()
    done = "added to" if add else "taken off"
    already = matched - changed
    note = f" ({already} had it already)" if add and already else f" ({already} did not have it)" if already else ""
    click.echo(f"{', '.join(tags)}: {done} {changed} subscriber(s){note}")
